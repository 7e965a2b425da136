// `strata generate --ckpt DIR --prompt TEXT`: continue a prompt with a trained model — greedy,
// or sampled with temperature, top-k and top-p from a seed — on one rank or on tensor-parallel
// ranks (mpiexec -n TP). Decoding uses the KV cache (model/inference.hpp): one token's work per
// new token; --no-cache re-runs the whole sequence for every token (for comparison).
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "commands.hpp"
#include "inference_setup.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/core/timer.hpp"
#include "strata/kernels/cpu/matmul.hpp"
#include "strata/model/runtime_model.hpp"
#include "strata/model/sampling.hpp"

namespace strata::cli {

namespace {

struct GenerateOptions {
  std::string ckpt, prompt, tokenizer;
  int max_new_tokens = 200;
  model::SamplingOptions sampling;
  int tp = 0;
  std::string device;
  bool no_cache = false, ignore_eos = false;
};

int run_generate(const GenerateOptions& o) {
  int world_size = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &world_size);
  model::validate(o.sampling);
  if (o.max_new_tokens < 1) throw make_error("--max-new-tokens must be at least 1, got ", o.max_new_tokens);
  InferenceSetup s = open_for_inference(o.ckpt, o.tokenizer, true, o.tp, world_size);
  if (s.job.train.objective != config::ObjectiveKind::causal_lm ||
      s.job.model.attention != config::AttentionKind::causal)
    throw make_error(s.info.file,
                     ": generation continues text left to right, which needs a causal LM (this model was "
                     "trained with train.objective: ",
                     config::to_string(s.job.train.objective), ")");
  comm::RankGrid grid(MPI_COMM_WORLD, s.tp, 1, 1);
  const bool lead = grid.global_rank() == 0;
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  kernels::cpu::set_blas_threads(std::max(1, cores / grid.local_size()));

  const std::unique_ptr<model::DecoderModel> decoder =
      model::make_decoder_model(inference_device(o.device, s), s.job.model, 0, grid);
  model::DecoderModel& dec = *decoder;
  load_into(dec, s.info.file, grid);

  const data::Tokenizer& tok = *s.tokenizer;
  std::vector<std::int32_t> seq = tok.encode(o.prompt);
  if (seq.empty()) {  // an empty prompt starts a new document: documents end with EOS
    if (tok.eos_id() < 0)
      throw make_error("--prompt is empty and tokenizer '", tok.name(), "' has no EOS to start from");
    seq.push_back(tok.eos_id());
  }
  const std::size_t prompt_len = seq.size();
  if (int(prompt_len) >= dec.max_len())
    throw make_error("--prompt is ", prompt_len, " tokens; the model's context (model.max_seq_len) is ",
                     dec.max_len(), " tokens, which leaves no room to generate");
  const int room = dec.max_len() - int(prompt_len);
  const int max_new = std::min(o.max_new_tokens, room);
  if (lead && max_new < o.max_new_tokens)
    std::fprintf(stderr, "generate: %d new tokens fit the model's context of %d (asked for %d)\n", max_new,
                 dec.max_len(), o.max_new_tokens);

  model::Sampler sampler(o.sampling, dec.vocab_size());
  const std::size_t V = std::size_t(dec.vocab_size());
  const Timer timer;
  const float* logits = dec.forward(seq);
  const double prefill_ms = timer.ms();
  int generated = 0;
  bool stopped_at_eos = false;
  for (int step = 0; step < max_new; ++step) {
    if (step > 0) {  // the logits after the token chosen last
      if (o.no_cache) {
        dec.reset();
        logits = dec.forward(seq);
      } else {
        logits = dec.forward(std::span<const std::int32_t>(&seq.back(), 1));
      }
    }
    const std::int32_t next = sampler.next(std::span<const float>(logits, V), std::uint64_t(step));
    seq.push_back(next);
    ++generated;
    if (next == tok.eos_id() && !o.ignore_eos) {
      stopped_at_eos = true;
      break;
    }
  }
  const double total_s = timer.ms() * 1e-3;
  if (!lead) return 0;
  std::vector<std::int32_t> out(seq.begin() + std::ptrdiff_t(prompt_len), seq.end());
  if (stopped_at_eos) out.pop_back();
  std::printf("%s%s\n", o.prompt.c_str(), tok.decode(out).c_str());
  std::fflush(stdout);
  const double decode_s = total_s - prefill_ms * 1e-3;
  // How tokens were chosen, e.g. "greedy" or "temperature 0.7, top-p 0.9, seed 1".
  char how[160];
  if (o.sampling.greedy || o.sampling.temperature == 0) {
    std::snprintf(how, sizeof how, "greedy");
  } else {
    int n = std::snprintf(how, sizeof how, "temperature %g", o.sampling.temperature);
    if (o.sampling.top_k > 0)
      n += std::snprintf(how + n, sizeof how - std::size_t(n), ", top-k %d", o.sampling.top_k);
    if (o.sampling.top_p < 1)
      n += std::snprintf(how + n, sizeof how - std::size_t(n), ", top-p %g", o.sampling.top_p);
    std::snprintf(how + n, sizeof how - std::size_t(n), ", seed %llu",
                  static_cast<unsigned long long>(o.sampling.seed));
  }
  std::fprintf(
      stderr,
      "generate: %s; prompt %zu tokens (prefill %.1f ms), %d new tokens in %.3f s = %.0f tokens/s (%s, "
      "tp %d); %s%s\n",
      describe(s.info).c_str(), prompt_len, prefill_ms, generated, decode_s,
      generated / std::max(decode_s, 1e-9),
      o.no_cache ? "no cache: the whole sequence per token" : "KV cache", s.tp, how,
      stopped_at_eos ? "; stopped at EOS" : "");
  return 0;
}

}  // namespace

Action add_generate_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("generate",
                         "Continue a prompt with a trained model: strata generate --ckpt DIR --prompt TEXT "
                         "(under mpiexec -n TP for tensor parallelism)");
  auto o = std::make_shared<GenerateOptions>();
  cmd->add_option("--ckpt", o->ckpt, "Checkpoint file, or a checkpoint directory (its latest checkpoint)")
      ->required();
  cmd->add_option("-p,--prompt", o->prompt, "The text to continue (empty: start a new document)")->required();
  cmd->add_option("-n,--max-new-tokens", o->max_new_tokens,
                  "Tokens to generate (at most the model's context)")
      ->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "Softmax temperature (0: greedy)")
      ->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "Sample from the k most probable tokens (0: all)")
      ->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p,
                  "Nucleus sampling: the smallest set with this probability (1: all)")
      ->capture_default_str();
  cmd->add_option("--seed", o->sampling.seed, "Random seed of the sampler")->capture_default_str();
  cmd->add_flag("--greedy", o->sampling.greedy, "Greedy decoding: always the most probable token");
  cmd->add_option("--tp", o->tp, "Tensor-parallel ranks (default: the number of ranks)");
  add_device_option(*cmd, o->device);
  cmd->add_option("--tokenizer", o->tokenizer,
                  "Tokenizer spec (default: the checkpoint's data.tokenizer; checked against its hash)");
  cmd->add_flag("--no-cache", o->no_cache,
                "Re-run the whole sequence for every token (slow; for comparison)");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Keep generating after the end-of-document token");
  return [o] { return run_generate(*o); };
}

}  // namespace strata::cli

// Every parallel layout trains like one rank (DESIGN.md: layout-equivalence): for a tiny
// model, the loss of each of 3 optimizer steps and every parameter after them match the
// single-rank run to 1e-5 relative (fp32), for each layout of this world size with each
// schedule, ZeRO stage, sequence parallelism on/off and recomputation on/off. The validation
// loss (a forward-only pipeline pass over a fixed set of held-out windows) matches too. Masked
// LM (bidirectional, BERT corruption, loss on the chosen positions) and the sequence-length
// warm-up (steps at 8, 8 and 16 tokens) run on the layouts with tp, pp, dp in {1, 2}. A
// LLaMA-70B-shaped model (GQA, SwiGLU, RoPE, untied, with and without biases) runs tp2-pp4 and
// tp2-pp2-dp2 on 8 ranks. The zero-bubble schedule (zb_h1) runs every layout with a pipeline.
#include <gtest/gtest.h>
#include <mpi.h>

#include "mpi_test_util.hpp"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "strata/config/load.hpp"
#include "strata/parallel/engine.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;

namespace {

using test::world_rank;
using test::world_size;

using test::base_job;

config::JobConfig masked_lm_job() {
  config::JobConfig j = base_job(false);
  j.model.name = "layout_bert";
  j.model.attention = config::AttentionKind::bidirectional;
  j.train.objective = config::ObjectiveKind::masked_lm;
  j.train.mlm_probability = 0.3;  // ~38 of the 128 positions of a global batch
  j.eval.interval = 2;            // validation mid-run (step 2) and at the end (step 3)
  return j;
}

struct Reference {
  std::vector<double> losses;
  std::vector<double> valid_losses;  // every validation, in order
  std::vector<float> params;
  std::map<std::string, std::int64_t> offset;  // name -> offset in params
};

// The single-rank run, computed on rank 0 and broadcast.
Reference reference(const config::JobConfig& job) {
  Reference ref;
  std::int64_t n = 0;
  train::TrainSummary s;
  if (world_rank() == 0) {
    s = train::run_training(job, MPI_COMM_SELF);
    n = std::int64_t(s.final_params.size());
  }
  std::int64_t nv = 0;
  if (world_rank() == 0) nv = std::int64_t(s.evals.size());
  MPI_Bcast(&n, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  MPI_Bcast(&nv, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
  ref.valid_losses.resize(std::size_t(nv));
  if (world_rank() == 0)
    for (std::size_t i = 0; i < ref.valid_losses.size(); ++i) ref.valid_losses[i] = s.evals[i].loss;
  MPI_Bcast(ref.valid_losses.data(), int(nv), MPI_DOUBLE, 0, MPI_COMM_WORLD);
  ref.params.resize(std::size_t(n));
  ref.losses.resize(std::size_t(job.train.steps));
  if (world_rank() == 0) {
    ref.params = s.final_params;
    for (std::size_t i = 0; i < ref.losses.size(); ++i) ref.losses[i] = s.steps[i].loss;
  }
  MPI_Bcast(ref.params.data(), int(n), MPI_FLOAT, 0, MPI_COMM_WORLD);
  MPI_Bcast(ref.losses.data(), int(ref.losses.size()), MPI_DOUBLE, 0, MPI_COMM_WORLD);
  const model::ParameterTable table = model::make_parameter_table(job.model);
  for (const auto& p : table.entries()) ref.offset[p.name] = p.offset;
  return ref;
}

std::string describe(const config::JobConfig& j) {
  const auto& p = j.parallel;
  return j.model.name + (j.train.seq_len_warmup > 0 ? " seq_len_warmup" : "") + " tp" + std::to_string(p.tp) +
         " pp" + std::to_string(p.pp) + " dp" + std::to_string(p.dp) + " " + config::to_string(p.schedule) +
         " v" + std::to_string(p.virtual_stages) + " zero" + std::to_string(p.zero_stage) +
         (p.cp > 1 ? " cp" + std::to_string(p.cp) + (p.cp_mode == config::CpMode::ulysses ? " ulysses" : "")
                   : "") +
         (p.sequence_parallel ? " sp" : "") +
         (j.model.recompute == config::RecomputeKind::full ? " recompute" : "");
}

// fp32 with sums in another order: agreement to 1e-5 relative. The absolute floor, 1/1000 of
// one step of size lr, is for tensors whose gradient is zero in exact arithmetic and only
// rounding noise in practice: the key bias (softmax ignores a constant added to a row of
// scores), which Adam moves by ~lr * noise / eps ~ 1e-7 in a layout-dependent direction. A
// real disagreement moves a parameter by ~lr = 1e-3.
void expect_matches(const config::JobConfig& job, const Reference& ref) {
  const float atol = float(1e-3 * job.optim.lr);
  SCOPED_TRACE(describe(job));
  const train::TrainSummary s = train::run_training(job, MPI_COMM_WORLD);
  ASSERT_EQ(s.steps.size(), ref.losses.size());
  for (std::size_t i = 0; i < ref.losses.size(); ++i)
    EXPECT_NEAR(s.steps[i].loss, ref.losses[i], 1e-5 * std::abs(ref.losses[i])) << "step " << i + 1;
  ASSERT_EQ(s.evals.size(), ref.valid_losses.size());
  ASSERT_FALSE(ref.valid_losses.empty());
  for (std::size_t i = 0; i < ref.valid_losses.size(); ++i)
    EXPECT_NEAR(s.evals[i].loss, ref.valid_losses[i], 1e-5 * std::abs(ref.valid_losses[i]))
        << "validation " << i;
  int bad = 0;
  for (const model::ParamInfo& p : s.final_param_info) {
    const std::int64_t base = ref.offset.at(p.name);
    const std::int64_t real = p.real_rows < 0 ? p.numel : p.real_rows * p.shape[1];
    for (std::int64_t i = 0; i < real; ++i) {
      const float got = s.final_params[std::size_t(p.offset + i)];
      const float want = ref.params[std::size_t(base + p.global_index(i))];
      if (std::abs(got - want) > 1e-5f * std::abs(want) + atol && bad++ < 5)
        ADD_FAILURE() << p.name << "[" << p.global_index(i) << "]: " << got << " vs " << want;
    }
  }
  EXPECT_EQ(bad, 0);
}

struct Layout {
  int tp, pp, dp;
};

std::vector<Layout> layouts_for_world() {
  std::vector<Layout> out;
  for (int tp : {1, 2, 4})
    for (int pp : {1, 2, 4})
      for (int dp : {1, 2, 4, 8}) {
        if (tp * pp * dp != world_size()) continue;
        const int twos = (tp == 2) + (pp == 2) + (dp == 2), ones = (tp == 1) + (pp == 1) + (dp == 1);
        // tp, pp, dp in {1, 2} (all 8 combinations), tp = 4 / pp = 4 / dp = 4 alone, dp = 8 alone
        if (twos + ones == 3 || (ones == 2)) out.push_back({tp, pp, dp});
      }
  return out;
}

void run_all_variants(bool llama) {
  const config::JobConfig base = base_job(llama);
  const Reference ref = reference(base);
  for (const Layout& l : layouts_for_world()) {
    config::JobConfig j = base;
    j.parallel.tp = l.tp;
    j.parallel.pp = l.pp;
    j.parallel.dp = l.dp;
    std::vector<config::ParallelConfig> variants;
    for (auto sched : {config::PipelineSchedule::one_f_one_b, config::PipelineSchedule::gpipe,
                       config::PipelineSchedule::interleaved_1f1b}) {
      if (l.pp == 1 && sched != config::PipelineSchedule::one_f_one_b) continue;
      config::ParallelConfig p = j.parallel;
      p.schedule = sched;
      p.virtual_stages = sched == config::PipelineSchedule::interleaved_1f1b ? 2 : 1;
      if (p.virtual_stages * l.pp > base.model.num_layers) continue;
      variants.push_back(p);
    }
    for (config::ParallelConfig p : variants) {
      for (int zero : {0, 1}) {
        if (zero == 1 && l.dp == 1) continue;
        for (bool sp : {false, true}) {
          if (sp && l.tp == 1) continue;
          p.zero_stage = zero;
          p.sequence_parallel = sp;
          j.parallel = p;
          j.model.recompute = config::RecomputeKind::none;
          expect_matches(j, ref);
        }
      }
    }
    // Recomputation on one variant of each layout.
    j.parallel.schedule = config::PipelineSchedule::one_f_one_b;
    j.parallel.virtual_stages = 1;
    j.parallel.zero_stage = l.dp > 1 ? 1 : 0;
    j.parallel.sequence_parallel = l.tp > 1;
    j.model.recompute = config::RecomputeKind::full;
    expect_matches(j, ref);
  }
}

// One variant per layout with tp, pp, dp in {1, 2}: sequence parallelism with tp, ZeRO-1 with
// dp, 1F1B (or interleaved, the pipeline's other forward order) with pp.
void run_small_layouts(const config::JobConfig& base) {
  const Reference ref = reference(base);
  for (const Layout& l : layouts_for_world()) {
    if (l.tp > 2 || l.pp > 2 || l.dp > 2) continue;
    config::JobConfig j = base;
    j.parallel.tp = l.tp;
    j.parallel.pp = l.pp;
    j.parallel.dp = l.dp;
    j.parallel.sequence_parallel = l.tp > 1;
    j.parallel.zero_stage = l.dp > 1 ? 1 : 0;
    expect_matches(j, ref);
    if (l.pp > 1 && l.tp == 1) {
      j.parallel.schedule = config::PipelineSchedule::interleaved_1f1b;
      j.parallel.virtual_stages = 2;
      expect_matches(j, ref);
    }
  }
}

}  // namespace

TEST(Layouts, MaskedLmMatchesOneRank) { run_small_layouts(masked_lm_job()); }

TEST(Layouts, SeqLenWarmupMatchesOneRank) {
  config::JobConfig j = base_job(true);  // RoPE: positions follow the shorter sequences
  j.train.seq_len_warmup = 128;          // G = 8: steps of 8, 8 (8 + 8 x 64/128 = 12 -> 8), then 16 tokens
  j.train.seq_len_warmup_start = 8;
  run_small_layouts(j);
}

TEST(Layouts, GptStyleMatchesOneRankInEveryLayout) { run_all_variants(false); }
TEST(Layouts, LlamaStyleMatchesOneRankInEveryLayout) { run_all_variants(true); }

// The shape of the job strata exists for (LLaMA-2 70B: grouped-query attention with fewer KV
// heads than query heads, SwiGLU, RoPE, untied embeddings), small, with and without biases, in
// the layouts of configs/pretrain_70b.yaml scaled to 8 ranks: tp 2 x pp 4 (1F1B and interleaved
// with 2 virtual stages) and tp 2 x pp 2 x dp 2 with ZeRO-1, sequence parallel throughout.
TEST(Layouts, Llama70bShapedMatchesOneRank) {
  if (world_size() != 8) GTEST_SKIP() << "the 70B-shaped layouts need 8 ranks";
  for (const bool bias : {false, true}) {
    config::JobConfig base = base_job(true);
    base.model.name = bias ? "llama70b_shaped_bias" : "llama70b_shaped";
    base.model.num_layers = 8;  // pp 4 x 2 virtual stages
    base.model.d_model = 64;
    base.model.num_heads = 8;
    base.model.num_kv_heads = 2;  // GQA: 4 query heads per KV head, one KV head per TP rank
    base.model.ffn_hidden = 96;
    base.model.bias = bias;  // SwiGLU with biases: gate, up and down
    const Reference ref = reference(base);
    struct Case {
      int tp, pp, dp;
      config::PipelineSchedule schedule;
      int v;
    };
    using S = config::PipelineSchedule;
    for (const Case& c : {Case{2, 4, 1, S::one_f_one_b, 1}, Case{2, 4, 1, S::interleaved_1f1b, 2},
                          Case{2, 2, 2, S::one_f_one_b, 1}}) {
      config::JobConfig j = base;
      j.parallel.tp = c.tp;
      j.parallel.pp = c.pp;
      j.parallel.dp = c.dp;
      j.parallel.schedule = c.schedule;
      j.parallel.virtual_stages = c.v;
      j.parallel.sequence_parallel = true;
      j.parallel.zero_stage = c.dp > 1 ? 1 : 0;
      expect_matches(j, ref);
    }
  }
}

// The zero-bubble schedule zb_h1 (backward split into input- and weight-gradient passes) in
// every layout of this world size with a pipeline: pp 2 (2 ranks); pp 4, pp 2 x dp 2 and
// pp 2 x tp 2 (4 ranks); tp 2 x pp 2 x dp 2 (8 ranks); with sequence parallelism under tp
// and ZeRO-1 under dp, GPT style (tied embeddings over the first and last stage, biases) and
// LLaMA style. ZeRO-2 and ZeRO-3 (each layer's unit reduce-scattered right after its W pass,
// which adds the norm and row-parallel bias gradients its B passes held): pp 2 x dp 2 (4
// ranks); pp 2 x dp 4, tp 2 (SP) x pp 2 x dp 2, cp 2 x pp 2 x dp 2 (8 ranks).
TEST(Layouts, ZeroBubbleMatchesOneRank) {
  for (const bool llama : {false, true}) {
    const config::JobConfig base = base_job(llama);
    const Reference ref = reference(base);
    for (const Layout& l : layouts_for_world()) {
      if (l.pp == 1) continue;
      config::JobConfig j = base;
      j.parallel.tp = l.tp;
      j.parallel.pp = l.pp;
      j.parallel.dp = l.dp;
      j.parallel.schedule = config::PipelineSchedule::zb_h1;
      j.parallel.sequence_parallel = l.tp > 1;
      j.parallel.zero_stage = l.dp > 1 ? 1 : 0;
      expect_matches(j, ref);
    }
    struct Case {
      int tp, cp, pp, dp;
    };
    std::vector<Case> sharded;
    if (world_size() == 4) sharded = {{1, 1, 2, 2}};
    if (world_size() == 8) sharded = {{1, 1, 2, 4}, {2, 1, 2, 2}, {1, 2, 2, 2}};
    for (const Case& c : sharded)
      for (const int zero : {2, 3}) {
        config::JobConfig j = base;
        j.parallel.tp = c.tp;
        j.parallel.cp = c.cp;
        j.parallel.pp = c.pp;
        j.parallel.dp = c.dp;
        j.parallel.schedule = config::PipelineSchedule::zb_h1;
        j.parallel.sequence_parallel = c.tp > 1;
        j.parallel.zero_stage = zero;
        expect_matches(j, ref);
      }
  }
}

TEST(Layouts, ZeroOneKeepsOneDpthOfTheOptimizerState) {
  if (world_size() < 2) GTEST_SKIP();
  config::JobConfig j = base_job(false);
  j.train.steps = 1;
  j.parallel.tp = j.parallel.pp = 1;
  j.parallel.dp = world_size();
  j.parallel.zero_stage = 0;
  const auto replicated = train::run_training(j, MPI_COMM_WORLD);
  j.parallel.zero_stage = 1;
  const auto sharded = train::run_training(j, MPI_COMM_WORLD);
  const std::size_t full = replicated.steps[0].optimizer_state_bytes,
                    shard = sharded.steps[0].optimizer_state_bytes;
  EXPECT_EQ(shard * std::size_t(world_size()), full);  // the padded buffer splits exactly
  const std::size_t numel = std::size_t(model::make_parameter_table(j.model).numel());
  EXPECT_GE(full, 8 * numel);  // m and v, fp32
  EXPECT_LT(full, 8 * (numel + std::size_t(world_size())));
}

// Context parallelism (parallel.cp, ring attention): every layout of this world size with
// cp > 1 and tp, pp, dp in {1, 2} trains like one rank, GPT-style (learned positions, tied
// embeddings) and LLaMA-style (RoPE, SwiGLU, GQA over 2 KV heads); np2: cp 2; np4: cp 4, and
// cp 2 with tp 2 (sequence parallel; LLaMA also without), pp 2 (1F1B; LLaMA also GPipe and
// interleaved with 2 virtual stages) or dp 2 (ZeRO-1); np8: cp 8, and cp 2 with tp 2 x pp 2,
// tp 2 x dp 2, pp 2 x dp 2. The masked LM (bidirectional attention) and full recomputation run
// on cp = world size.
TEST(Layouts, ContextParallelMatchesOneRank) {
  if (world_size() < 2) GTEST_SKIP();
  for (const bool llama : {false, true}) {
    config::JobConfig base = base_job(llama);
    if (llama) base.model.num_kv_heads = 2;
    const Reference ref = reference(base);
    for (int cp : {2, 4, 8}) {
      if (world_size() % cp != 0) continue;
      const int rest = world_size() / cp;  // tp x pp x dp
      for (const Layout& l :
           std::vector<Layout>{{1, 1, 1}, {2, 1, 1}, {1, 2, 1}, {1, 1, 2}, {2, 2, 1}, {2, 1, 2}, {1, 2, 2}}) {
        if (l.tp * l.pp * l.dp != rest || (cp > 2 && rest > 1)) continue;
        config::JobConfig j = base;
        j.parallel.cp = cp;
        j.parallel.tp = l.tp;
        j.parallel.pp = l.pp;
        j.parallel.dp = l.dp;
        j.parallel.sequence_parallel = l.tp > 1;
        j.parallel.zero_stage = l.dp > 1 ? 1 : 0;
        expect_matches(j, ref);
        if (rest == 1 && llama) {
          j.model.recompute = config::RecomputeKind::full;
          expect_matches(j, ref);
        }
        if (rest == 2 && llama && l.pp == 2) {  // the pipeline's other schedules
          j.parallel.schedule = config::PipelineSchedule::gpipe;
          expect_matches(j, ref);
          j.parallel.schedule = config::PipelineSchedule::interleaved_1f1b;
          j.parallel.virtual_stages = 2;
          expect_matches(j, ref);
        }
        if (llama && l.pp == 2) {  // the zero-bubble schedule's split backward with the ring
          j.parallel.schedule = config::PipelineSchedule::zb_h1;
          j.parallel.virtual_stages = 1;
          expect_matches(j, ref);
        }
        if (rest == 2 && llama && l.tp == 2) {  // tensor parallelism without sequence parallelism
          j.parallel.sequence_parallel = false;
          expect_matches(j, ref);
        }
      }
    }
  }
  config::JobConfig mlm = masked_lm_job();
  const Reference ref = reference(mlm);
  mlm.parallel.cp = world_size();
  expect_matches(mlm, ref);
}

// Context parallelism in the Ulysses mode (parallel.cp_mode: ulysses: all-to-all to whole
// sequences of 1/cp of the heads, the backend's own attention, all-to-all back), GPT-style (4
// heads) and LLaMA-style with GQA (8 heads over 4 KV heads); np2: cp 2; np4: cp 4, and cp 2 with
// tp 2 (sequence parallel), pp 2 (1F1B; LLaMA also zb_h1's split backward) or dp 2 (ZeRO-1);
// np8: cp 2 with tp 2 x pp 2 and tp 2 x dp 2. LLaMA with full recomputation on cp = world size.
TEST(Layouts, UlyssesMatchesOneRank) {
  if (world_size() < 2) GTEST_SKIP();
  struct Case {
    int cp, tp, pp, dp;
  };
  std::vector<Case> cases;
  if (world_size() == 2) cases = {{2, 1, 1, 1}};
  if (world_size() == 4) cases = {{4, 1, 1, 1}, {2, 2, 1, 1}, {2, 1, 2, 1}, {2, 1, 1, 2}};
  if (world_size() == 8) cases = {{2, 2, 2, 1}, {2, 2, 1, 2}};
  for (const bool llama : {false, true}) {
    config::JobConfig base = base_job(llama);
    if (llama)
      base.model.num_heads = 8, base.model.num_kv_heads = 4;  // head size 4, 2 query heads per KV head
    const Reference ref = reference(base);
    for (const Case& c : cases) {
      config::JobConfig j = base;
      j.parallel.cp = c.cp;
      j.parallel.cp_mode = config::CpMode::ulysses;
      j.parallel.tp = c.tp;
      j.parallel.pp = c.pp;
      j.parallel.dp = c.dp;
      j.parallel.sequence_parallel = c.tp > 1;
      j.parallel.zero_stage = c.dp > 1 ? 1 : 0;
      expect_matches(j, ref);
      if (llama && c.cp == world_size()) {
        j.model.recompute = config::RecomputeKind::full;
        expect_matches(j, ref);
      }
      if (llama && c.pp == 2 && c.tp == 1) {
        j.parallel.schedule = config::PipelineSchedule::zb_h1;
        expect_matches(j, ref);
      }
    }
  }
}

// Context parallelism's purpose: cp = 8 on 8 ranks trains sequences of 512 tokens whose memory
// plan on one rank (cp = 1: the CPU attention keeps the [T, T] probabilities of every head and
// layer) exceeds a rank budget of 8 MiB, while each cp rank's plan (64 positions of each
// sequence, the ring keeping only the row log-sum-exp) fits in it. Both plans are the engine's
// own (parallel::plan_engine, what it allocates); the cp = 8 run allocates exactly its plan and
// matches the one-rank run (which this machine can still hold).
TEST(Layouts, ContextParallelEightTrainsASequenceOneRanksPlanCannotHold) {
  if (world_size() != 8) GTEST_SKIP() << "cp = 8 needs 8 ranks";
  config::JobConfig j = base_job(true);
  j.model.name = "layout_llama_long";
  j.model.num_kv_heads = 2;
  j.model.max_seq_len = j.train.seq_len = 512;
  j.train.steps = 2;
  j.eval.windows = 0;
  constexpr std::size_t budget = 8u << 20;  // bytes per rank
  auto planned = [&](int cp) {
    config::ParallelConfig p = j.parallel;
    p.cp = cp;
    p.dp = 1;
    comm::GridShape shape{1, 1, 1};
    shape.cp = cp;
    const parallel::EnginePlan e =
        parallel::plan_engine(j.model, p, j.optim, j.train.seq_len, j.parallel.global_batch_size, shape, {},
                              parallel::backend_spec(config::DeviceKind::cpu));
    return e.device_bytes() + e.host.total_bytes();
  };
  const std::size_t one_rank = planned(1), per_cp_rank = planned(8);
  if (world_rank() == 0)
    std::printf("seq_len 512: one rank plans %.2f MiB; cp = 8 plans %.2f MiB per rank (budget %.0f MiB)\n",
                double(one_rank) / (1 << 20), double(per_cp_rank) / (1 << 20), double(budget) / (1 << 20));
  EXPECT_GT(one_rank, budget);
  EXPECT_LE(per_cp_rank, budget);
  const Reference ref = reference(j);
  j.parallel.cp = 8;
  j.parallel.dp = 1;
  const train::TrainSummary s = train::run_training(j, MPI_COMM_WORLD);
  EXPECT_EQ(s.planned_bytes, per_cp_rank);
  ASSERT_EQ(s.steps.size(), ref.losses.size());
  for (std::size_t i = 0; i < ref.losses.size(); ++i)
    EXPECT_NEAR(s.steps[i].loss, ref.losses[i], 1e-5 * std::abs(ref.losses[i])) << "step " << i + 1;
  int bad = 0;
  for (const model::ParamInfo& p : s.final_param_info)
    for (std::int64_t i = 0; i < p.numel; ++i) {
      const float got = s.final_params[std::size_t(p.offset + i)];
      const float want = ref.params[std::size_t(ref.offset.at(p.name) + i)];
      if (std::abs(got - want) > 1e-5f * std::abs(want) + float(1e-3 * j.optim.lr) && bad++ < 5)
        ADD_FAILURE() << p.name << "[" << i << "]: " << got << " vs " << want;
    }
  EXPECT_EQ(bad, 0);
}

// ZeRO-2 (gradients reduce-scattered per layer in every micro-batch into each rank's shard,
// no flat gradient buffer) and ZeRO-3 (parameters sharded too, gathered per layer before its
// forward and backward): dp = the world alone, GPT-style (tied embeddings) and LLaMA-style,
// with recomputation; with 4 or 8 ranks also combined with tp 2 (sequence parallel), pp 2
// (1F1B and interleaved: the tied embedding's two copies) and tp2-pp2-dp2; and with context
// parallelism (each layer's unit and the edges summed over cp before dp): cp2-dp2 on 4 ranks,
// tp2-cp2-dp2 on 8.
TEST(Layouts, ZeroTwoAndThreeMatchOneRank) {
  if (world_size() < 2) GTEST_SKIP();
  for (const bool llama : {false, true}) {
    const config::JobConfig base = base_job(llama);
    const Reference ref = reference(base);
    struct Case {
      int tp, pp, dp, v;
      bool recompute;
      int cp = 1;
    };
    std::vector<Case> cases{{1, 1, world_size(), 1, false}};
    if (!llama) cases.push_back({1, 1, world_size(), 1, true});
    if (world_size() == 4)
      cases.insert(cases.end(),
                   {{2, 1, 2, 1, false}, {1, 2, 2, 1, false}, {1, 2, 2, 2, false}, {1, 1, 2, 1, false, 2}});
    if (world_size() == 8 && !llama) cases.push_back({2, 2, 2, 1, false});
    if (world_size() == 8) cases.push_back({2, 1, 2, 1, false, 2});
    for (const Case& c : cases)
      for (const int zero : {2, 3}) {
        config::JobConfig j = base;
        j.parallel.tp = c.tp;
        j.parallel.cp = c.cp;
        j.parallel.pp = c.pp;
        j.parallel.dp = c.dp;
        j.parallel.virtual_stages = c.v;
        j.parallel.schedule =
            c.v > 1 ? config::PipelineSchedule::interleaved_1f1b : config::PipelineSchedule::one_f_one_b;
        j.parallel.sequence_parallel = c.tp > 1;
        j.parallel.zero_stage = zero;
        j.model.recompute = c.recompute ? config::RecomputeKind::full : config::RecomputeKind::none;
        expect_matches(j, ref);
      }
  }
}

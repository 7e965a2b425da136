// The stage's memory plan (stage_plan.hpp): the one statement of what a stage allocates.
#include "strata/model/stage_plan.hpp"

#include <array>

#include "strata/core/error.hpp"

namespace strata::model {

BackendSpec cpu_backend_spec(DType scalar) {
  STRATA_CHECK(scalar == DType::f32 || scalar == DType::f64, "the CPU backend computes in fp32 or fp64, not ",
               dtype_name(scalar));
  BackendSpec s;
  s.name = scalar == DType::f32 ? "cpu fp32" : "cpu fp64";
  s.device = Device::cpu;
  s.act = s.grad = s.stat = scalar;
  return s;
}

BackendSpec cuda_backend_spec() {
  BackendSpec s;
  s.name = "cuda bf16";
  s.device = Device::cuda;
  s.act = DType::bf16;
  s.grad = DType::f32;
  s.stat = DType::f32;
  s.master_weights = true;
  // Aligned logits rows for cuBLASLt and the vectorised cross-entropy (GPT-2's 50257 -> 50304).
  s.vocab_multiple = 64;
  s.attention = AttentionMemory::flash;
  s.rope_table = true;
  s.host_memory = false;
  return s;
}

std::int64_t attention_saved_elems(const BackendSpec& spec, std::int64_t B, std::int64_t T, std::int64_t NH) {
  return spec.attention == AttentionMemory::probabilities ? B * NH * T * T : B * NH * T;
}

std::int64_t attention_work_elems(const BackendSpec& spec, std::int64_t B, std::int64_t T, std::int64_t NH,
                                  std::int64_t HS) {
  // probabilities: dP then dS of one (b, h) at a time; flash: the fp32 dQ accumulator and the
  // row sums D = rowsum(dO * O) (kernels/cuda/attention.cu, attention_workspace_floats).
  return spec.attention == AttentionMemory::probabilities ? T * T : B * T * NH * HS + B * NH * T;
}

StagePlan::StagePlan(const config::ModelConfig& model, const ChunkPlacement& placement, int batch,
                     int seq_len, int n_slots, const BackendSpec& backend, StageMode stage_mode)
    : cfg(model), place(placement), spec(backend), mode(stage_mode) {
  const int tps = place.tp_size;
  // train: every layer's activations per slot, gradients, backward work space; evaluate:
  // forward and loss through two alternating residual streams; inference: the same with the
  // keys and values in a cache and no loss.
  const bool train = mode == StageMode::train;
  const bool cached = mode == StageMode::inference;
  STRATA_CHECK(seq_len >= 1 && seq_len <= cfg.max_seq_len, "sequence length ", seq_len,
               " is outside [1, model.max_seq_len = ", cfg.max_seq_len, "]");
  STRATA_CHECK(batch >= 1, "micro-batch of ", batch, " sequences, expected >= 1");
  STRATA_CHECK(cfg.num_heads % tps == 0 && cfg.kv_heads() % tps == 0 && cfg.ffn() % tps == 0, "tp = ", tps,
               " must divide heads (", cfg.num_heads, "), KV heads (", cfg.kv_heads(),
               ") and the MLP width (", cfg.ffn(), ")");
  STRATA_CHECK(!cached || (batch == 1 && n_slots == 1 && !place.sequence_parallel),
               "an inference stage holds one sequence, one slot and no sequence parallelism");
  STRATA_CHECK(train || n_slots == 1, "only a training stage keeps several micro-batches in flight");
  StageDims& d = dims;
  d.B = batch;
  d.T = seq_len;
  d.C = cfg.d_model;
  d.NH = cfg.num_heads / tps;
  d.NKV = cfg.kv_heads() / tps;
  d.HS = cfg.head_size();
  d.F = cfg.ffn() / tps;
  d.V = padded_vocab(cfg.vocab_size, tps, spec.vocab_multiple) / tps;
  d.L = place.num_layers < 0 ? cfg.num_layers : place.num_layers;
  d.first_layer = place.first_layer;
  d.N = std::int64_t(batch) * seq_len;
  d.sp = place.sequence_parallel && tps > 1;
  STRATA_CHECK(!place.sequence_parallel || d.N % tps == 0, "sequence parallelism needs batch x seq_len (",
               d.N, ") divisible by tp (", tps, ")");
  d.Nsp = place.sequence_parallel ? d.N / tps : d.N;
  d.Q = std::int64_t(d.NH) * d.HS;
  d.KV = std::int64_t(d.NKV) * d.HS;
  d.vocab_start = std::int64_t(place.tp_rank) * d.V;
  d.vocab_real = std::max<std::int64_t>(0, std::min<std::int64_t>(d.V, cfg.vocab_size - d.vocab_start));
  ChunkPlacement table_place = place;
  table_place.vocab_multiple = spec.vocab_multiple;
  table = make_parameter_table(cfg, table_place);
  STRATA_CHECK(std::int64_t(table.offsets().layers.size()) == d.L, "stage plan: the parameter table holds ",
               table.offsets().layers.size(), " layers, expected ", d.L);

  // Parameters (the compute copy) and gradients, padded to a multiple of flat_multiple (the DP
  // size, for ZeRO-1's equal pieces); the padding stays zero.
  const int fm = std::max(1, place.flat_multiple);
  flat = (table.numel() + fm - 1) / fm * fm;
  if (!place.sharded_params) params = weights.add("params", {flat}, spec.act, "persistent");
  if (train && !place.sharded_grads) grads = weights.add("grads", {flat}, spec.grad, "persistent");
  if (train && place.sharded_grads && place.split_backward) plan_held_grads();

  const std::int64_t N = d.N, Ns = d.Nsp, C = d.C, Q = d.Q, KV = d.KV, F = d.F, V = d.V;
  const DType A = spec.act, S = spec.stat, G = spec.grad;
  const bool swiglu = cfg.mlp == config::MlpKind::swiglu;
  // One set of layer activations for all layers: full recomputation keeps only each layer's
  // input, and inference keeps nothing but the KV cache.
  const bool shared = !train || cfg.recompute == config::RecomputeKind::full;
  STRATA_CHECK(!(place.split_backward && train && shared),
               "a split backward (parallel.schedule: zb_h1) keeps every layer's activations: not with "
               "model.recompute: full");
  const bool ulysses = place.cp_size > 1 && place.cp_mode == config::CpMode::ulysses;
  const bool ring = place.cp_size > 1 && !ulysses;  // ring attention saves the row log-sum-exp
  if (ulysses) check_ulysses_heads();
  const int heads_cp = ulysses ? place.cp_size : 1;  // Ulysses: whole sequences, NH / cp heads
  const std::int64_t saved = cached ? 0
                             : ring ? d.N * d.NH
                                    : attention_saved_elems(spec, d.B, d.T * heads_cp, d.NH / heads_cp);
  auto add_layer_set = [&](const std::string& p, const char* life) {
    auto add = [&](const char* n, Shape sh, DType t) { return acts.add(p + n, std::move(sh), t, life); };
    Layer a{};
    a.ln1_mean = cfg.norm == config::NormKind::layernorm ? add("ln1_mean", {Ns}, S) : none;
    a.ln1_rstd = add("ln1_rstd", {Ns}, S);
    a.ln1 = add("ln1", {N, C}, A);
    a.q = add("q", {N, Q}, A);
    a.k = cached ? none : add("k", {N, KV}, A);  // inference: straight into the cache
    a.v = cached ? none : add("v", {N, KV}, A);
    a.attn_saved =
        saved > 0 ? add(spec.attention == AttentionMemory::flash || ring ? "attn_lse" : "att", {saved}, S)
                  : none;
    a.attn_y = add("attn_y", {N, Q}, A);
    a.mid = add("mid", {Ns, C}, A);
    a.ln2_mean = cfg.norm == config::NormKind::layernorm ? add("ln2_mean", {Ns}, S) : none;
    a.ln2_rstd = add("ln2_rstd", {Ns}, S);
    a.ln2 = add("ln2", {N, C}, A);
    a.fc = add(swiglu ? "gate" : "fc", {N, F}, A);
    a.up = swiglu ? add("up", {N, F}, A) : none;
    a.act = add("act", {N, F}, A);
    if (place.split_backward && train && !shared) {
      a.dy_w2 = add("grad.mlp_out", {N, C}, A);
      a.dy_wo = add("grad.attn_out", {N, C}, A);
    }
    if (ulysses && !cached) a.cp_y = add("attn_y_heads", {N, Q}, A);
    return a;
  };
  Layer shared_set{};
  if (shared) shared_set = add_layer_set("layer*.", train ? "layer" : "call");
  slots.resize(std::size_t(n_slots));
  std::array<std::size_t, 2> pingpong{none, none};
  if (!train)  // forward only: layer l reads stream l % 2 and writes the other
    for (int i = 0; i < 2; ++i)
      pingpong[std::size_t(i)] = acts.add("resid." + std::to_string(i), {Ns, C}, A, "call");
  for (int s = 0; s < n_slots; ++s) {
    const std::string sp = n_slots > 1 ? "slot" + std::to_string(s) + "." : "";
    Slot& si = slots[std::size_t(s)];
    for (int l = 0; l <= d.L; ++l)
      si.resid.push_back(train
                             ? acts.add(sp + "resid." + std::to_string(d.first_layer + l), {Ns, C}, A, "step")
                             : pingpong[std::size_t(l % 2)]);
    for (int l = 0; l < d.L; ++l)
      si.layers.push_back(
          shared ? shared_set
                 : add_layer_set(sp + "layers." + std::to_string(d.first_layer + l) + ".", "step"));
    if (place.has_head) {
      if (cfg.norm == config::NormKind::layernorm)
        si.lnf_mean = acts.add(sp + "final_norm_mean", {Ns}, S, "step");
      si.lnf_rstd = acts.add(sp + "final_norm_rstd", {Ns}, S, "step");
      if (train) si.head_dx = acts.add(sp + "grad.head_input", {Ns, C}, G, "step");
    }
    if (place.has_embedding) si.tokens = acts.add(sp + "tokens", {N}, DType::i32, "step");
  }
  auto work = [&](const char* n, Shape sh, DType t) { return acts.add(n, std::move(sh), t, "work"); };
  if (place.has_head) {
    lnf = work("final_norm", {N, C}, A);
    logits = work("logits", {N, V}, A);
    if (!cached) {
      losses = work("losses", {N}, S);
      ce_stats = work("ce_stats", {3, N}, S);
      targets = work("targets", {N}, DType::i32);
    } else if (tps > 1) {
      logits_gathered = work("logits_gathered", {tps, N, V}, A);
    }
  }
  if (spec.rope_table && cfg.positions == config::PositionKind::rope)
    rope_table = acts.add("rope.cos_sin", {std::int64_t(cfg.max_seq_len), d.HS}, S, "persistent");
  if (train) {
    d_resid = work("grad.resid", {Ns, C}, G);
    d_ln = work("grad.ln", {N, C}, A);
    // dL/d(out) as the next GEMM reads it: the residual gradient itself when it has the
    // activation dtype and all N rows; else a cast (act != grad) and/or the gathered rows (SP).
    if (d.sp || A != G) d_out = work("grad.out", {N, C}, A);
    if (d.sp && A != G && place.has_embedding) d_resid_full = work("grad.resid_full", {N, C}, G);
    if (d.sp) partial = work("tp_partial", {N, C}, A);
    d_attn_y = work("grad.attn_y", {N, Q}, A);
    d_q = work("grad.q", {N, Q}, A);
    d_k = work("grad.k", {N, KV}, A);
    d_v = work("grad.v", {N, KV}, A);
    d_fc = work(swiglu ? "grad.gate" : "grad.fc", {N, F}, A);
    if (swiglu) d_up = work("grad.up", {N, F}, A);
    d_act = work("grad.act", {N, F}, A);
    if (!ring)
      attn_work =
          work("grad.attn_work", {attention_work_elems(spec, d.B, d.T * heads_cp, d.NH / heads_cp, d.HS)}, S);
  } else if (d.sp) {
    partial = work("tp_partial", {N, C}, A);
  }
  if (ring) plan_ring_attention(train);
  if (ulysses) plan_ulysses_attention();
  if (cached) {
    // The CPU's cached attention scores one head at a time.
    if (spec.attention == AttentionMemory::probabilities) attn_work = work("scores", {N, N}, S);
    for (int l = 0; l < d.L; ++l) {
      const std::string name = "kv_cache." + std::to_string(d.first_layer + l);
      k_cache.push_back(acts.add(name + ".k", {N, KV}, A, "cache"));
      v_cache.push_back(acts.add(name + ".v", {N, KV}, A, "cache"));
    }
  }
}

void StagePlan::plan_held_grads() {
  // zb_h1 runs a layer's W pass (micro-batch mb) after other micro-batches' B passes, and ZeRO-2
  // reduce-scatters the layer's unit right after W: the B pass's gradients of the layer wait
  // here, packed layer after layer, and W adds them to the unit and clears them (stage_split_impl.hpp).
  std::int64_t n = 0;
  for (const LayerOffsets& l : table.offsets().layers) {
    LayerOffsets& h = held_layout.layers.emplace_back();
    for (auto field : input_pass_tensors) {
      if (l.*field < 0) continue;
      for (const ParamInfo& p : table.entries())
        STRATA_CHECK(p.offset != l.*field || p.numel == dims.C, "stage plan: ", p.name, " has ", p.numel,
                     " elements, the held gradients d_model = ", dims.C);
      h.*field = n;
      n += dims.C;
    }
  }
  held_layout.first_layer = table.offsets().first_layer;
  held_grads = weights.add("grads.held", {n}, spec.grad, "step");
}

double model_flops_per_token(const config::ModelConfig& cfg, int seq_len) {
  // 6N: forward 2N, backward 4N multiply-adds (Kaplan et al. 2020, section 2.1); attention's
  // score and value products add 12 L T C per token (forward 4 L T C, backward 8).
  const double n = double(make_parameter_table(cfg).matmul_numel());
  return 6.0 * n + 12.0 * cfg.num_layers * double(seq_len) * cfg.d_model;
}

}  // namespace strata::model

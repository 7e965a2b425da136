// The transformer chunk on the GPU: the math of model/transformer.cpp (see transformer.hpp),
// in bf16 with fp32 statistics, residual-stream gradient and weight gradients.
//
//   x0 = wte[tokens] (+ wpe[t])                                  TP: each rank its vocab slice, all-reduce
//   per layer:  a = n1(x); q,k,v = a Wq^T, a Wk^T, a Wv^T (+b)    column-parallel (heads split)
//               q,k = rope(q,k); y = attn(q,k,v)
//               mid = x + y Wo^T (+bo)                            row-parallel: all-reduce before bias
//               h = n2(mid); act = gelu(h W1^T) | silu(h Wg^T) * (h Wu^T)
//               out = mid + act W2^T (+b2)                        row-parallel: all-reduce
//   logits = nf(x_L) Whead^T  (Whead = wte when tied)             vocab-parallel cross-entropy
//
// Tensor-parallel conjugate pairs (Megatron-LM section 3; sequence parallelism: Korthikanti
// et al. 2022, section 4.2.2, where the residual stream and the norms run on Nsp = N / tp
// rows and row r of the [N, C] stream belongs to TP rank r / Nsp):
//   entering a TP region   forward identity (SP: all-gather)       backward all-reduce (SP: reduce-scatter)
//   leaving a TP region    forward all-reduce (SP: reduce-scatter)  backward identity (SP: all-gather)
// The collectives are bf16 on the TP NcclCommunicator's blocking forms (compute stream). With
// SP the gradients of the replicated tensors computed from sequence shards (norms,
// row-parallel biases) are summed over TP once per step (fp32), before their DP bucket.
//
// Backward precision: d_resid (dL/d residual stream) is fp32; the norm backward adds (+=)
// into it, the identity paths leave it as is. Where a GEMM needs dL/d out it is cast to bf16
// (d_resid_bf). Weight gradients are fp32 and accumulated (+=) by the GEMMs, so micro-batches
// sum without bf16 rounding; with tied embeddings the output layer's dW and the embedding's
// scatter-add both land in the one fp32 gradient of embed.wte.
#include <string>

#include "gpu_engine_impl.hpp"
#include "strata/kernels/cuda/activations.hpp"
#include "strata/kernels/cuda/attention.hpp"
#include "strata/kernels/cuda/cross_entropy.hpp"
#include "strata/kernels/cuda/elementwise.hpp"
#include "strata/kernels/cuda/embedding.hpp"
#include "strata/kernels/cuda/norm.hpp"
#include "strata/kernels/cuda/rope.hpp"

namespace strata::parallel {

using config::MlpKind;

namespace {
std::string layer_name(int l, const char* rest) { return "layers." + std::to_string(l) + "." + rest; }
}  // namespace

// ---- memory --------------------------------------------------------------------------------

void GpuEngine::Impl::plan_activations() {
  // Per layer, what its backward reads; one shared set under recompute = full (only the
  // residual streams, i.e. each layer's input, are kept per layer then).
  auto add_set = [&](const std::string& p, const char* life) {
    auto b = [&](const char* n, Shape sh) { act_plan.add(p + n, std::move(sh), DType::bf16, life); };
    auto f = [&](const char* n, Shape sh) { act_plan.add(p + n, std::move(sh), DType::f32, life); };
    b("ln1", {N, C});
    b("q", {N, Q});
    b("k", {N, KV});
    b("v", {N, KV});
    b("attn_y", {N, Q});
    b("mid", {Nsp, C});
    b("ln2", {N, C});
    b(swiglu ? "gate" : "fc", {N, F});
    if (swiglu) b("up", {N, F});
    b("act", {N, F});
    f("ln1_mean", {Nsp});
    f("ln1_rstd", {Nsp});
    f("lse", {std::int64_t(B) * NH * T});
    f("ln2_mean", {Nsp});
    f("ln2_rstd", {Nsp});
  };
  for (int l = 0; l <= L; ++l) act_plan.add("resid." + std::to_string(l), {Nsp, C}, DType::bf16, "step");
  if (recompute) add_set("layer*.", "layer");
  else
    for (int l = 0; l < L; ++l) add_set("layers." + std::to_string(l) + ".", "step");
  act_plan.add("tokens", {N}, DType::i32, "micro-batch");
  act_plan.add("targets", {N}, DType::i32, "micro-batch");
  act_plan.add("final_norm", {N, C}, DType::bf16, "micro-batch");
  act_plan.add("final_norm_mean", {Nsp}, DType::f32, "micro-batch");
  act_plan.add("final_norm_rstd", {Nsp}, DType::f32, "micro-batch");
  act_plan.add("logits", {N, V}, DType::bf16, "micro-batch");
  act_plan.add("losses", {N}, DType::f32, "micro-batch");
  act_plan.add("ce_stats", {3 * N}, DType::f32, "micro-batch");
  act_plan.add("grad.resid", {Nsp, C}, DType::f32, "work");
  act_plan.add("grad.resid_bf16", {N, C}, DType::bf16, "work");  // SP: the all-gathered [N, C]
  if (sp) {
    act_plan.add("tp_partial", {N, C}, DType::bf16, "work");
    act_plan.add("grad.shard", {Nsp, C}, DType::bf16, "work");
    act_plan.add("grad.resid_full", {N, C}, DType::f32, "work");
  }
  act_plan.add("grad.ln", {N, C}, DType::bf16, "work");
  act_plan.add("grad.attn_y", {N, Q}, DType::bf16, "work");
  act_plan.add("grad.q", {N, Q}, DType::bf16, "work");
  act_plan.add("grad.k", {N, KV}, DType::bf16, "work");
  act_plan.add("grad.v", {N, KV}, DType::bf16, "work");
  act_plan.add(swiglu ? "grad.gate" : "grad.fc", {N, F}, DType::bf16, "work");
  if (swiglu) act_plan.add("grad.up", {N, F}, DType::bf16, "work");
  act_plan.add("grad.act", {N, F}, DType::bf16, "work");
  const kc::FlashShape shape{B, T, NH, NKV, HS, Q, KV, cfg.attention == config::AttentionKind::causal};
  act_plan.add("attention.workspace", {std::max<std::int64_t>(1, kc::attention_workspace_floats(shape))},
               DType::f32, "work");
  act_plan.add("rope.cos_sin", {rope ? std::int64_t(cfg.max_seq_len) * HS : 1}, DType::f32, "persistent");
  host_plan.add("tokens", {std::int64_t(m) * N}, DType::i32, "step");
  host_plan.add("targets", {std::int64_t(m) * N}, DType::i32, "step");
  host_plan.add("losses", {std::int64_t(m) * N}, DType::f32, "step");
}

void GpuEngine::Impl::bind_activations() {
  auto bp = [&](const std::string& n) { return static_cast<bf16*>(act_plan.tensor(n).raw()); };
  auto fp = [&](const std::string& n) { return static_cast<float*>(act_plan.tensor(n).raw()); };
  for (int l = 0; l <= L; ++l) resid.push_back(bp("resid." + std::to_string(l)));
  auto set = [&](const std::string& p) {
    GpuLayerActs a{};
    a.ln1 = bp(p + "ln1");
    a.q = bp(p + "q");
    a.k = bp(p + "k");
    a.v = bp(p + "v");
    a.attn_y = bp(p + "attn_y");
    a.mid = bp(p + "mid");
    a.ln2 = bp(p + "ln2");
    a.fc = bp(p + (swiglu ? "gate" : "fc"));
    a.up = swiglu ? bp(p + "up") : nullptr;
    a.act = bp(p + "act");
    a.ln1_mean = fp(p + "ln1_mean");
    a.ln1_rstd = fp(p + "ln1_rstd");
    a.lse = fp(p + "lse");
    a.ln2_mean = fp(p + "ln2_mean");
    a.ln2_rstd = fp(p + "ln2_rstd");
    return a;
  };
  for (int l = 0; l < L; ++l) acts.push_back(set(recompute ? std::string("layer*.") : "layers." + std::to_string(l) + "."));
  tokens = static_cast<std::int32_t*>(act_plan.tensor("tokens").raw());
  targets = static_cast<std::int32_t*>(act_plan.tensor("targets").raw());
  lnf = bp("final_norm");
  lnf_mean = fp("final_norm_mean");
  lnf_rstd = fp("final_norm_rstd");
  logits = bp("logits");
  losses = fp("losses");
  ce_max = fp("ce_stats");
  ce_sum = ce_max + N;
  ce_target = ce_sum + N;  // adjacent to ce_sum: one all-reduce of 2N values
  d_resid = fp("grad.resid");
  d_resid_bf = bp("grad.resid_bf16");
  if (sp) {
    partial = bp("tp_partial");
    d_shard = bp("grad.shard");
    d_full_f32 = fp("grad.resid_full");
  }
  d_ln = bp("grad.ln");
  d_attn_y = bp("grad.attn_y");
  d_q = bp("grad.q");
  d_k = bp("grad.k");
  d_v = bp("grad.v");
  d_fc = bp(swiglu ? "grad.gate" : "grad.fc");
  d_up = swiglu ? bp("grad.up") : nullptr;
  d_act = bp("grad.act");
  attn_ws = fp("attention.workspace");
  rope_cs = fp("rope.cos_sin");
  h_tokens = static_cast<std::int32_t*>(host_plan.tensor("tokens").raw());
  h_targets = static_cast<std::int32_t*>(host_plan.tensor("targets").raw());
  h_losses = static_cast<float*>(host_plan.tensor("losses").raw());
  if (rope) {  // the angle table, computed in double on the host, uploaded once
    const std::vector<float> table_cs = kc::rope_table(cfg.max_seq_len, HS, cfg.rope_theta);
    STRATA_CHECK(std::int64_t(table_cs.size()) == std::int64_t(cfg.max_seq_len) * HS,
                 "rope_table returned ", table_cs.size(), " floats, expected ", std::int64_t(cfg.max_seq_len) * HS);
    STRATA_CUDA_CHECK(cudaMemcpyAsync(rope_cs, table_cs.data(), table_cs.size() * sizeof(float),
                                      cudaMemcpyHostToDevice, s));
    stream->synchronize("GpuEngine: rope table upload");
  }
}

void GpuEngine::Impl::bind_parameters() {
  params = static_cast<bf16*>(param_plan.tensor("params.bf16").raw());
  grads = static_cast<float*>(param_plan.tensor("grads.f32").raw());
  auto offset = [&](const std::string& name) -> std::int64_t {
    const model::ParamInfo* p = table.find(name);
    return p ? p->offset : -1;  // absent: no bias, or the other MLP kind
  };
  const bool gelu = cfg.mlp == MlpKind::gelu;
  for (int l = 0; l < L; ++l) {
    const char* names[18] = {"attn_norm.weight", "attn_norm.bias", "attn.wq.weight", "attn.wq.bias",
                             "attn.wk.weight",   "attn.wk.bias",   "attn.wv.weight", "attn.wv.bias",
                             "attn.wo.weight",   "attn.wo.bias",   "mlp_norm.weight", "mlp_norm.bias",
                             gelu ? "mlp.fc.weight" : "mlp.gate.weight", gelu ? "mlp.fc.bias" : "mlp.gate.bias",
                             "mlp.up.weight",    "mlp.up.bias",
                             gelu ? "mlp.proj.weight" : "mlp.down.weight", gelu ? "mlp.proj.bias" : "mlp.down.bias"};
    GpuLayerPtrs<bf16> pw{};
    GpuLayerPtrs<float> pg{};
    bf16** wp[18] = {&pw.n1_w, &pw.n1_b, &pw.wq, &pw.bq, &pw.wk, &pw.bk, &pw.wv, &pw.bv, &pw.wo,
                     &pw.bo,   &pw.n2_w, &pw.n2_b, &pw.w1, &pw.b1, &pw.w3, &pw.b3, &pw.w2, &pw.b2};
    float** gp[18] = {&pg.n1_w, &pg.n1_b, &pg.wq, &pg.bq, &pg.wk, &pg.bk, &pg.wv, &pg.bv, &pg.wo,
                      &pg.bo,   &pg.n2_w, &pg.n2_b, &pg.w1, &pg.b1, &pg.w3, &pg.b3, &pg.w2, &pg.b2};
    for (int i = 0; i < 18; ++i) {
      const std::int64_t o = offset(layer_name(l, names[i]));
      *wp[i] = o < 0 ? nullptr : params + o;
      *gp[i] = o < 0 ? nullptr : grads + o;
    }
    w.push_back(pw);
    g.push_back(pg);
  }
  auto pair = [&](const char* name, bf16*& pw, float*& pg) {
    const std::int64_t o = offset(name);
    pw = o < 0 ? nullptr : params + o;
    pg = o < 0 ? nullptr : grads + o;
  };
  pair("embed.wte", wte, dwte);
  pair("embed.wpe", wpe, dwpe);
  pair(cfg.tied_embeddings ? "embed.wte" : "lm_head.weight", head_w, dhead_w);
  pair("final_norm.weight", nf_w, dnf_w);
  pair("final_norm.bias", nf_b, dnf_b);
  STRATA_CHECK(wte && head_w && nf_w, "GpuEngine: the parameter table lacks the embedding or the output layer");
}

// ---- forward -----------------------------------------------------------------------------------

void GpuEngine::Impl::reduce_from_tp(bf16* partial_out, bf16* out) {
  if (!tp_comm) return;  // partial_out == out
  if (sp) tp_comm->reduce_scatter(partial_out, out, std::size_t(Nsp * C), DType::bf16, comm::ReduceOp::sum);
  else tp_comm->all_reduce(out, std::size_t(N * C), DType::bf16, comm::ReduceOp::sum);
}

const bf16* GpuEngine::Impl::reduce_grad_to_shard(bf16* partial_grad) {
  if (!tp_comm) return partial_grad;
  if (!sp) {
    tp_comm->all_reduce(partial_grad, std::size_t(N * C), DType::bf16, comm::ReduceOp::sum);
    return partial_grad;
  }
  tp_comm->reduce_scatter(partial_grad, d_shard, std::size_t(Nsp * C), DType::bf16, comm::ReduceOp::sum);
  return d_shard;
}

const bf16* GpuEngine::Impl::grad_out_full() {
  // This rank's rows of the bf16 [N, C] buffer, then (SP) all-gathered in place.
  bf16* mine = d_resid_bf + (sp ? std::int64_t(tp_rank) * Nsp * C : 0);
  kc::cast_f32_to_bf16(mine, d_resid, Nsp * C, s);
  if (sp) tp_comm->all_gather(mine, d_resid_bf, std::size_t(Nsp * C), DType::bf16);
  return d_resid_bf;
}

void GpuEngine::Impl::sum_sequence_parallel_grads(std::int64_t from) {
  // sp_sum_spans is in flat order; backward finishes gradients from the end of the buffer.
  while (sp_summed < sp_sum_spans.size()) {
    const auto& [offset, numel] = sp_sum_spans[sp_sum_spans.size() - 1 - sp_summed];
    if (offset < from) break;
    tp_comm->all_reduce(grads + offset, std::size_t(numel), DType::f32, comm::ReduceOp::sum);
    ++sp_summed;
  }
}

namespace {
// y = norm(x) with the statistics kept for the backward (LayerNorm: mean and rstd).
void norm_fwd(bool rms, bf16* y, float* mean, float* rstd, const bf16* x, const bf16* nw, const bf16* nb,
              std::int64_t N, std::int64_t C, float eps, cudaStream_t s) {
  if (rms) kc::rmsnorm_forward(y, rstd, x, nw, N, C, eps, s);
  else kc::layernorm_forward(y, mean, rstd, x, nw, nb, N, C, eps, s);
}
// dx += dnorm/dx^T dy (fp32 residual gradient); dw, db += (fp32).
void norm_bwd(bool rms, float* dx, float* dw, float* db, const bf16* dy, const bf16* x, const bf16* nw,
              const float* mean, const float* rstd, std::int64_t N, std::int64_t C, cudaStream_t s) {
  if (rms) kc::rmsnorm_backward(dx, dw, dy, x, nw, rstd, N, C, s);
  else kc::layernorm_backward(dx, dw, db, dy, x, nw, mean, rstd, N, C, s);
}
}  // namespace

void GpuEngine::Impl::norm_into_full(bf16* full, float* mean, float* rstd, const bf16* x, const bf16* nw,
                                     const bf16* nb) {
  bf16* y = sp ? full + std::int64_t(tp_rank) * Nsp * C : full;
  norm_fwd(rms, y, mean, rstd, x, nw, nb, Nsp, C, float(cfg.norm_eps), s);
  if (sp) tp_comm->all_gather(y, full, std::size_t(Nsp * C), DType::bf16);
}

void GpuEngine::Impl::embed_forward() {
  // Each TP rank looks up its vocabulary slice (other tokens give zero rows); positions are
  // added once, by TP rank 0; the partial embeddings are summed over the group (SP: each
  // rank keeps its rows of the sum).
  bf16* x0 = sp ? partial : resid[0];
  kc::embedding_forward(x0, tokens, wte, N, C, vocab_start, V, s);
  if (wpe && tp_rank == 0) kc::position_embedding_forward(x0, wpe, B, T, C, s);
  reduce_from_tp(x0, resid[0]);
}

void GpuEngine::Impl::layer_forward(int l) {
  const GpuLayerPtrs<bf16>& p = w[std::size_t(l)];
  const GpuLayerActs& a = acts[std::size_t(l)];
  const bf16* x = resid[std::size_t(l)];
  bf16* out = resid[std::size_t(l) + 1];
  // attention block: column-parallel Q, K, V over this rank's heads, row-parallel output
  norm_into_full(a.ln1, a.ln1_mean, a.ln1_rstd, x, p.n1_w, p.n1_b);
  blas->linear_forward(a.q, a.ln1, p.wq, p.bq, N, C, Q);
  blas->linear_forward(a.k, a.ln1, p.wk, p.bk, N, C, KV);
  blas->linear_forward(a.v, a.ln1, p.wv, p.bv, N, C, KV);
  if (rope) {
    kc::rope_forward(a.q, rope_cs, B, T, NH, HS, Q, s);
    kc::rope_forward(a.k, rope_cs, B, T, NKV, HS, KV, s);
  }
  const kc::FlashShape shape{B, T, NH, NKV, HS, Q, KV, cfg.attention == config::AttentionKind::causal};
  kc::attention_forward(a.attn_y, a.lse, a.q, a.k, a.v, shape, s);
  bf16* part = sp ? partial : a.mid;
  blas->linear_forward(part, a.attn_y, p.wo, nullptr, N, Q, C);
  reduce_from_tp(part, a.mid);  // leaving the TP region
  if (p.bo) kc::add_bias_bf16(a.mid, p.bo, Nsp, C, s);
  kc::add_bf16(a.mid, a.mid, x, Nsp * C, s);  // mid = x + attn
  // MLP block: column-parallel up (and gate), row-parallel down
  norm_into_full(a.ln2, a.ln2_mean, a.ln2_rstd, a.mid, p.n2_w, p.n2_b);
  blas->linear_forward(a.fc, a.ln2, p.w1, p.b1, N, C, F);
  if (swiglu) {
    blas->linear_forward(a.up, a.ln2, p.w3, p.b3, N, C, F);
    kc::swiglu_forward(a.act, a.fc, a.up, N * F, s);
  } else {
    kc::gelu_forward(a.act, a.fc, N * F, s);
  }
  part = sp ? partial : out;
  blas->linear_forward(part, a.act, p.w2, nullptr, N, F, C);
  reduce_from_tp(part, out);
  if (p.b2) kc::add_bias_bf16(out, p.b2, Nsp, C, s);
  kc::add_bf16(out, out, a.mid, Nsp * C, s);  // out = mid + mlp
}

void GpuEngine::Impl::head_loss(float dloss, bool with_grad) {
  norm_into_full(lnf, lnf_mean, lnf_rstd, resid[std::size_t(L)], nf_w, nf_b);
  blas->linear_forward(logits, lnf, head_w, nullptr, N, C, V);
  if (!tp_comm) {
    kc::cross_entropy_fused(logits, losses, targets, dloss, with_grad, N, vocab_real, V, s);
    return;
  }
  // Vocab-parallel: the logits stay sharded; two all-reduces combine the row statistics
  // (max, then the sum of exponentials and the target logit).
  kc::vocab_parallel_ce_max(ce_max, logits, N, vocab_real, V, s);
  tp_comm->all_reduce(ce_max, std::size_t(N), DType::f32, comm::ReduceOp::max);
  kc::vocab_parallel_ce_sumexp(ce_sum, ce_target, logits, ce_max, targets, N, vocab_real, V, vocab_start, s);
  tp_comm->all_reduce(ce_sum, std::size_t(2 * N), DType::f32, comm::ReduceOp::sum);
  kc::vocab_parallel_ce_finish(logits, losses, ce_max, ce_sum, ce_target, targets, dloss, with_grad, N,
                               vocab_real, V, vocab_start, s);
}

// ---- backward ----------------------------------------------------------------------------------

void GpuEngine::Impl::head_backward() {
  // logits = lnf Whead^T, the logits buffer now holding dL/dlogits (bf16).
  blas->linear_backward(d_ln, false, dhead_w, nullptr, logits, lnf, head_w, N, C, V);
  const bf16* dy = reduce_grad_to_shard(d_ln);  // entering the vocab-parallel region backward
  STRATA_CUDA_CHECK(cudaMemsetAsync(d_resid, 0, std::size_t(Nsp * C) * sizeof(float), s));
  norm_bwd(rms, d_resid, dnf_w, dnf_b, dy, resid[std::size_t(L)], nf_w, lnf_mean, lnf_rstd, Nsp, C, s);
}

void GpuEngine::Impl::layer_backward(int l) {
  const GpuLayerPtrs<bf16>& p = w[std::size_t(l)];
  const GpuLayerPtrs<float>& d = g[std::size_t(l)];
  const GpuLayerActs& a = acts[std::size_t(l)];
  const bf16* x = resid[std::size_t(l)];
  // d_resid holds dL/d(out). out = mid + W2 act + b2: the identity path leaves d_resid as the
  // first part of dL/d(mid); the MLP path is added to it by the norm backward.
  if (d.b2) kc::bias_grad_f32(d.b2, d_resid, Nsp, C, s);
  const bf16* d_out = grad_out_full();
  blas->linear_backward(d_act, false, d.w2, nullptr, d_out, a.act, p.w2, N, F, C);
  if (swiglu) kc::swiglu_backward(d_fc, d_up, d_act, a.fc, a.up, N * F, s);
  else kc::gelu_backward(d_fc, d_act, a.fc, N * F, s);
  blas->linear_backward(d_ln, false, d.w1, d.b1, d_fc, a.ln2, p.w1, N, C, F);
  if (swiglu) blas->linear_backward(d_ln, true, d.w3, d.b3, d_up, a.ln2, p.w3, N, C, F);
  const bf16* dy = reduce_grad_to_shard(d_ln);
  norm_bwd(rms, d_resid, d.n2_w, d.n2_b, dy, a.mid, p.n2_w, a.ln2_mean, a.ln2_rstd, Nsp, C, s);
  // mid = x + Wo attn(...) + bo: likewise d_resid becomes dL/dx.
  if (d.bo) kc::bias_grad_f32(d.bo, d_resid, Nsp, C, s);
  d_out = grad_out_full();
  blas->linear_backward(d_attn_y, false, d.wo, nullptr, d_out, a.attn_y, p.wo, N, Q, C);
  const kc::FlashShape shape{B, T, NH, NKV, HS, Q, KV, cfg.attention == config::AttentionKind::causal};
  kc::attention_backward(d_q, d_k, d_v, attn_ws, d_attn_y, a.attn_y, a.lse, a.q, a.k, a.v, shape, s);
  if (rope) {
    kc::rope_backward(d_q, rope_cs, B, T, NH, HS, Q, s);
    kc::rope_backward(d_k, rope_cs, B, T, NKV, HS, KV, s);
  }
  blas->linear_backward(d_ln, false, d.wq, d.bq, d_q, a.ln1, p.wq, N, C, Q);
  blas->linear_backward(d_ln, true, d.wk, d.bk, d_k, a.ln1, p.wk, N, C, KV);
  blas->linear_backward(d_ln, true, d.wv, d.bv, d_v, a.ln1, p.wv, N, C, KV);
  dy = reduce_grad_to_shard(d_ln);
  norm_bwd(rms, d_resid, d.n1_w, d.n1_b, dy, x, p.n1_w, a.ln1_mean, a.ln1_rstd, Nsp, C, s);
}

void GpuEngine::Impl::embed_backward() {
  // The whole [N, C] gradient on every TP rank (SP: all-gathered in fp32); each rank adds
  // into its vocabulary slice.
  const float* d = d_resid;
  if (sp) {
    tp_comm->all_gather(d_resid, d_full_f32, std::size_t(Nsp * C), DType::f32);
    d = d_full_f32;
  }
  kc::embedding_backward(dwte, d, tokens, N, C, vocab_start, V, s);
  if (dwpe) kc::position_embedding_backward(dwpe, d, B, T, C, s);
}

// ---- one micro-batch ---------------------------------------------------------------------------

void GpuEngine::Impl::forward_microbatch(int mb, const FillBatch& fill, float dloss, bool with_grad) {
  stage_batch(mb, fill);
  embed_forward();
  for (int l = 0; l < L; ++l) layer_forward(l);
  head_loss(dloss, with_grad);
  STRATA_CUDA_CHECK(cudaMemcpyAsync(h_losses + std::int64_t(mb) * N, losses, std::size_t(N) * sizeof(float),
                                    cudaMemcpyDeviceToHost, s));
}

void GpuEngine::Impl::backward_microbatch(bool last) {
  head_backward();
  final_backward = last;
  for (int l = L - 1; l >= 0; --l) {
    if (recompute) layer_forward(l);  // rebuild this layer's activations from its saved input
    layer_backward(l);
    // Last micro-batch: every gradient from this layer's start to the end of the flat buffer
    // is final (SP: once summed over TP); hand the buckets it completes to the DP reduction
    // (overlaps what follows).
    if (last) {
      if (sp) sum_sequence_parallel_grads(layer_ranges[std::size_t(l)].first);
      grads_ready_from(layer_ranges[std::size_t(l)].first);
    }
  }
  embed_backward();
  if (last && sp) sum_sequence_parallel_grads(0);
  final_backward = false;
}

}  // namespace strata::parallel

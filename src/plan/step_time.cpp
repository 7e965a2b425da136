// Time per step; see step_time.hpp for the model and its sources.
#include "strata/plan/step_time.hpp"

#include <algorithm>
#include <cmath>

#include "strata/core/error.hpp"
#include "strata/parallel/schedule.hpp"

namespace strata::plan {

using config::Precision;

double ring_reduce_scatter_s(double bytes, int n, double gb_per_s, double alpha_us) {
  if (n <= 1) return 0.0;
  return (n - 1) * alpha_us * 1e-6 + double(n - 1) / n * bytes / (gb_per_s * 1e9);
}

double ring_all_reduce_s(double bytes, int n, double gb_per_s, double alpha_us) {
  return 2.0 * ring_reduce_scatter_s(bytes, n, gb_per_s, alpha_us);  // reduce-scatter + all-gather
}

MicroBatchFlops micro_batch_flops(const Workload& w, const Layout& l, int layers, bool head) {
  const config::ModelConfig& m = w.model;
  const double s = w.seq_len, b = l.micro_batch, C = m.d_model, F = m.ffn();
  const double HS = m.head_size(), Q = m.num_heads * HS, KV = m.kv_heads() * HS, V = m.vocab_size;
  const bool full = l.recompute == Recompute::full, selective = l.recompute == Recompute::selective;
  // Per token and layer, forward: 2 x the layer's matmul parameters, and 4 T C for the attention
  // products Q K^T and A V (as flops.hpp counts them: the causal half is not subtracted; the
  // attention efficiency absorbs what a kernel skips). Training = forward + backward (twice the
  // forward) + what recomputation repeats (full: the forward; selective: the attention core).
  const double layer_matmul = (Q + 2 * KV) * C + C * Q + (m.mlp == config::MlpKind::swiglu ? 3 : 2) * F * C;
  const double fwd_gemm = 2.0 * layer_matmul, fwd_attn = 4.0 * s * C;
  MicroBatchFlops f;
  // Context parallelism: each rank holds s / cp of the tokens, whose queries still see the
  // whole sequence (4 T C per token: 1/cp of the attention work, balanced by the chunk order).
  const double sr = s / l.cp;
  f.gemm = b * sr * layers * (3.0 + (full ? 1.0 : 0.0)) * fwd_gemm / l.tp;
  f.attention = b * sr * layers * (3.0 + (full || selective ? 1.0 : 0.0)) * fwd_attn / l.tp;
  if (head) f.gemm += b * sr * 3.0 * 2.0 * V * C / l.tp;  // logits = x W^T, forward and backward
  return f;
}

namespace {

// Context parallelism (ring attention, docs/parallelism.md): per layer and micro-batch the
// forward passes cp - 1 K/V blocks around the ring, each sent while the previous block's
// attention is computed (exposed: what exceeds that compute); the backward passes cp - 1 K/V
// blocks the same way and cp dK/dV blocks after each block's compute (exposed). A block is
// this rank's s / cp rows of K and V (2 s b KV / (cp tp) elements). Then the gradients are
// summed over the cp ranks once per step (an all-reduce of the fp32 gradients, not overlapped).
// The cp ranks are neighbours in the rank order (TP, CP, DP, PP): inside a node when
// tp x cp <= GPUs per node.
//
// Ulysses (parallel.cp_mode: ulysses; model/ulysses_attention_impl.hpp): per layer and
// micro-batch, all-to-alls of this rank's s / cp rows of Q, K, V (b s (Q + 2 KV) / (cp tp)
// elements) and of the attention output (b s Q / (cp tp)) forward, of dO and dQ, dK, dV
// backward; each sends (cp - 1) / cp of its buffer, cp - 1 messages. Blocking: all exposed.
double ulysses_all_to_all_s(double bytes, int cp, double gb_per_s, double alpha_s) {
  return (cp - 1) * alpha_s + double(cp - 1) / cp * bytes / (gb_per_s * 1e9);
}

void context_parallel_time(StepTime& t, const Workload& w, const Layout& l, const config::ClusterConfig& c,
                           double mb_attention_s, double params_on_rank) {
  if (l.cp <= 1) return;
  const config::ModelConfig& m = w.model;
  const bool intra = l.tp * l.cp <= c.gpus_per_node;
  const double gbs = intra ? c.intra_node_gb_per_s : c.inter_node_gb_per_s;
  const double alpha = (intra ? c.intra_node_alpha_us : c.inter_node_alpha_us) * 1e-6;
  const double elt = l.precision == config::Precision::bf16 ? 2.0 : 4.0;
  const double kv = double(m.kv_heads()) * m.head_size();
  const double block = 2.0 * w.seq_len / l.cp * l.micro_batch * kv * elt / l.tp;  // K and V, bytes
  const double hop = 2.0 * alpha + block / (gbs * 1e9);
  // The backward's travelling dK/dV accumulators are fp32 (the gradient dtype) on every backend.
  const double grad_hop = 2.0 * alpha + block * (4.0 / elt) / (gbs * 1e9);
  const int layers = m.num_layers / l.pp;
  const double recompute = l.recompute == Recompute::full ? 2.0 : 1.0;  // forwards per micro-batch
  // The attention compute of one ring step: the micro-batch's attention time over layers,
  // passes (forward 1, backward 2) and the cp steps.
  const double step_compute = mb_attention_s / (layers * 3.0 * l.cp);
  const double fwd = (l.cp - 1) * hop, fwd_exposed = (l.cp - 1) * std::max(0.0, hop - step_compute);
  const double bwd = (l.cp - 1) * hop + l.cp * grad_hop;
  const double bwd_exposed = (l.cp - 1) * std::max(0.0, hop - 2.0 * step_compute) + l.cp * grad_hop;
  t.cp_comm = l.micro_batches * layers * (recompute * fwd + bwd);
  t.cp_exposed = l.micro_batches * layers * (recompute * fwd_exposed + bwd_exposed);
  if (l.ulysses) {
    const double rows = double(w.seq_len) / l.cp * l.micro_batch * elt / l.tp;  // bytes per element of a row
    const double q = double(m.num_heads) * m.head_size();
    const double qkv = ulysses_all_to_all_s(rows * (q + 2.0 * kv), l.cp, gbs, alpha);
    const double o = ulysses_all_to_all_s(rows * q, l.cp, gbs, alpha);
    t.cp_comm = t.cp_exposed = l.micro_batches * layers * (recompute + 1.0) * (qkv + o);
  }
  const double reduce = ring_all_reduce_s(4.0 * params_on_rank, l.cp, gbs, alpha * 1e6);
  t.cp_comm += reduce;
  t.cp_exposed += reduce;
}

// Bytes the element-wise kernels of one layer read or write per micro-batch, per pass. strata:
// its engine's own activation plan (memory.layer_activations_full: the CPU trainer's MemoryPlan;
// on GPUs whatever predict_gpu_stage reports). Megatron-LM 2021-22: Korthikanti et al.'s
// activation bytes, the s x s scores, softmax and dropout included.
double elementwise_bytes_per_layer(const Workload& w, const Layout& l, const MemoryBreakdown& memory) {
  if (l.framework == Framework::megatron_lm)
    return korthikanti_layer_activation_bytes(w.model, w.seq_len, l.micro_batch, l.tp,
                                              l.sequence_parallel && l.tp > 1, false);
  return memory.layer_activations_full;
}

// zb_h1's bubble over its ideal time m (F + B + W) (Qi et al. 2023, section 3.1), with the
// micro-batch's time split into its passes: the GEMMs a third each (forward, dX, dW: 2N FLOPs
// per token each), the attention products a third in F and two in B, the element-wise traffic
// a third each. m >= pp: (p - 1)(F + B - W) / (m (F + B + W)); fewer micro-batches: the
// schedule run on a clock (parallel::simulated_bubble_fraction, which the unit tests hold to
// the closed form).
double zero_bubble_fraction(const Layout& l, double gemm, double attention, double elementwise) {
  const parallel::PassCosts c{(gemm + attention + elementwise) / 3, (gemm + 2 * attention + elementwise) / 3,
                              (gemm + elementwise) / 3};
  if (l.micro_batches < l.pp)
    return parallel::simulated_bubble_fraction(config::PipelineSchedule::zb_h1, l.pp, l.micro_batches, 1, c);
  return (l.pp - 1) * (c.forward + c.input_grad - c.weight_grad) /
         (l.micro_batches * (c.forward + c.input_grad + c.weight_grad));
}

}  // namespace

StepTime predict_step_time(const Workload& w, const Layout& l, const config::ClusterConfig& c,
                           const MemoryBreakdown& memory) {
  const config::ModelConfig& m = w.model;
  const double s = w.seq_len, b = l.micro_batch, C = m.d_model;
  const int layers = m.num_layers / l.pp;
  const double elt = l.precision == Precision::bf16 ? 2.0 : 4.0;
  const bool full = l.recompute == Recompute::full, selective = l.recompute == Recompute::selective;

  // Rates. GEMMs: the calibrated fraction of peak, lower for narrow per-rank GEMMs (C / t).
  double gemm_rate = c.peak_tflops() * 1e12 * c.sustained_fraction;
  if (c.small_gemm_width > 0) {
    const double width = C / l.tp;
    gemm_rate *= width / (width + c.small_gemm_width);
  }
  // Attention products: strata's own attention kernel (attention_fraction); Megatron-LM ran them
  // as cuBLAS batched GEMMs (the GEMM fraction, without the narrow-width factor: head-sized).
  const double attn_rate =
      c.peak_tflops() * 1e12 *
      (l.framework == Framework::megatron_lm ? c.sustained_fraction : c.attention_efficiency());
  const double bandwidth = c.memory_bandwidth_gb_per_s * 1e9 * c.elementwise_fraction;

  // The busiest stage is the last (it adds the output layer); the mean stage (for the shared-node
  // bound) carries 1/pp of the output layer.
  const MicroBatchFlops last = micro_batch_flops(w, l, layers, true);
  const MicroBatchFlops body = micro_batch_flops(w, l, layers, false);
  // Element-wise work (norms, softmax, activations, residual adds, casts) is bound by memory
  // bandwidth: each layer's activations are written in the forward, read in the backward and
  // their gradients written (3 passes; 4 when the forward is recomputed).
  const double passes = full ? 4.0 : 3.0;
  const double elementwise = layers * passes * elementwise_bytes_per_layer(w, l, memory) / bandwidth;

  StepTime t;
  const double mb_gemm = last.gemm / gemm_rate, mb_attn = last.attention / attn_rate;
  t.micro_batch = mb_gemm + mb_attn + elementwise;
  t.gemm = l.micro_batches * mb_gemm;
  t.attention = l.micro_batches * mb_attn;
  t.elementwise = l.micro_batches * elementwise;
  t.compute = t.gemm + t.attention + t.elementwise;

  // Tensor parallelism (Shoeybi et al. 2019, sec. 3; Korthikanti et al. 2022, sec. 4.2.2): two
  // all-reduces of s b h per layer in the forward and two in the backward (with sequence
  // parallelism an all-gather + reduce-scatter pair of the same cost each), two more when the
  // forward is recomputed. Inside a node when t <= GPUs per node.
  double tp_per_mb = 0;
  if (l.tp > 1) {
    const bool intra = l.tp <= c.gpus_per_node;
    const double gbs = intra ? c.intra_node_gb_per_s : c.inter_node_gb_per_s;
    const double alpha = intra ? c.intra_node_alpha_us : c.inter_node_alpha_us;
    const int per_layer = full ? 6 : 4;
    tp_per_mb = layers * per_layer * ring_all_reduce_s(s / l.cp * b * C * elt, l.tp, gbs, alpha);
  }
  t.tp_comm = l.micro_batches * tp_per_mb;
  context_parallel_time(t, w, l, c, mb_attn, memory.params_on_rank);

  // Pipeline: the fill and drain bubble is (p-1)/v micro-batch times (Narayanan et al. 2021,
  // sec. 2.2.1-2.2.2: bubble fraction (p-1)/(v m)); one activation forward and one gradient
  // backward per micro-batch and virtual stage cross each stage boundary. Rank order is TP, then
  // DP, then PP (DESIGN.md), so neighbouring stages are t·d ranks apart: another node once
  // t·d >= GPUs per node.
  if (l.pp > 1) {
    t.bubble = double(l.pp - 1) / l.vpp * (t.micro_batch + tp_per_mb);
    if (l.zb)
      t.bubble = zero_bubble_fraction(l, mb_gemm, mb_attn, elementwise) * l.micro_batches *
                 (t.micro_batch + tp_per_mb);
    const bool intra = l.tp * l.cp * l.dp < c.gpus_per_node;
    const double gbs = intra ? c.intra_node_gb_per_s : c.inter_node_gb_per_s;
    const double alpha = intra ? c.intra_node_alpha_us : c.inter_node_alpha_us;
    const double bytes = s / l.cp * b * C * elt / l.tp;  // scatter/gather over TP (Narayanan sec. 4.1)
    t.pp_comm = 2.0 * l.micro_batches * l.vpp * (alpha * 1e-6 + bytes / (gbs * 1e9));
  }

  // Data parallelism: fp32 gradients reduce-scattered and parameters all-gathered (ZeRO-1,
  // Rajbhandari et al. 2020 sec. 5.1), or one all-reduce. The gradient collective overlaps the
  // last micro-batch's backward and the gather the first micro-batch's forward (Megatron-LM's
  // --overlap-grad-reduce / --overlap-param-gather); only the rest is exposed.
  const double P = memory.params_on_rank;
  if (l.dp > 1) {
    const bool intra = l.tp * l.cp * l.dp <= c.gpus_per_node;
    const double gbs = intra ? c.intra_node_gb_per_s : c.inter_node_gb_per_s;
    const double alpha = intra ? c.intra_node_alpha_us : c.inter_node_alpha_us;
    const double bwd_share = full ? 0.75 : selective ? 0.70 : 2.0 / 3.0;
    const double overlap = l.overlap_grad_reduce ? c.overlap_efficiency : 0.0;
    const double window_b = overlap * bwd_share * t.micro_batch;
    const double window_f = overlap * (1.0 - bwd_share) * t.micro_batch;
    if (l.zero >= 2) {
      // ZeRO-2: every micro-batch's gradients reduce-scattered layer by layer, each overlapping
      // that micro-batch's backward (the edges, reduced once per step, counted like a layer).
      // ZeRO-3: each layer's parameters all-gathered before its forward and again before its
      // backward in every micro-batch, the next layer's gather overlapping the current layer.
      const double rs = l.micro_batches * ring_reduce_scatter_s(4.0 * P, l.dp, gbs, alpha);
      const double ag =
          (l.zero == 3 ? 2.0 * l.micro_batches : 1.0) * ring_reduce_scatter_s(elt * P, l.dp, gbs, alpha);
      const double ag_window = l.zero == 3 ? overlap * l.micro_batches * t.micro_batch : window_f;
      t.dp_comm = rs + ag;
      t.dp_exposed = std::max(0.0, rs - l.micro_batches * window_b) + std::max(0.0, ag - ag_window);
    } else if (l.zero >= 1) {
      const double rs = ring_reduce_scatter_s(4.0 * P, l.dp, gbs, alpha);
      const double ag = ring_reduce_scatter_s(elt * P, l.dp, gbs, alpha);
      t.dp_comm = rs + ag;
      t.dp_exposed = std::max(0.0, rs - window_b) + std::max(0.0, ag - window_f);
    } else {
      t.dp_comm = ring_all_reduce_s(4.0 * P, l.dp, gbs, alpha);
      t.dp_exposed = std::max(0.0, t.dp_comm - window_b);
    }
  }

  // The optimizer step is bound by memory bandwidth: AdamW reads gradient, weight, m and v and
  // writes weight, m and v (bf16: fp32 master + a bf16 copy), on this rank's shard; the gradient
  // norm reads and the zeroing writes the whole local gradient buffer.
  const double shard = l.zero >= 1 ? P / l.dp : P;
  double adam_bytes = (l.precision == Precision::bf16 ? 30.0 : 28.0) * shard + 8.0 * P;
  // ZeRO-2: the norm reads the shard; each micro-batch zeroes the unit buffers (4 P) and adds
  // the reduced pieces into the shard (12 P / dp).
  if (l.zero >= 2) adam_bytes += 8.0 * shard - 8.0 * P + l.micro_batches * (4.0 * P + 12.0 * shard);
  t.optimizer = adam_bytes / bandwidth;

  t.critical_path = t.compute + t.tp_comm + t.bubble + t.pp_comm + t.dp_exposed + t.optimizer + t.cp_exposed;
  t.total = t.critical_path;
  if (c.oversubscribe > 1) {
    // A shared CPU node: ranks idle in the bubble or in a collective give their core away, so the
    // step is the node's work (its ranks' mean busy time; the stages differ by the output layer)
    // unless one rank's critical path at a full slot is longer. Communication is CPU work here.
    const double mean_mb = (body.gemm + (last.gemm - body.gemm) / l.pp) / gemm_rate + mb_attn + elementwise;
    t.node_work = l.micro_batches * mean_mb + t.tp_comm + t.pp_comm + t.dp_comm + t.optimizer + t.cp_comm;
    t.total = std::max(t.node_work, t.critical_path / c.oversubscribe);
  }
  const FlopsPerToken fpt = flops_per_token(m, w.counts, w.seq_len, l.recompute);
  t.tokens_per_s = double(l.global_batch()) * s / t.total;
  t.model_tflops_per_gpu = t.tokens_per_s * fpt.model / l.gpus() / 1e12;
  t.hardware_tflops_per_gpu = t.tokens_per_s * fpt.hardware / l.gpus() / 1e12;
  t.mfu = t.model_tflops_per_gpu / c.peak_tflops();
  return t;
}

config::ClusterConfig share_node(config::ClusterConfig c, int ranks_per_node) {
  if (ranks_per_node <= c.gpus_per_node) return c;
  if (c.device != config::DeviceKind::cpu)
    throw make_error(c.name, ": ", ranks_per_node, " ranks per node on ", c.gpus_per_node, " ", c.gpu,
                     " per node: only CPU ranks can share a slot");
  const double share = double(c.gpus_per_node) / ranks_per_node;  // of one slot, per rank
  c.oversubscribe = std::max(1, int(std::lround(1.0 / share)));
  c.peak_tflops_fp32 *= share;
  c.peak_tflops_bf16 *= share;
  c.memory_bandwidth_gb_per_s *= share;
  c.intra_node_gb_per_s *= share;  // shared-memory copies run on the rank's share of a core
  c.inter_node_gb_per_s *= share;  // the node's NIC, shared by its ranks
  // Each step of a collective waits until the partner rank has its core again: with k ranks per
  // core, about k times the latency of a dedicated core (a modelling assumption, validated only
  // by the 8-rank runs of docs/planner-validation.md sec. 4).
  c.intra_node_alpha_us *= c.oversubscribe;
  c.inter_node_alpha_us *= c.oversubscribe;
  c.memory_gib *= share;
  c.gpus_per_node = ranks_per_node;
  return c;
}

RunTime run_time(double tokens, double tokens_per_s, int gpus, const config::ClusterConfig& cluster) {
  RunTime r;
  r.seconds = tokens / tokens_per_s;
  r.days = r.seconds / 86400.0;
  r.gpu_hours = r.seconds * gpus / 3600.0;
  r.cost = r.gpu_hours * cluster.price_per_gpu_hour;
  r.energy_mwh = r.gpu_hours * cluster.power_watts / 1e6;
  return r;
}

}  // namespace strata::plan

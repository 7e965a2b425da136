// The buffers of a context-parallel stage (stage_plan.hpp): the ring's (ring_attention_impl.hpp)
// and the Ulysses all-to-all's (ulysses_attention_impl.hpp).
#include "strata/core/error.hpp"
#include "strata/model/stage_plan.hpp"

namespace strata::model {

void StagePlan::plan_ring_attention(bool train) {
  STRATA_CHECK(mode != StageMode::inference, "context parallelism (cp ", place.cp_size,
               ") is for training and evaluation, not the decoder");
  STRATA_CHECK(dims.T % 2 == 0,
               "context parallelism: each rank holds two equal chunks of the sequence, so its ", dims.T,
               " positions must be even");
  // K and V of the block being computed and of the one arriving, [N, KV] each, in one buffer.
  cp_ring = acts.add("cp.ring_kv", {4, dims.N, dims.KV}, spec.act, "work");
  if (train) {
    // The travelling dK and dV accumulators (two of each) and, where activations are stored in
    // another dtype than gradients (CUDA: bf16, fp32), the dQ accumulator: in the gradient
    // dtype, so that the sum over the ring's blocks is rounded to the activation dtype once.
    cp_grad = acts.add("cp.ring_dkv", {4, dims.N, dims.KV}, spec.grad, "work");
    if (spec.act != spec.grad) cp_dq = acts.add("cp.dq", {dims.N, dims.Q}, spec.grad, "work");
  }
  // One chunk of queries against one chunk of keys (c = T / 2): the probabilities kernel's
  // 2 c^2 + c HS (kernels/cpu/ring_attention.hpp), flash attention's row sums D [B, NH, c]
  // (kernels/cuda/attention.hpp, block_attention_workspace_floats).
  const std::int64_t c = dims.T / 2;
  const std::int64_t work =
      spec.attention == AttentionMemory::flash ? std::int64_t(dims.B) * dims.NH * c : 2 * c * c + c * dims.HS;
  cp_work = acts.add("cp.block_work", {work}, spec.stat, "work");
}

}  // namespace strata::model

namespace strata::model {

void StagePlan::check_ulysses_heads() const {
  STRATA_CHECK(mode != StageMode::inference, "context parallelism (cp ", place.cp_size,
               ") is for training and evaluation, not the decoder");
  const int cp = place.cp_size;
  STRATA_CHECK(dims.NH % cp == 0 && dims.NKV % cp == 0, "parallel.cp_mode: ulysses splits the heads of a ",
               "tensor-parallel rank over parallel.cp = ", cp, ": model.num_heads / parallel.tp = ", dims.NH,
               " and model.num_kv_heads / parallel.tp = ", dims.NKV, " must both be divisible by ", cp);
  STRATA_CHECK(dims.T % 2 == 0,
               "context parallelism: each rank holds two equal chunks of the sequence, so its ", dims.T,
               " positions must be even");
}

void StagePlan::plan_ulysses_attention() {
  // One layer's q, k and v leave in one all-to-all; the attention output and the gradients
  // (dO forward, dQ, dK, dV back) reuse the same two buffers.
  const std::int64_t n = dims.N * (dims.Q + 2 * dims.KV);
  cp_send = acts.add("cp.a2a_send", {n}, spec.act, "work");
  cp_recv = acts.add("cp.a2a_recv", {n}, spec.act, "work");
}

}  // namespace strata::model

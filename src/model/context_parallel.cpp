// The ring-attention buffers of a context-parallel stage (stage_plan.hpp; the ring itself is
// in ring_attention_impl.hpp).
#include "strata/core/error.hpp"
#include "strata/model/stage_plan.hpp"

namespace strata::model {

void StagePlan::plan_ring_attention(bool train) {
  STRATA_CHECK(mode != StageMode::inference, "context parallelism (cp ", place.cp_size,
               ") is for training and evaluation, not the decoder");
  STRATA_CHECK(dims.T % 2 == 0,
               "context parallelism: each rank holds two equal chunks of the sequence, so its ", dims.T,
               " positions must be even");
  // K and V of the block being computed and of the one arriving (and with a backward, the
  // travelling dK and dV accumulators, two of each), [N, KV] each, in one buffer.
  const std::int64_t blocks = train ? 8 : 4;
  cp_ring = acts.add("cp.ring_kv", {blocks, dims.N, dims.KV}, spec.act, "work");
  // One chunk of queries against one chunk of keys: 2 c^2 + c HS with c = T / 2.
  const std::int64_t c = dims.T / 2;
  cp_work = acts.add("cp.block_work", {2 * c * c + c * dims.HS}, spec.stat, "work");
}

}  // namespace strata::model

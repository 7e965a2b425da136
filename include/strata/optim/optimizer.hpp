// AdamW over the flat parameter buffer, the learning-rate schedule and global-norm clipping.
//
// Weight decay applies to weight matrices only: never to norms and biases, and to the
// embedding tables only when optim.decay_embeddings is set (GPT-2/LLaMA practice). The
// flat buffer is split into ParamGroups — maximal contiguous ranges with one decay — so the
// update is a handful of long vectorised loops, not one call per tensor.
#pragma once
#include <cstdint>
#include <vector>

#include "strata/config/config.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/model/parameters.hpp"

namespace strata::optim {

struct ParamGroup {
  std::int64_t offset, numel;
  double weight_decay;
};

std::vector<ParamGroup> make_param_groups(const model::ParameterTable& table, const config::OptimConfig& cfg);

// Learning rate at optimizer step `step` (1-based): linear warm-up from lr/warmup to lr over
// warmup_steps, then cosine (or linear) decay to min_lr over the remaining decay steps
// (decay_steps, default train.steps), then min_lr. constant: lr after the warm-up.
double learning_rate(const config::OptimConfig& cfg, long step, long total_steps);

// Clipping factor for a gradient of global L2 norm `norm`: min(1, clip / norm); 1 when clip == 0.
double clip_factor(double norm, double clip);

template <class T>
class AdamW {
 public:
  AdamW(const config::OptimConfig& cfg, std::vector<ParamGroup> groups, std::int64_t numel);
  // One update: p -= lr (adam(g * grad_scale) + wd p), group by group.
  void step(T* params, const T* grads, double lr, double grad_scale);
  long steps_taken() const { return step_; }
  std::size_t state_bytes() const { return state_.total_bytes(); }
  const MemoryPlan& memory() const { return state_; }

 private:
  config::OptimConfig cfg_;
  std::vector<ParamGroup> groups_;
  MemoryPlan state_{"optimizer"};
  T* m_ = nullptr;
  T* v_ = nullptr;
  long step_ = 0;
};

extern template class AdamW<float>;
extern template class AdamW<double>;

}  // namespace strata::optim

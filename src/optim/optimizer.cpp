#include "strata/optim/optimizer.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "strata/kernels/cpu/adamw.hpp"

namespace strata::optim {

std::vector<ParamGroup> make_param_groups(const model::ParameterTable& table,
                                          const config::OptimConfig& cfg) {
  std::vector<ParamGroup> groups;
  for (const auto& p : table.entries()) {
    const bool decay =
        p.kind == model::ParamKind::matrix || (p.kind == model::ParamKind::embedding && cfg.decay_embeddings);
    const double wd = decay ? cfg.weight_decay : 0.0;
    if (!groups.empty() && groups.back().weight_decay == wd &&
        groups.back().offset + groups.back().numel == p.offset)
      groups.back().numel += p.numel;
    else
      groups.push_back({p.offset, p.numel, wd});
  }
  return groups;
}

double learning_rate(const config::OptimConfig& cfg, long step, long total_steps) {
  const long warmup = cfg.warmup_steps;
  if (step <= warmup && warmup > 0) return cfg.lr * double(step) / double(warmup);
  if (cfg.schedule == config::ScheduleKind::constant) return cfg.lr;
  const long decay_end = cfg.decay_steps > 0 ? cfg.decay_steps : total_steps;
  if (step >= decay_end || decay_end <= warmup) return cfg.min_lr;
  const double progress = double(step - warmup) / double(decay_end - warmup);  // (0, 1)
  const double shape = cfg.schedule == config::ScheduleKind::cosine
                           ? 0.5 * (1.0 + std::cos(std::numbers::pi * progress))
                           : 1.0 - progress;
  return cfg.min_lr + (cfg.lr - cfg.min_lr) * shape;
}

double clip_factor(double norm, double clip) {
  if (clip <= 0.0 || !(norm > clip)) return 1.0;
  return clip / norm;
}

template <class T>
AdamW<T>::AdamW(const config::OptimConfig& cfg, std::vector<ParamGroup> groups, std::int64_t numel)
    : cfg_(cfg), groups_(std::move(groups)) {
  state_.add("adam.m", {numel}, dtype_of<T>(), "persistent");
  state_.add("adam.v", {numel}, dtype_of<T>(), "persistent");
  state_.allocate();
  m_ = state_.data<T>(0);
  v_ = state_.data<T>(1);
}

template <class T>
void AdamW<T>::step(T* params, const T* grads, double lr, double grad_scale) {
  ++step_;
  for (const ParamGroup& g : groups_) {
    const kernels::cpu::AdamWParams p{lr,         cfg_.beta1, cfg_.beta2, cfg_.eps, g.weight_decay,
                                      grad_scale, step_};
    kernels::cpu::adamw_update(params + g.offset, grads + g.offset, m_ + g.offset, v_ + g.offset, g.numel, p);
  }
}

template class AdamW<float>;
template class AdamW<double>;

}  // namespace strata::optim

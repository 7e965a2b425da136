// The runtime_model.hpp interfaces over a backend B; included by the files that build them
// (runtime_model.cpp for the CPU, cuda/runtime_model_cuda.cu for CUDA).
#pragma once
#include <memory>
#include <vector>

#include "decoder_impl.hpp"
#include "strata/model/runtime_model.hpp"

namespace strata::model::detail {

inline ChunkPlacement tp_placement(const comm::RankGrid& grid) {
  ChunkPlacement p;
  p.tp_size = grid.shape().tp;
  p.tp_rank = grid.coord().tp_rank;
  return p;
}

// Owns the backend and gives back the grid's device communicators before the backend (and its
// stream) goes.
template <class B>
struct BackendHolder {
  BackendHolder(comm::RankGrid& grid, std::unique_ptr<B> backend)
      : grid_(grid),
        be(std::move(backend)),
        groups(grid.device_groups(B::spec().device, be->stream_handle())) {}
  ~BackendHolder() {
    be->synchronize();
    grid_.release_device_groups();
  }
  comm::RankGrid& grid_;
  std::unique_ptr<B> be;
  comm::DeviceGroups groups;
};

template <class B>
class StageForward final : public ForwardModel {
 public:
  StageForward(const config::ModelConfig& cfg, int batch, int seq_len, comm::RankGrid& grid,
               std::unique_ptr<B> backend)
      : hold_(grid, std::move(backend)),
        stage_(cfg, batch, seq_len, tp_placement(grid), grid.shape().tp > 1 ? hold_.groups.tp : nullptr, 1,
               hold_.be.get(), StageMode::evaluate) {}
  const ParameterTable& table() const override { return stage_.table(); }
  void upload_parameters(const float* host) override {
    if constexpr (std::is_same_v<typename B::Host, float>) stage_.upload_parameters(host);
  }
  std::int64_t activation_rows() const override { return stage_.activation_rows(); }
  LossSum forward(const std::int32_t* tokens, const std::int32_t* targets) override {
    return stage_.forward(tokens, targets);
  }
  LossSum forward_losses(const std::int32_t* tokens, const std::int32_t* targets,
                         float* token_losses) override {
    const std::size_t n = std::size_t(stage_.activation_rows());  // batch x seq_len (no sequence parallelism)
    host_losses_.resize(n);
    stage_.forward_chunk(0, tokens, nullptr);
    stage_.loss_into(0, targets, typename B::Stat(0), false, host_losses_.data());
    stage_.backend().synchronize();
    LossSum sum;  // as Stage::loss sums them
    for (std::size_t i = 0; i < n; ++i) {
      token_losses[i] = targets[i] < 0 ? 0.0f : float(host_losses_[i]);
      if (targets[i] < 0) continue;
      sum.sum += double(host_losses_[i]);
      ++sum.count;
    }
    return sum;
  }

 private:
  BackendHolder<B> hold_;  // before the stage: destroyed after it
  Stage<B> stage_;
  std::vector<typename B::Host> host_losses_;
};

template <class B>
class BackendDecoder final : public DecoderModel {
 public:
  BackendDecoder(const config::ModelConfig& cfg, int max_len, comm::RankGrid& grid,
                 std::unique_ptr<B> backend)
      : hold_(grid, std::move(backend)),
        dec_(cfg, max_len, grid.shape().tp, grid.coord().tp_rank,
             grid.shape().tp > 1 ? hold_.groups.tp : nullptr, hold_.be.get()) {}
  const ParameterTable& table() const override { return dec_.table(); }
  void upload_parameters(const float* host) override {
    if constexpr (std::is_same_v<typename B::Host, float>) dec_.upload_parameters(host);
  }
  const float* forward(std::span<const std::int32_t> tokens, bool all_rows) override {
    return dec_.forward(tokens, all_rows);
  }
  int position() const override { return dec_.position(); }
  void reset() override { dec_.reset(); }
  void truncate(int position) override { dec_.truncate(position); }
  int max_len() const override { return dec_.max_len(); }
  int vocab_size() const override { return dec_.vocab_size(); }

 private:
  BackendHolder<B> hold_;
  Decoder<B> dec_;
};

}  // namespace strata::model::detail

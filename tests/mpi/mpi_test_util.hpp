// Helpers shared by the multi-rank test suites.
#pragma once
#include <gtest/gtest.h>
#include <mpi.h>

#include "strata/config/config.hpp"

namespace strata::test {

inline int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// The tiny GPT-style (or LLaMA-style: RMSNorm, SwiGLU, RoPE, untied output layer) model and
// job the layout-equivalence suites train: 4 layers, width 32, an odd vocabulary (padding
// under TP), 8 sequences of 16 tokens per step.
inline config::JobConfig base_job(bool llama) {
  config::JobConfig j;
  j.model.name = llama ? "layout_llama" : "layout_gpt";
  j.model.num_layers = 4;
  j.model.d_model = 32;
  j.model.num_heads = 4;
  j.model.num_kv_heads = llama ? 4 : 0;
  j.model.ffn_hidden = 64;
  j.model.vocab_size = 61;  // odd: vocabulary padding under TP
  j.model.max_seq_len = 16;
  if (llama) {
    j.model.norm = config::NormKind::rmsnorm;
    j.model.mlp = config::MlpKind::swiglu;
    j.model.positions = config::PositionKind::rope;
    j.model.tied_embeddings = false;
    j.model.bias = false;
  }
  j.parallel.micro_batch_size = 1;
  j.parallel.global_batch_size = 8;
  j.optim.lr = 1e-3;
  // Adam divides by sqrt(v) + eps: a gradient that cancels to ~eps (1e-8 by default) gets an
  // update whose size depends on the fp32 rounding of that cancellation, which differs with
  // the summation order of each layout. eps = 1e-6 keeps such updates proportional to the
  // gradient, so 3 steps stay comparable to 1e-5 while real gradients (~1e-3) are unaffected.
  j.optim.eps = 1e-6;
  j.optim.warmup_steps = 0;
  j.optim.schedule = config::ScheduleKind::constant;
  j.optim.grad_clip = 1.0;
  j.train.steps = 3;
  j.train.seq_len = 16;
  j.train.seed = 5;
  j.train.out_dir = testing::TempDir() + "/strata_layouts";
  j.train.log_interval = 100;
  j.hardware.threads = 1;
  j.hardware.peak_tflops = 1.0;
  j.eval.windows = 8;          // one global batch of held-out windows: cheap, and compared in every layout
  j.ckpt.save_at_end = false;  // checkpoints have their own tests (test_checkpoint.cpp)
  return j;
}

}  // namespace strata::test

// The backends' support statement (capabilities.hpp).
#include "strata/config/capabilities.hpp"

#include <algorithm>
#include <sstream>

#include "strata/config/load.hpp"

namespace strata::config {

const BackendSupport& backend_support(DeviceKind device) {
  // The CPU kernels take any head size; the GPU's flash attention is compiled for 64 and 128
  // (kernels/cuda/attention.cu), and it alone reduces gradients in bf16. ZeRO-2/3 are engine
  // code over both backends (the collectives through the dp group's communicator, NCCL on GPUs),
  // verified on the CPU; stated for CUDA as pipeline parallelism, zb_h1 and cp are, whose GPU
  // tests (tests/mpi/test_gpu_layouts.cpp) are written and have not run yet (docs/gpu.md).
  static const BackendSupport cpu{DeviceKind::cpu, "cpu (fp32)", {}, false, 3};
  static const BackendSupport cuda{DeviceKind::cuda, "cuda (bf16, fp32 master weights)", {64, 128}, true, 3};
  return device == DeviceKind::cuda ? cuda : cpu;
}

std::vector<std::string> unsupported(DeviceKind device, const ModelConfig& m, const ParallelConfig& p,
                                     int seq_len) {
  const BackendSupport& b = backend_support(device);
  std::vector<std::string> out;
  auto say = [&](auto&&... parts) {
    std::ostringstream os;
    (os << ... << parts);
    out.push_back(os.str());
  };
  const int hs = m.num_heads > 0 ? m.d_model / m.num_heads : 0;
  if (!b.head_sizes.empty() &&
      std::find(b.head_sizes.begin(), b.head_sizes.end(), hs) == b.head_sizes.end()) {
    std::ostringstream sizes;
    for (std::size_t i = 0; i < b.head_sizes.size(); ++i) sizes << (i ? " or " : "") << b.head_sizes[i];
    say("model.d_model / model.num_heads = ", m.d_model, " / ", m.num_heads, " = head size ", hs, ": the ",
        b.name, " attention kernels take head sizes ", sizes.str());
  }
  if (p.grad_reduce_dtype == ReduceDType::bf16 && !b.grad_reduce_bf16)
    say("parallel.grad_reduce_dtype: bf16 runs on hardware.device: cuda only (the ", b.name,
        " backend reduces fp32 gradients; use fp32)");
  if (p.zero_stage > b.max_zero_stage)
    say("parallel.zero_stage = ", p.zero_stage, ": the ", b.name, " backend runs ZeRO stages 0 to ",
        b.max_zero_stage);
  // Context parallelism (parallel.cp) runs on both in both modes: ring attention's block kernel
  // (the log-sum-exp merge) is kernels/cpu/ring_attention on the CPU and the flash kernel's
  // block form (kernels/cuda/attention.hpp) on the GPU, whose head sizes are checked above;
  // Ulysses needs only the backend's own attention and the all-to-all (NCCL on GPUs).
  if (p.sequence_parallel && p.tp > 1 && (std::int64_t(p.micro_batch_size) * seq_len) % p.tp != 0)
    say("parallel.sequence_parallel: micro_batch_size x train.seq_len (", p.micro_batch_size, " x ", seq_len,
        ") must be divisible by parallel.tp (", p.tp, ")");
  return out;
}

std::vector<std::string> unsupported(const JobConfig& job) {
  return unsupported(job.hardware.device, job.model, job.parallel, job.train.seq_len);
}

}  // namespace strata::config

// GPU tests of the softmax cross-entropy: the one-rank fused kernel and the three
// vocab-parallel phases (with the all-reduces between them done on the host), against the
// CPU fused kernel in double over the whole vocabulary, on the same bf16 logits.
// Skipped without a GPU (CudaTest).
// Tolerances:
//   losses (fp32): log s + m - x_t with s an fp32 sum of up to 256k terms (relative error
//     ~1e-6): atol 1e-4 on losses of size ~log V ~ 10.
//   gradient (bf16): (e^{x - m} / s - onehot) dloss formed in fp32 (relative error ~1e-6)
//     and rounded once: rtol 2^-8; atol 1e-6 |dloss| for the tiniest probabilities.
// Edges: V not a multiple of 8 or 32, ld > V_real (padding must come back as 0), ld odd
// (rows not 16-byte aligned: the scalar path), N = 1, V = 1, targets < 0 (loss 0,
// gradient 0), targets in every slice and on slice edges, vocab_start > 0, and a rank
// whose slice is all padding (V_real = 0).
#include <gtest/gtest.h>

#include <cfloat>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cuda_test_util.hpp"
#include "kernel_ref_util.hpp"
#include "strata/kernels/cpu/cross_entropy.hpp"
#include "strata/kernels/cuda/cross_entropy.hpp"

namespace strata::test {
namespace {

namespace cpu = kernels::cpu;
namespace cu = kernels::cuda;
using kernels::cuda::index_t;

class CudaCrossEntropy : public CudaTest {};

// The reference: losses and (softmax - onehot) dloss over the whole vocabulary, in double.
void reference(const std::vector<float>& logits, const std::vector<std::int32_t>& targets, index_t N,
               index_t V, double dloss, std::vector<double>& losses, std::vector<double>& grad) {
  grad = to_double(logits);
  losses.assign(std::size_t(N), 0.0);
  cpu::cross_entropy_fused<double>(grad.data(), losses.data(), targets.data(), dloss, N, V, V);
}

TEST_F(CudaCrossEntropy, FusedMatchesCpu) {
  struct Case {
    index_t N, V, ld;
  };
  const float dloss = 0.37f;
  for (const Case c : {Case{1, 1, 1}, Case{3, 1001, 1003}, Case{5, 50257, 50304}, Case{2, 256000, 256000}}) {
    std::vector<std::int32_t> targets(static_cast<std::size_t>(c.N));
    for (index_t n = 0; n < c.N; ++n) targets[std::size_t(n)] = std::int32_t((n * 7919) % c.V);
    if (c.N >= 3) targets[1] = -1, targets[2] = std::int32_t(c.V - 1);
    const auto dense = randn_bf16(std::size_t(c.N * c.V), 40 + std::uint64_t(c.V), 3.0);
    std::vector<double> want_loss, want_grad;
    reference(dense, targets, c.N, c.V, dloss, want_loss, want_grad);
    // Padded rows: the padding holds garbage the kernel must ignore (and zero with the gradient).
    std::vector<float> padded(std::size_t(c.N * c.ld), 99.0f), want(padded.size(), 0.0f);
    for (index_t n = 0; n < c.N; ++n)
      for (index_t v = 0; v < c.V; ++v) {
        padded[std::size_t(n * c.ld + v)] = dense[std::size_t(n * c.V + v)];
        want[std::size_t(n * c.ld + v)] = float(want_grad[std::size_t(n * c.V + v)]);
      }
    const std::string at =
        "N=" + std::to_string(c.N) + " V=" + std::to_string(c.V) + " ld=" + std::to_string(c.ld);
    DeviceBuffer<std::int32_t> dt(targets);
    DeviceBuffer<float> dl{std::size_t(c.N)};
    {  // losses only: the logits stay as they are
      DeviceBuffer<bf16> dx(to_bf16(padded));
      cu::cross_entropy_fused(dx.get(), dl.get(), dt.get(), dloss, false, c.N, c.V, c.ld, nullptr);
      EXPECT_TRUE(all_close(dl.download(), to_float(want_loss), 0, 1e-4)) << at;
      EXPECT_TRUE(all_close(to_float(dx.download()), padded, 0, 0))
          << at << ": logits changed without with_grad";
    }
    DeviceBuffer<bf16> dx(to_bf16(padded));
    cu::cross_entropy_fused(dx.get(), dl.get(), dt.get(), dloss, true, c.N, c.V, c.ld, nullptr);
    EXPECT_TRUE(all_close(dl.download(), to_float(want_loss), 0, 1e-4)) << at;
    EXPECT_TRUE(all_close(to_float(dx.download()), want, kBf16Rtol, 1e-6 * dloss)) << at;
  }
}

// tp = 4 slices of a vocabulary of 1000 padded to 1008: [0, 336), [336, 672), [672, 1000)
// + 8 padding, and a fourth rank holding only padding (V_real = 0), each with its own ld.
TEST_F(CudaCrossEntropy, VocabParallelPhasesMatchCpu) {
  const index_t N = 7, V = 1000;
  const float dloss = 0.8f;
  struct Slice {
    index_t vocab_start, V_real, ld;
  };
  const std::vector<std::int32_t> targets = {-1, 0, 335, 336, 999, 671, -3};
  const auto dense = randn_bf16(std::size_t(N * V), 50, 2.0);
  std::vector<double> want_loss, want_grad;
  reference(dense, targets, N, V, dloss, want_loss, want_grad);

  for (bool aligned : {true, false}) {
    const index_t pad = aligned ? 0 : 3;  // ld odd: the unaligned (scalar) row path
    const std::vector<Slice> slices = {
        {0, 336, 336 + pad}, {336, 336, 344 + pad}, {672, 328, 336 + pad}, {1008, 0, 8 + pad}};
    std::vector<std::vector<float>> host(slices.size());
    std::vector<std::unique_ptr<DeviceBuffer<bf16>>> owned;
    for (std::size_t r = 0; r < slices.size(); ++r) {
      const Slice& s = slices[r];
      host[r].assign(std::size_t(N * s.ld), -50.0f);  // garbage padding (ignored, then zeroed)
      for (index_t n = 0; n < N; ++n)
        for (index_t v = 0; v < s.V_real; ++v)
          host[r][std::size_t(n * s.ld + v)] = dense[std::size_t(n * V + s.vocab_start + v)];
      owned.push_back(std::make_unique<DeviceBuffer<bf16>>(to_bf16(host[r])));
    }
    DeviceBuffer<std::int32_t> dt(targets);
    // Phase 1 on every rank, all-reduce(max) on the host.
    std::vector<float> m(std::size_t(N), -FLT_MAX);
    for (std::size_t r = 0; r < slices.size(); ++r) {
      DeviceBuffer<float> rm{std::size_t(N)};
      cu::vocab_parallel_ce_max(rm.get(), owned[r]->get(), N, slices[r].V_real, slices[r].ld, nullptr);
      const auto got = rm.download();
      if (slices[r].V_real == 0) {
        EXPECT_TRUE(all_close(got, std::vector<float>(std::size_t(N), -FLT_MAX), 0, 0)) << "empty slice max";
      }
      for (index_t n = 0; n < N; ++n) m[std::size_t(n)] = std::max(m[std::size_t(n)], got[std::size_t(n)]);
    }
    // Phase 2, all-reduce(sum) of sumexp and target_logit on the host.
    DeviceBuffer<float> dm(m);
    std::vector<float> s(std::size_t(N), 0.0f), xt(std::size_t(N), 0.0f);
    for (std::size_t r = 0; r < slices.size(); ++r) {
      DeviceBuffer<float> se{std::size_t(N)}, tl{std::size_t(N)};
      cu::vocab_parallel_ce_sumexp(se.get(), tl.get(), owned[r]->get(), dm.get(), dt.get(), N,
                                   slices[r].V_real, slices[r].ld, slices[r].vocab_start, nullptr);
      const auto a = se.download(), b = tl.download();
      for (index_t n = 0; n < N; ++n)
        s[std::size_t(n)] += a[std::size_t(n)], xt[std::size_t(n)] += b[std::size_t(n)];
    }
    // Phase 3 on every rank: the same losses everywhere; each rank's gradient slice.
    DeviceBuffer<float> ds(s), dxt(xt);
    for (std::size_t r = 0; r < slices.size(); ++r) {
      const Slice& sl = slices[r];
      const std::string at = std::string(aligned ? "aligned" : "unaligned") + " rank " + std::to_string(r);
      DeviceBuffer<float> dl{std::size_t(N)};
      // Without the gradient: losses only, logits untouched.
      cu::vocab_parallel_ce_finish(owned[r]->get(), dl.get(), dm.get(), ds.get(), dxt.get(), dt.get(), dloss,
                                   false, N, sl.V_real, sl.ld, sl.vocab_start, nullptr);
      EXPECT_TRUE(all_close(dl.download(), to_float(want_loss), 0, 1e-4)) << at;
      EXPECT_TRUE(all_close(to_float(owned[r]->download()), host[r], 0, 0)) << at << ": logits changed";
      cu::vocab_parallel_ce_finish(owned[r]->get(), dl.get(), dm.get(), ds.get(), dxt.get(), dt.get(), dloss,
                                   true, N, sl.V_real, sl.ld, sl.vocab_start, nullptr);
      EXPECT_TRUE(all_close(dl.download(), to_float(want_loss), 0, 1e-4)) << at;
      std::vector<float> want(std::size_t(N * sl.ld), 0.0f);
      for (index_t n = 0; n < N; ++n)
        for (index_t v = 0; v < sl.V_real; ++v)
          want[std::size_t(n * sl.ld + v)] = float(want_grad[std::size_t(n * V + sl.vocab_start + v)]);
      EXPECT_TRUE(all_close(to_float(owned[r]->download()), want, kBf16Rtol, 1e-6 * dloss)) << at;
    }
  }
}

}  // namespace
}  // namespace strata::test

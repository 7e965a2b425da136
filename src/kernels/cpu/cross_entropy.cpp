// Softmax cross-entropy over logits[N, V] with row stride ld >= V (columns V..ld-1 are
// padding: never read as logits; the fused form zeroes them), integer targets[N] with
// 0 <= target < V, or target < 0 for "no loss at this row".
//   m = max_v x[n, v],  s = sum_v e^{x[n, v] - m}
//   loss[n]      = log s + m - x[n, target]                      (0 if target < 0)
//   dlogits[n,v] = (e^{x[n,v] - m} / s - [v == target]) dloss[n] (0 if target < 0)
// cross_entropy_backward accumulates (+=) into dlogits like every backward; the fused form
// OVERWRITES the logits with their gradient (the model never holds logits and dlogits of
// size N x V at once), and writes the losses.
// One Kokkos iteration per row; each row is 3 vectorised passes (max, exp + sum, scale),
// a 200 kB row of V = 50257 floats stays in L2 between passes. exp is detail::exp_fast
// (vectorised polynomial for float); the sum of exponentials is accumulated in double so
// the reported loss does not depend on V's size.
#include "strata/kernels/cpu/cross_entropy.hpp"

#include <limits>

#include "detail.hpp"
#include "strata/core/error.hpp"

namespace strata::kernels::cpu {

namespace {

constexpr index_t kChunk = 1024;

void check_targets(const std::int32_t* targets, index_t N, index_t V, index_t ld) {
  STRATA_CHECK(ld >= V && V > 0, "cross_entropy: need ld >= V > 0, got ld = ", ld, ", V = ", V);
  for (index_t n = 0; n < N; ++n)
    STRATA_CHECK(targets[n] < V, "cross_entropy: target ", targets[n], " at row ", n,
                 " is outside the vocabulary of ", V);
}

// max and sum_v e^{x_v - max} of a row, without writing it (stack buffer of kChunk).
template <class T>
void row_max_sumexp(const T* x, index_t V, T& mx, double& s) {
  mx = detail::lane_max(x, V);
  s = 0.0;
  T buf[kChunk];
  for (index_t v0 = 0; v0 < V; v0 += kChunk) {
    const index_t len = std::min<index_t>(kChunk, V - v0);
    const T* xc = x + v0;
    for (index_t i = 0; i < len; ++i) buf[i] = detail::exp_fast(xc[i] - mx);
    s += detail::long_sum(len, [&buf](index_t i) { return static_cast<double>(buf[i]); });
  }
}

}  // namespace

template <class T>
void cross_entropy_forward(T* losses, const T* logits, const std::int32_t* targets, index_t N, index_t V,
                           index_t ld) {
  check_targets(targets, N, V, ld);
  detail::for_each(
      "kernels::cross_entropy_fwd", N,
      [=](index_t n) STRATA_ISA_CLONES {
        const std::int32_t tgt = targets[n];
        if (tgt < 0) {
          losses[n] = T(0);
          return;
        }
        const T* x = logits + n * ld;
        T mx;
        double s;
        row_max_sumexp(x, V, mx, s);
        losses[n] = static_cast<T>(std::log(s) + static_cast<double>(mx) - static_cast<double>(x[tgt]));
      },
      V);
}

template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const std::int32_t* targets, const T* dlosses,
                            index_t N, index_t V, index_t ld) {
  check_targets(targets, N, V, ld);
  detail::for_each(
      "kernels::cross_entropy_bwd", N,
      [=](index_t n) STRATA_ISA_CLONES {
        const std::int32_t tgt = targets[n];
        if (tgt < 0) return;
        const T* x = logits + n * ld;
        T* d = dlogits + n * ld;
        T mx;
        double s;
        row_max_sumexp(x, V, mx, s);
        const T dl = dlosses[n];
        const T sc = static_cast<T>(static_cast<double>(dl) / s);
        for (index_t v = 0; v < V; ++v) d[v] += detail::exp_fast(x[v] - mx) * sc;
        d[tgt] -= dl;
      },
      V);
}

template <class T>
void cross_entropy_fused(T* logits_to_grad, T* losses, const std::int32_t* targets, T dloss, index_t N,
                         index_t V, index_t ld) {
  check_targets(targets, N, V, ld);
  detail::for_each(
      "kernels::cross_entropy_fused", N,
      [=](index_t n) STRATA_ISA_CLONES {
        T* x = logits_to_grad + n * ld;
        const std::int32_t tgt = targets[n];
        if (tgt < 0) {
          losses[n] = T(0);
          for (index_t v = 0; v < ld; ++v) x[v] = T(0);
          return;
        }
        const T mx = detail::lane_max(x, V);
        const T xt = x[tgt];
        for (index_t v = 0; v < V; ++v) x[v] = detail::exp_fast(x[v] - mx);
        const double s = detail::long_sum(V, [x](index_t v) { return static_cast<double>(x[v]); });
        losses[n] = static_cast<T>(std::log(s) + static_cast<double>(mx) - static_cast<double>(xt));
        const T sc = static_cast<T>(static_cast<double>(dloss) / s);
        for (index_t v = 0; v < V; ++v) x[v] *= sc;
        x[tgt] -= dloss;
        for (index_t v = V; v < ld; ++v) x[v] = T(0);
      },
      ld);
}

template <class T>
void vocab_parallel_ce_max(T* row_max, const T* logits, index_t N, index_t V_real, index_t ld) {
  detail::for_each(
      "kernels::vocab_ce_max", N,
      [=](index_t n) STRATA_ISA_CLONES {
        // A rank whose slice is all padding contributes -inf-like (lowest) to the max.
        row_max[n] =
            V_real > 0 ? detail::lane_max(logits + n * ld, V_real) : std::numeric_limits<T>::lowest();
      },
      V_real);
}

template <class T>
void vocab_parallel_ce_sumexp(T* sumexp, T* target_logit, const T* logits, const T* row_max,
                              const std::int32_t* targets, index_t N, index_t V_real, index_t ld,
                              index_t vocab_start) {
  detail::for_each(
      "kernels::vocab_ce_sumexp", N,
      [=](index_t n) STRATA_ISA_CLONES {
        const T* x = logits + n * ld;
        const T mx = row_max[n];
        double s = 0.0;
        T buf[kChunk];
        for (index_t v0 = 0; v0 < V_real; v0 += kChunk) {
          const index_t len = std::min<index_t>(kChunk, V_real - v0);
          for (index_t i = 0; i < len; ++i) buf[i] = detail::exp_fast(x[v0 + i] - mx);
          s += detail::long_sum(len, [&buf](index_t i) { return static_cast<double>(buf[i]); });
        }
        sumexp[n] = static_cast<T>(s);
        const index_t local = index_t(targets[n]) - vocab_start;
        target_logit[n] = (targets[n] >= 0 && local >= 0 && local < V_real) ? x[local] : T(0);
      },
      V_real);
}

template <class T>
void vocab_parallel_ce_finish(T* logits_to_grad, T* losses, const T* row_max, const T* sumexp,
                              const T* target_logit, const std::int32_t* targets, T dloss, bool with_grad,
                              index_t N, index_t V_real, index_t ld, index_t vocab_start) {
  detail::for_each(
      "kernels::vocab_ce_finish", N,
      [=](index_t n) STRATA_ISA_CLONES {
        T* x = logits_to_grad + n * ld;
        const std::int32_t tgt = targets[n];
        if (tgt < 0) {
          losses[n] = T(0);
          if (with_grad)
            for (index_t v = 0; v < ld; ++v) x[v] = T(0);
          return;
        }
        const T mx = row_max[n];
        const double s = static_cast<double>(sumexp[n]);
        losses[n] =
            static_cast<T>(std::log(s) + static_cast<double>(mx) - static_cast<double>(target_logit[n]));
        if (!with_grad) return;
        const T sc = static_cast<T>(static_cast<double>(dloss) / s);
        for (index_t v = 0; v < V_real; ++v) x[v] = detail::exp_fast(x[v] - mx) * sc;
        for (index_t v = V_real; v < ld; ++v) x[v] = T(0);
        const index_t local = index_t(tgt) - vocab_start;
        if (local >= 0 && local < V_real) x[local] -= dloss;
      },
      ld);
}

#define STRATA_INSTANTIATE(T)                                                                             \
  template void vocab_parallel_ce_max<T>(T*, const T*, index_t, index_t, index_t);                        \
  template void vocab_parallel_ce_sumexp<T>(T*, T*, const T*, const T*, const std::int32_t*, index_t,     \
                                            index_t, index_t, index_t);                                   \
  template void vocab_parallel_ce_finish<T>(T*, T*, const T*, const T*, const T*, const std::int32_t*, T, \
                                            bool, index_t, index_t, index_t, index_t);                    \
  template void cross_entropy_forward<T>(T*, const T*, const std::int32_t*, index_t, index_t, index_t);   \
  template void cross_entropy_backward<T>(T*, const T*, const std::int32_t*, const T*, index_t, index_t,  \
                                          index_t);                                                       \
  template void cross_entropy_fused<T>(T*, T*, const std::int32_t*, T, index_t, index_t, index_t);
STRATA_INSTANTIATE(float)
STRATA_INSTANTIATE(double)
#undef STRATA_INSTANTIATE

}  // namespace strata::kernels::cpu

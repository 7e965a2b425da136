// The host half of the CUDA RoPE: the (cos, sin) table, computed in double so that long
// positions keep full fp32 accuracy (fp32 t * inv_freq loses bits once t is large).
//   cos_sin[2 (t HS/2 + i)] = cos(t theta^(-2i/HS)),  cos_sin[2 (t HS/2 + i) + 1] = sin(...)
// for t < max_T, i < HS/2: the angles of kernels/cpu/rope.cpp, same expression, so the
// table equals the CPU's angles rounded to float. Plain C++ (host only, no kernel).
#include <cmath>
#include <vector>

#include "strata/core/error.hpp"
#include "strata/kernels/cuda/rope.hpp"

namespace strata::kernels::cuda {

std::vector<float> rope_table(index_t max_T, index_t HS, double theta) {
  STRATA_CHECK(HS > 0 && HS % 2 == 0, "rope_table: head size HS must be even and positive, got ", HS);
  STRATA_CHECK(max_T >= 0, "rope_table: max_T must be >= 0, got ", max_T);
  STRATA_CHECK(theta > 0, "rope_table: theta must be positive, got ", theta);
  const index_t half = HS / 2;
  std::vector<float> table(static_cast<std::size_t>(max_T * half * 2));
  for (index_t t = 0; t < max_T; ++t) {
    const double pos = static_cast<double>(t);
    for (index_t i = 0; i < half; ++i) {
      const double ang = pos * std::pow(theta, -2.0 * static_cast<double>(i) / double(HS));
      table[static_cast<std::size_t>(2 * (t * half + i))] = static_cast<float>(std::cos(ang));
      table[static_cast<std::size_t>(2 * (t * half + i) + 1)] = static_cast<float>(std::sin(ang));
    }
  }
  return table;
}

}  // namespace strata::kernels::cuda

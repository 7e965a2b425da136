// Rotary position embedding, rotate-half pairing (Su et al. 2021 §3.4; math:
// kernels/cpu/rope.hpp), in place on bf16 rows x[B*T rows, H heads of HS], row stride ld.
// For row r (position t = r mod T), head h and pair i < HS/2, with (c, s) = cos_sin[t, i]
// from rope_table (host, double):
//   forward   (a, b) = (x_i, x_{i+HS/2}) -> (a c - b s,  a s + b c)      (rotation R)
//   backward  (a, b)                     -> (a c + b s, -a s + b c)      (R^T = R^-1)
// Both transform in place (=): the backward maps the gradient of the rotated values to
// the gradient of the inputs. Arithmetic in fp32, one bf16 rounding per output.
// Launch: one thread per pair of a row (threadIdx.x/blockIdx.x over H * HS/2 pairs, so a
// warp reads consecutive elements of both halves of a head), rows on blockIdx.y with a
// grid-stride loop. The table must have at least T positions (max_T >= T).
#include "reduce.cuh"
#include "strata/kernels/cuda/rope.hpp"

namespace strata::kernels::cuda {

namespace {

constexpr int kThreads = 256;

template <bool kInverse>
__global__ void rope_kernel(bf16* x, const float2* cos_sin, index_t rows, index_t T, int H, int half,
                            index_t ld) {
  const int j = int(blockIdx.x) * blockDim.x + threadIdx.x;  // pair index within the row
  if (j >= H * half) return;
  const int h = j / half, i = j - h * half;
  for (index_t r = blockIdx.y; r < rows; r += gridDim.y) {
    const index_t t = r % T;
    const float2 cs = cos_sin[t * half + i];
    const float s = kInverse ? -cs.y : cs.y;
    bf16* lo = x + r * ld + index_t(h) * (2 * half) + i;
    bf16* hi = lo + half;
    const float a = __bfloat162float(*lo), b = __bfloat162float(*hi);
    *lo = __float2bfloat16(a * cs.x - b * s);
    *hi = __float2bfloat16(a * s + b * cs.x);
  }
}

template <bool kInverse>
void rope(const char* name, bf16* x, const float* cos_sin, index_t B, index_t T, index_t H, index_t HS,
          index_t ld, cudaStream_t stream) {
  STRATA_CHECK(HS > 0 && HS % 2 == 0, name, ": head size HS must be even and positive, got ", HS);
  STRATA_CHECK(ld >= H * HS, name, ": row stride ld = ", ld, " is smaller than H * HS = ", H * HS);
  STRATA_CHECK(H * HS / 2 <= (index_t(1) << 28), name, ": H * HS = ", H * HS, " is too large");
  if (B <= 0 || T <= 0 || H <= 0) return;
  const index_t pairs = H * (HS / 2), rows = B * T;
  const dim3 grid(grid_for(pairs, kThreads), unsigned(detail::min_index(rows, 65535)));
  // float2 view of the interleaved (cos, sin) table (cudaMalloc memory: 8-byte aligned).
  rope_kernel<kInverse><<<grid, kThreads, 0, stream>>>(x, reinterpret_cast<const float2*>(cos_sin), rows, T,
                                                       int(H), int(HS / 2), ld);
  STRATA_CUDA_LAUNCH_CHECK(name);
}

}  // namespace

void rope_forward(bf16* x, const float* cos_sin, index_t B, index_t T, index_t H, index_t HS, index_t ld,
                  cudaStream_t stream) {
  rope<false>("rope_forward", x, cos_sin, B, T, H, HS, ld, stream);
}

void rope_backward(bf16* dx, const float* cos_sin, index_t B, index_t T, index_t H, index_t HS, index_t ld,
                   cudaStream_t stream) {
  rope<true>("rope_backward", dx, cos_sin, B, T, H, HS, ld, stream);
}

}  // namespace strata::kernels::cuda

// Token and position embeddings (math and vocab-parallel convention: kernels/cpu/embedding.hpp).
// This rank holds rows [vocab_start, vocab_start + V_local) of wte[V_local, C].
//   embedding_forward            out[n, :] = wte[tok[n] - vocab_start, :], or 0 when the
//                                token is outside the slice (the TP all-reduce fills it)   =
//   embedding_backward           dwte[tok[n] - vocab_start, :] += dout[n, :] (in-slice only) +=
//   position_embedding_forward   out[b, t, :] = bf16(out[b, t, :] + wpe[t, :])             +=
//   position_embedding_backward  dwpe[t, :] += sum_b dout[b, t, :]                          +=
// Launch: columns on threadIdx.x / blockIdx.x (coalesced row access), rows on blockIdx.y
// with a grid-stride loop. The token backward adds with fp32 atomics because repeated
// tokens hit the same row of dwte (order of additions varies: fp32 rounding level). The
// position backward gives one thread per (t, c) the whole sum over b: no atomics, a fixed order.
#include "reduce.cuh"
#include "strata/kernels/cuda/embedding.hpp"

namespace strata::kernels::cuda {

namespace {

constexpr int kThreads = 256;

dim3 row_grid(index_t rows, index_t cols) {
  return dim3(grid_for(cols, kThreads), unsigned(detail::min_index(rows, 65535)));
}

__global__ void embedding_forward_kernel(bf16* out, const std::int32_t* tokens, const bf16* wte, index_t N,
                                         index_t C, index_t vocab_start, index_t V_local) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const index_t row = index_t(tokens[n]) - vocab_start;
    out[n * C + c] = (row >= 0 && row < V_local) ? wte[row * C + c] : __float2bfloat16(0.0f);
  }
}

__global__ void embedding_backward_kernel(float* dwte, const float* dout, const std::int32_t* tokens,
                                          index_t N, index_t C, index_t vocab_start, index_t V_local) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  for (index_t n = blockIdx.y; n < N; n += gridDim.y) {
    const index_t row = index_t(tokens[n]) - vocab_start;
    if (row >= 0 && row < V_local) atomicAdd(dwte + row * C + c, dout[n * C + c]);
  }
}

__global__ void position_embedding_forward_kernel(bf16* out, const bf16* wpe, index_t BT, index_t T,
                                                  index_t C) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  for (index_t bt = blockIdx.y; bt < BT; bt += gridDim.y) {
    const index_t t = bt % T;
    bf16* o = out + bt * C + c;
    *o = __float2bfloat16(__bfloat162float(*o) + __bfloat162float(wpe[t * C + c]));
  }
}

__global__ void position_embedding_backward_kernel(float* dwpe, const float* dout, index_t B, index_t T,
                                                   index_t C) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  for (index_t t = blockIdx.y; t < T; t += gridDim.y) {
    float acc = 0.0f;
    for (index_t b = 0; b < B; ++b) acc += dout[(b * T + t) * C + c];
    dwpe[t * C + c] += acc;
  }
}

}  // namespace

void embedding_forward(bf16* out, const std::int32_t* tokens, const bf16* wte, index_t N, index_t C,
                       index_t vocab_start, index_t V_local, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  embedding_forward_kernel<<<row_grid(N, C), kThreads, 0, stream>>>(out, tokens, wte, N, C, vocab_start,
                                                                    V_local);
  STRATA_CUDA_LAUNCH_CHECK("embedding_forward");
}

void embedding_backward(float* dwte, const float* dout, const std::int32_t* tokens, index_t N, index_t C,
                        index_t vocab_start, index_t V_local, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  embedding_backward_kernel<<<row_grid(N, C), kThreads, 0, stream>>>(dwte, dout, tokens, N, C, vocab_start,
                                                                     V_local);
  STRATA_CUDA_LAUNCH_CHECK("embedding_backward");
}

void position_embedding_forward(bf16* out, const bf16* wpe, index_t B, index_t T, index_t C,
                                cudaStream_t stream) {
  if (B <= 0 || T <= 0 || C <= 0) return;
  position_embedding_forward_kernel<<<row_grid(B * T, C), kThreads, 0, stream>>>(out, wpe, B * T, T, C);
  STRATA_CUDA_LAUNCH_CHECK("position_embedding_forward");
}

void position_embedding_backward(float* dwpe, const float* dout, index_t B, index_t T, index_t C,
                                 cudaStream_t stream) {
  if (B <= 0 || T <= 0 || C <= 0) return;
  position_embedding_backward_kernel<<<row_grid(T, C), kThreads, 0, stream>>>(dwpe, dout, B, T, C);
  STRATA_CUDA_LAUNCH_CHECK("position_embedding_backward");
}

}  // namespace strata::kernels::cuda

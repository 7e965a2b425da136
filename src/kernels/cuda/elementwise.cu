// Element-wise CUDA kernels: casts, fills, residual adds, biases, bias gradients and the
// sum of squares of the gradient norm. n counts elements.
//   cast_f32_to_bf16      y = bf16(x)            (round to nearest even)     =
//   cast_bf16_to_f32      y = float(x)                                        =
//   fill_f32 / fill_bf16  y = value                                           =
//   add_bf16              y = bf16(a + b)        (fp32 sum, y may alias a/b)  =
//   add_bias_bf16         y[r, c] = bf16(y[r, c] + bias[c])                   += (in place)
//   accumulate_f32(_bf16) y += x                 (fp32)                       +=
//   bias_grad_bf16/f32    db[c] += sum_r dy[r, c]                             +=
//   sum_squares_f32       out += sum_i x[i]^2                                 +=
// Flat kernels are grid-stride loops of 256 threads (consecutive threads, consecutive
// elements: coalesced). Row kernels (bias add) put columns on threadIdx.x and rows on the
// grid's y dimension. bias_grad sums a tile of 32 columns x (8 thread rows) over a chunk
// of kRowsPerBlock rows in registers, reduces the 8 partials in shared memory and adds
// one atomic per column per block (fp32, so the order of the block sums varies from run
// to run at fp32 rounding level). sum_squares: per-block sum, one atomic per block.
#include "reduce.cuh"
#include "strata/kernels/cuda/elementwise.hpp"

namespace strata::kernels::cuda {

namespace {

constexpr int kThreads = 256;

__global__ void cast_f32_to_bf16_kernel(bf16* y, const float* x, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(x[i]);
}

__global__ void cast_bf16_to_f32_kernel(float* y, const bf16* x, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    y[i] = __bfloat162float(x[i]);
}

__global__ void fill_f32_kernel(float* y, float value, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    y[i] = value;
}

__global__ void fill_bf16_kernel(bf16* y, float value, index_t n) {
  const bf16 b = __float2bfloat16(value);
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    y[i] = b;
}

// No __restrict__: y may alias a or b (each element is read before it is written, by
// the same thread).
__global__ void add_bf16_kernel(bf16* y, const bf16* a, const bf16* b, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    y[i] = __float2bfloat16(__bfloat162float(a[i]) + __bfloat162float(b[i]));
}

// Columns on x (threads + blocks), rows on y (grid-stride).
__global__ void add_bias_bf16_kernel(bf16* y, const bf16* bias, index_t rows, index_t cols) {
  const index_t c = blockIdx.x * index_t(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  const float bc = __bfloat162float(bias[c]);
  for (index_t r = blockIdx.y; r < rows; r += gridDim.y) {
    bf16* p = y + r * cols + c;
    *p = __float2bfloat16(__bfloat162float(*p) + bc);
  }
}

__global__ void accumulate_f32_kernel(float* y, const float* x, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    y[i] += x[i];
}

__global__ void accumulate_f32_bf16_kernel(float* y, const bf16* x, index_t n) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x)
    y[i] += __bfloat162float(x[i]);
}

__device__ __forceinline__ float load_f32(const float* p) { return *p; }
__device__ __forceinline__ float load_f32(const bf16* p) { return __bfloat162float(*p); }

// Block (32, 8): thread (tx, ty) sums column blockIdx.x*32 + tx over rows
// r0 + ty, r0 + ty + 8, ... < r0 + kRowsPerBlock, where r0 = blockIdx.y * kRowsPerBlock.
constexpr int kBiasCols = 32, kBiasRows = 8;
constexpr index_t kRowsPerBlock = 256;

template <class G>
__global__ void bias_grad_kernel(float* db, const G* dy, index_t rows, index_t cols) {
  __shared__ float part[kBiasRows][kBiasCols];
  const index_t c = blockIdx.x * index_t(kBiasCols) + threadIdx.x;
  const index_t r0 = blockIdx.y * kRowsPerBlock;
  const index_t r1 = detail::min_index(rows, r0 + kRowsPerBlock);
  float acc = 0.0f;
  if (c < cols)
    for (index_t r = r0 + threadIdx.y; r < r1; r += kBiasRows) acc += load_f32(dy + r * cols + c);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < kBiasRows; ++k) s += part[k][threadIdx.x];
    atomicAdd(db + c, s);
  }
}

template <class G>
void bias_grad(float* db, const G* dy, index_t rows, index_t cols, cudaStream_t stream, const char* name) {
  if (rows <= 0 || cols <= 0) return;
  const index_t row_blocks = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  STRATA_CHECK(row_blocks <= 65535, name, ": rows = ", rows, " exceeds ", 65535 * kRowsPerBlock);
  const dim3 grid(unsigned((cols + kBiasCols - 1) / kBiasCols), unsigned(row_blocks));
  bias_grad_kernel<G><<<grid, dim3(kBiasCols, kBiasRows), 0, stream>>>(db, dy, rows, cols);
  STRATA_CUDA_LAUNCH_CHECK(name);
}

__global__ void sum_squares_f32_kernel(float* out, const float* x, index_t n) {
  __shared__ float shared[32];
  float acc = 0.0f;
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < n;
       i += index_t(gridDim.x) * blockDim.x) {
    const float v = x[i];
    acc += v * v;
  }
  acc = detail::block_sum(acc, shared);
  if (threadIdx.x == 0) atomicAdd(out, acc);
}

}  // namespace

void cast_f32_to_bf16(bf16* y, const float* x, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  cast_f32_to_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(y, x, n);
  STRATA_CUDA_LAUNCH_CHECK("cast_f32_to_bf16");
}

void cast_bf16_to_f32(float* y, const bf16* x, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  cast_bf16_to_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(y, x, n);
  STRATA_CUDA_LAUNCH_CHECK("cast_bf16_to_f32");
}

void fill_f32(float* y, float value, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  fill_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(y, value, n);
  STRATA_CUDA_LAUNCH_CHECK("fill_f32");
}

void fill_bf16(bf16* y, float value, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  fill_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(y, value, n);
  STRATA_CUDA_LAUNCH_CHECK("fill_bf16");
}

void add_bf16(bf16* y, const bf16* a, const bf16* b, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  add_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(y, a, b, n);
  STRATA_CUDA_LAUNCH_CHECK("add_bf16");
}

void add_bias_bf16(bf16* y, const bf16* bias, index_t rows, index_t cols, cudaStream_t stream) {
  if (rows <= 0 || cols <= 0) return;
  const dim3 grid(grid_for(cols, kThreads), unsigned(detail::min_index(rows, 65535)));
  add_bias_bf16_kernel<<<grid, kThreads, 0, stream>>>(y, bias, rows, cols);
  STRATA_CUDA_LAUNCH_CHECK("add_bias_bf16");
}

void accumulate_f32(float* y, const float* x, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  accumulate_f32_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(y, x, n);
  STRATA_CUDA_LAUNCH_CHECK("accumulate_f32");
}

void accumulate_f32_bf16(float* y, const bf16* x, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  accumulate_f32_bf16_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(y, x, n);
  STRATA_CUDA_LAUNCH_CHECK("accumulate_f32_bf16");
}

void bias_grad_bf16(float* db, const bf16* dy, index_t rows, index_t cols, cudaStream_t stream) {
  bias_grad(db, dy, rows, cols, stream, "bias_grad_bf16");
}

void bias_grad_f32(float* db, const float* dy, index_t rows, index_t cols, cudaStream_t stream) {
  bias_grad(db, dy, rows, cols, stream, "bias_grad_f32");
}

void sum_squares_f32(float* out, const float* x, index_t n, cudaStream_t stream) {
  if (n <= 0) return;
  // At most 4 blocks per SM: enough to stream memory at full rate, few atomics.
  const unsigned grid = grid_for(n, kThreads, index_t(detail::sm_count()) * 4);
  sum_squares_f32_kernel<<<grid, kThreads, 0, stream>>>(out, x, n);
  STRATA_CUDA_LAUNCH_CHECK("sum_squares_f32");
}

}  // namespace strata::kernels::cuda

// Attention over a key/value cache (attention.hpp, attention_cached): one warp per (query row,
// head), online softmax over the keys in order.
//   s_u = (q . k_u) / sqrt(HS)        lanes hold D = HS/32 dimensions; one warp reduction per key
//   m_u = max(m_{u-1}, s_u),  l_u = e^{m_{u-1} - m_u} l_{u-1} + e^{s_u - m_u}
//   o_u = e^{m_{u-1} - m_u} o_{u-1} + e^{s_u - m_u} v_u,      out = o / l
// In fp32 throughout; m starts at -inf, where e^{-inf} = 0 makes the first key's update exact.
#include <cmath>

#include "strata/kernels/cuda/attention.hpp"

namespace strata::kernels::cuda {

namespace {

template <int HS>
__global__ void attention_cached_kernel(bf16* __restrict__ out, const bf16* __restrict__ q,
                                        const bf16* __restrict__ kc, const bf16* __restrict__ vc, index_t Tq,
                                        index_t pos, int NH, int group, index_t ld_q, index_t ld_kv,
                                        bool causal, float scale) {
  constexpr int D = HS / 32;
  const index_t warp = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = int(threadIdx.x % 32);
  if (warp >= Tq * NH) return;  // the whole warp leaves together
  const index_t i = warp / NH;
  const int h = int(warp % NH), hk = h / group;
  float qv[D], acc[D];
  const bf16* qr = q + i * ld_q + index_t(h) * HS + lane * D;
  for (int d = 0; d < D; ++d) {
    qv[d] = __bfloat162float(qr[d]) * scale;
    acc[d] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  const index_t keys = causal ? pos + i + 1 : pos + Tq;
  for (index_t u = 0; u < keys; ++u) {
    const bf16* kr = kc + u * ld_kv + index_t(hk) * HS + lane * D;
    float s = 0.0f;
    for (int d = 0; d < D; ++d) s += qv[d] * __bfloat162float(kr[d]);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float m_new = fmaxf(m, s);
    const float corr = __expf(m - m_new), p = __expf(s - m_new);
    l = l * corr + p;
    const bf16* vr = vc + u * ld_kv + index_t(hk) * HS + lane * D;
    for (int d = 0; d < D; ++d) acc[d] = acc[d] * corr + p * __bfloat162float(vr[d]);
    m = m_new;
  }
  bf16* o = out + (i * NH + h) * index_t(HS) + lane * D;
  for (int d = 0; d < D; ++d) o[d] = __float2bfloat16(acc[d] / l);
}

}  // namespace

void attention_cached(bf16* out, const bf16* q, const bf16* k_cache, const bf16* v_cache, index_t Tq,
                      index_t pos, index_t NH, index_t NKV, index_t HS, index_t ld_q, index_t ld_kv,
                      bool causal, cudaStream_t stream) {
  STRATA_CHECK(HS == 64 || HS == 128, "attention_cached: head size ", HS, " (64 and 128 are compiled in)");
  STRATA_CHECK(NKV > 0 && NH % NKV == 0, "attention_cached: ", NKV, " KV heads do not divide ", NH, " heads");
  if (Tq == 0) return;
  constexpr int kThreads = 128;  // 4 warps per block
  const index_t warps = Tq * NH;
  const unsigned blocks = unsigned((warps * 32 + kThreads - 1) / kThreads);
  const float scale = 1.0f / std::sqrt(float(HS));
  const int group = int(NH / NKV);
  if (HS == 64)
    attention_cached_kernel<64><<<blocks, kThreads, 0, stream>>>(out, q, k_cache, v_cache, Tq, pos, int(NH),
                                                                 group, ld_q, ld_kv, causal, scale);
  else
    attention_cached_kernel<128><<<blocks, kThreads, 0, stream>>>(out, q, k_cache, v_cache, Tq, pos, int(NH),
                                                                  group, ld_q, ld_kv, causal, scale);
  STRATA_CUDA_LAUNCH_CHECK("attention_cached");
}

}  // namespace strata::kernels::cuda

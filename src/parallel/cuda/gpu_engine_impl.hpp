// GpuEngine's private state, shared by the files of src/parallel/cuda/:
//   gpu_engine.cu     construction (limits, device, streams, communicators, memory plans),
//                     the step (run / evaluate), host transfers, description
//   gpu_model.cu      the transformer chunk on the device: forward, loss, backward
//   gpu_optimizer.cu  data-parallel gradient buckets, gradient norm, ZeRO-1 AdamW
//
// Glossary (llm.c's): B micro-batch sequences, T sequence length, N = B*T rows, C model
// width, NH/NKV query/KV heads of this TP rank, HS head size, Q = NH*HS, KV = NKV*HS, F the
// MLP width of this rank, V this rank's slice of the padded vocabulary, L layers.
//
// One stream does all compute (the "compute stream"); the TP and DP NcclCommunicators each
// own a communication stream. TP collectives use the blocking forms (enqueued on the compute
// stream, in order with the kernels); DP gradient buckets use the non-blocking forms, which
// run on the DP communicator's stream after the compute stream's current point, so they
// overlap with the rest of backward; the compute stream waits for them before the optimizer.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "strata/comm/nccl_communicator.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/kernels/cuda/adamw.hpp"
#include "strata/kernels/cuda/matmul.hpp"
#include "strata/kernels/cuda/runtime.hpp"
#include "strata/parallel/distributed_optimizer.hpp"
#include "strata/parallel/gpu_engine.hpp"

namespace strata::parallel {

namespace kc = kernels::cuda;
using kc::bf16;

// Pointers into one layer's parameters (P = bf16: the compute copy) or gradients (P = float).
// Absent tensors (no bias, the other MLP kind) are null.
template <class P>
struct GpuLayerPtrs {
  P *n1_w, *n1_b, *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *n2_w, *n2_b;
  P *w1, *b1, *w3, *b3, *w2, *b2;  // gelu: w1 = fc, w2 = proj; swiglu: w1 = gate, w3 = up, w2 = down
};

// One layer's saved activations (bf16) and statistics (fp32).
struct GpuLayerActs {
  bf16 *ln1, *q, *k, *v, *attn_y, *mid, *ln2, *fc, *up, *act;  // up: swiglu only
  float *ln1_mean, *ln1_rstd, *lse, *ln2_mean, *ln2_rstd;
};

struct GpuEngine::Impl {
  Impl(const config::ModelConfig& model, const config::ParallelConfig& parallel, const config::OptimConfig& optim,
       int seq_len, int microbatches, comm::RankGrid& grid);
  ~Impl();

  // ---- configuration ----------------------------------------------------------------------
  config::ModelConfig cfg;
  config::ParallelConfig par;
  config::OptimConfig opt;
  comm::RankGrid& grid;
  int m = 1;  // micro-batches per step
  int B = 0, T = 0, C = 0, NH = 0, NKV = 0, HS = 0, F = 0, V = 0, L = 0;
  std::int64_t N = 0, Q = 0, KV = 0, vocab_start = 0, vocab_real = 0;
  int tp_size = 1, tp_rank = 0, dp_size = 1, dp_rank = 0;
  bool zero1 = false;        // optimizer state sharded over DP (zero_stage 1 and dp > 1)
  bool bf16_reduce = false;  // parallel.grad_reduce_dtype: bf16 (and dp > 1)
  bool recompute = false, swiglu = false, rms = false, rope = false;
  bool sp = false;           // sequence parallelism (parallel.sequence_parallel and tp > 1)
  std::int64_t Nsp = 0;      // rows of the residual stream on this rank: N / tp with SP, else N
  model::ParameterTable table;
  std::int64_t numel = 0, padded = 0;  // table elements; flat buffers padded to a multiple of dp
  std::vector<std::pair<std::int64_t, std::int64_t>> layer_ranges;  // flat range of each layer
  // SP: the gradients of replicated tensors computed from sequence shards (norms,
  // row-parallel biases), summed over TP once per step, in flat order; sp_summed counts how
  // many from the end are done in the current step.
  std::vector<std::pair<std::int64_t, std::int64_t>> sp_sum_spans;  // (offset, numel)
  std::size_t sp_summed = 0;

  // ---- memory: every buffer, planned in the constructor, one allocation per plan. Declared
  // before the streams and communicators so that it is released after them (their pending
  // work may still read it while they shut down).
  MemoryPlan param_plan{"gpu parameters"};
  MemoryPlan optim_plan{"gpu optimizer"};
  MemoryPlan act_plan{"gpu activations"};
  MemoryPlan host_plan{"gpu host staging (pinned)"};

  // ---- device runtime -----------------------------------------------------------------------
  int device = -1;
  std::unique_ptr<kc::Stream> stream;
  cudaStream_t s = nullptr;  // stream->get()
  std::unique_ptr<kc::Blas> blas;
  std::unique_ptr<comm::NcclCommunicator> tp_comm, dp_comm;  // null where that dimension is 1
  std::unique_ptr<kc::Event> ev_start, ev_compute_end, ev_wait_end, ev_gather_start, ev_gather_end;

  // ---- parameters and gradients (flat layout of `table`) ------------------------------------
  bf16* params = nullptr;  // [padded] bf16 copy used by the kernels
  float* grads = nullptr;  // [padded] fp32 gradients, accumulated over the micro-batches
  std::vector<GpuLayerPtrs<bf16>> w;
  std::vector<GpuLayerPtrs<float>> g;
  bf16 *wte = nullptr, *wpe = nullptr, *head_w = nullptr, *nf_w = nullptr, *nf_b = nullptr;
  float *dwte = nullptr, *dwpe = nullptr, *dhead_w = nullptr, *dnf_w = nullptr, *dnf_b = nullptr;

  // ---- optimizer (gpu_optimizer.cu) ---------------------------------------------------------
  std::vector<Range> buckets;              // make_buckets order: from the end of the flat buffer
  std::vector<Range> owned;                // ZeRO-1: this rank's piece of each bucket; else {0, padded}
  std::vector<std::int64_t> shard_offset;  // start of owned piece i in master, m, v, gshard
  std::int64_t state_elems = 0;
  float *master = nullptr, *adam_m = nullptr, *adam_v = nullptr;  // [state_elems] fp32
  float* gshard = nullptr;           // ZeRO-1: reduced gradients of the owned pieces [state_elems]
  bf16* stage = nullptr;             // bf16 reduction: staging copy of the gradients [padded]
  bf16* stage_shard = nullptr;       // bf16 reduction under ZeRO-1: reduced pieces [state_elems]
  kc::AdamWSegment* segments = nullptr;  // device array, uploaded once
  std::vector<kc::AdamWSegment> segments_host;
  std::int64_t max_segment = 0;
  struct Span {
    const float* p;
    std::int64_t n;
  };
  std::vector<Span> norm_spans;  // the gradient ranges this rank counts in the global norm
  float* norm_dev = nullptr;     // one float on the device
  float* norm_host = nullptr;    // one pinned float
  std::vector<bool> launched;
  std::vector<comm::Work> pending;
  bool final_backward = false;  // the step's last micro-batch is in backward: launch buckets
  long step = 0;

  // ---- activations and work space (gpu_model.cu) --------------------------------------------
  std::vector<bf16*> resid;           // L + 1 residual streams [Nsp, C]: each layer's input, the output
  std::vector<GpuLayerActs> acts;     // per layer; all alias one set under recompute = full
  std::int32_t *tokens = nullptr, *targets = nullptr;  // [N]
  bf16 *lnf = nullptr, *logits = nullptr;              // [N, C], [N, V]
  float *lnf_mean = nullptr, *lnf_rstd = nullptr, *losses = nullptr;  // [N]
  float *ce_max = nullptr, *ce_sum = nullptr, *ce_target = nullptr;   // [N] each, sum/target adjacent
  float* d_resid = nullptr;  // [Nsp, C] fp32 gradient of the residual stream
  bf16 *d_resid_bf = nullptr, *d_ln = nullptr, *d_attn_y = nullptr, *d_q = nullptr, *d_k = nullptr,
       *d_v = nullptr, *d_fc = nullptr, *d_up = nullptr, *d_act = nullptr;
  // SP only: a row-parallel layer's partial [N, C] output before its reduce-scatter, the
  // reduce-scattered gradient of a norm's output [Nsp, C], and the all-gathered gradient of
  // the residual stream [N, C] (bf16 for the GEMMs, fp32 for the embedding backward).
  bf16 *partial = nullptr, *d_shard = nullptr;
  float* d_full_f32 = nullptr;
  float* attn_ws = nullptr;  // attention backward work space
  float* rope_cs = nullptr;  // [max_seq_len, HS/2] (cos, sin) pairs
  // pinned host staging: tokens/targets/losses of every micro-batch of a step [m, N]
  std::int32_t *h_tokens = nullptr, *h_targets = nullptr;
  float* h_losses = nullptr;

  // ---- gpu_engine.cu --------------------------------------------------------------------------
  void use_device() const;  // cudaSetDevice(device): several engines may live in one process
  void stage_batch(int mb, const FillBatch& fill);
  model::LossSum host_loss_sum(int microbatches) const;

  // ---- gpu_model.cu -----------------------------------------------------------------------------
  void plan_activations();
  void bind_activations();
  void bind_parameters();
  void embed_forward();
  void layer_forward(int l);
  void head_loss(float dloss, bool with_grad);  // final norm, logits, cross-entropy (+ dlogits)
  void head_backward();                         // from dlogits to d_resid
  void layer_backward(int l);
  void embed_backward();
  void forward_microbatch(int mb, const FillBatch& fill, float dloss, bool with_grad);
  void backward_microbatch(bool last);
  // Tensor-parallel communication (Megatron-LM's conjugate pairs; with SP, Korthikanti et al.):
  // leaving a TP region forward: partial [N, C] -> out [Nsp, C] (all-reduce, or reduce-scatter)
  void reduce_from_tp(bf16* partial_out, bf16* out);
  // a norm over the Nsp rows of x into the full [N, C] input of a column-parallel layer
  // (the rank's block, then all-gathered with SP)
  void norm_into_full(bf16* full, float* mean, float* rstd, const bf16* x, const bf16* w, const bf16* b);
  // entering a TP region backward: the partial gradient of the full input -> [Nsp, C]
  const bf16* reduce_grad_to_shard(bf16* partial_grad);
  // leaving a TP region backward: d_resid (fp32 [Nsp, C]) as the bf16 [N, C] a GEMM reads
  const bf16* grad_out_full();
  // SP: sum over TP the replicated gradients of the tensors from flat offset `from` on that
  // are not summed yet (once per step, before their DP bucket is launched).
  void sum_sequence_parallel_grads(std::int64_t from);

  // ---- gpu_optimizer.cu ---------------------------------------------------------------------
  void plan_optimizer();
  void bind_optimizer();
  void grads_ready_from(std::int64_t offset);
  void launch_bucket(std::size_t i);
  void finish_backward();
  double grad_norm();
  double optimizer_step(double lr, double grad_scale);
  // Host copy of a per-piece fp32 device buffer (master or gshard) as a whole flat buffer
  // (collective over DP under ZeRO-1).
  void gather_pieces(const float* dev_pieces, float* host);
};

}  // namespace strata::parallel

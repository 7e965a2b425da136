// How strata's element types and reductions map onto NCCL's. Included only by code compiled
// where CUDA is (src/comm/cuda, tests/cuda): it needs nccl.h.
#pragma once
#include <nccl.h>

#include <string>

#include "strata/comm/communicator.hpp"
#include "strata/core/error.hpp"

namespace strata::comm {

// f32, f64, bf16, i32, u32, u64. u16 (token ids on the host) has no NCCL type: it is never
// communicated on the GPU, and an explicit error beats moving it as bytes and then reducing
// garbage.
inline ncclDataType_t nccl_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return ncclFloat32;
    case DType::f64: return ncclFloat64;
    case DType::bf16: return ncclBfloat16;
    case DType::i32: return ncclInt32;
    case DType::u32: return ncclUint32;
    case DType::u64: return ncclUint64;
    case DType::u16: break;
  }
  throw make_error("dtype ", dtype_name(dtype),
                   " has no NCCL type (supported: f32, f64, bf16, i32, u32, u64)");
}

inline ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::max: return ncclMax;
    case ReduceOp::min: return ncclMin;
  }
  throw make_error("unknown ReduceOp ", int(op));
}

inline const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "?";
}

// "2.28.9" from ncclGetVersion's code (major*10000 + minor*100 + patch since NCCL 2.9).
inline std::string nccl_version_string(int code) {
  return std::to_string(code / 10000) + "." + std::to_string((code % 10000) / 100) + "." +
         std::to_string(code % 100);
}

}  // namespace strata::comm

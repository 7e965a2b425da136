// The transformer on the CPU: the stage of stage.hpp over the CPU backend, in fp32 (training)
// or fp64 (the finite-difference tests). The same layer code runs on GPUs over the CUDA
// backend (src/model/cuda/).
#pragma once
#include "strata/model/cpu_backend.hpp"
#include "strata/model/decoder.hpp"
#include "strata/model/stage.hpp"

namespace strata::model {

template <class T>
using Transformer = Stage<CpuBackend<T>>;
template <class T>
using CpuDecoder = Decoder<CpuBackend<T>>;

extern template class Stage<CpuBackend<float>>;
extern template class Stage<CpuBackend<double>>;
extern template class Decoder<CpuBackend<float>>;
extern template class Decoder<CpuBackend<double>>;

}  // namespace strata::model

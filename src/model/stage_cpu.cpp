// The stage and the decoder over the CPU backend: fp32 for training and inference, fp64 for
// the finite-difference tests.
#include "decoder_impl.hpp"
#include "strata/model/transformer.hpp"

namespace strata::model {

template class Stage<CpuBackend<float>>;
template class Stage<CpuBackend<double>>;
template class Decoder<CpuBackend<float>>;
template class Decoder<CpuBackend<double>>;

}  // namespace strata::model

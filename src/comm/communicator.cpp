#include "strata/comm/communicator.hpp"

#include "strata/core/error.hpp"

namespace strata::comm {

void Communicator::gather(const void*, void*, std::size_t, DType, int) {
  // No generic fallback: one through all_gather would need a staging buffer in the backend's
  // memory (device memory for NCCL), which only the backend knows how to make.
  throw make_error("gather on group '", name(), "': not implemented by this communicator's backend");
}

}  // namespace strata::comm

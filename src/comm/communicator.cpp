// Communicator defaults (communicator.hpp).
#include "strata/comm/communicator.hpp"

#include "strata/core/error.hpp"

namespace strata::comm {

void Communicator::all_gatherv(const void*, std::size_t, void*, const std::size_t*, DType) {
  throw make_error("all_gatherv is not implemented by the backend of group '", name(), "'");
}

}  // namespace strata::comm

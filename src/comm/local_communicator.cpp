// The one-process group (local_communicator.hpp): every operation completes at once.
#include "strata/comm/local_communicator.hpp"

#include <cstring>

#include "strata/core/error.hpp"

namespace strata::comm {

namespace {
void copy(const void* send, void* recv, std::size_t count, DType dtype) {
  if (send != recv && count > 0) std::memmove(recv, send, count * dtype_size(dtype));
}
}  // namespace

Work LocalCommunicator::iall_reduce(void*, std::size_t, DType, ReduceOp) { return {}; }

Work LocalCommunicator::ireduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                                        ReduceOp) {
  copy(send, recv, recv_count, dtype);
  return {};
}

Work LocalCommunicator::iall_gather(const void* send, void* recv, std::size_t send_count, DType dtype) {
  copy(send, recv, send_count, dtype);
  return {};
}

Work LocalCommunicator::ibroadcast(void*, std::size_t, DType, int root) {
  STRATA_CHECK(root == 0, "broadcast on group '", name_, "' (1 rank) from root ", root);
  return {};
}

Work LocalCommunicator::isend(const void*, std::size_t, DType, int peer, int) {
  throw make_error("send to rank ", peer, " on group '", name_, "', which has only one rank");
}

Work LocalCommunicator::irecv(void*, std::size_t, DType, int peer, int) {
  throw make_error("recv from rank ", peer, " on group '", name_, "', which has only one rank");
}

void LocalCommunicator::all_gatherv(const void* send, std::size_t send_count, void* recv,
                                    const std::size_t* recv_counts, DType dtype) {
  STRATA_CHECK(recv_counts[0] == send_count, "all_gatherv on group '", name_,
               "': recv_counts[0] = ", recv_counts[0], " but this rank sends ", send_count);
  copy(send, recv, send_count, dtype);
}

}  // namespace strata::comm

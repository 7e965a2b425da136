// Built instead of src/comm/cuda/*.cpp when strata is configured without CUDA: the same
// NcclCommunicator symbols, each a clear error.
#include "strata/comm/nccl_communicator.hpp"

#include "strata/core/error.hpp"

namespace strata::comm {

namespace {
[[noreturn]] void not_compiled(const char* what) {
  throw make_error(
      "NcclCommunicator::", what,
      ": CUDA support not compiled in (configure with -DSTRATA_CUDA=ON where nvcc and NCCL exist)");
}
}  // namespace

struct NcclCommunicator::Impl {};

NcclCommunicator::NcclCommunicator(MPI_Comm, std::string, void*, std::string, double) {
  not_compiled("constructor");
}
NcclCommunicator::~NcclCommunicator() = default;
NcclCommunicator::NcclCommunicator(NcclCommunicator&& other) noexcept : impl_(std::move(other.impl_)) {}

int NcclCommunicator::rank() const { not_compiled("rank"); }
int NcclCommunicator::size() const { not_compiled("size"); }
const std::string& NcclCommunicator::name() const { not_compiled("name"); }
Work NcclCommunicator::iall_reduce(void*, std::size_t, DType, ReduceOp) { not_compiled("iall_reduce"); }
Work NcclCommunicator::ireduce_scatter(const void*, void*, std::size_t, DType, ReduceOp) {
  not_compiled("ireduce_scatter");
}
Work NcclCommunicator::iall_gather(const void*, void*, std::size_t, DType) { not_compiled("iall_gather"); }
Work NcclCommunicator::ibroadcast(void*, std::size_t, DType, int) { not_compiled("ibroadcast"); }
Work NcclCommunicator::isend(const void*, std::size_t, DType, int, int) { not_compiled("isend"); }
Work NcclCommunicator::irecv(void*, std::size_t, DType, int, int) { not_compiled("irecv"); }
void NcclCommunicator::wait(Work&) { not_compiled("wait"); }
bool NcclCommunicator::test(Work&) { not_compiled("test"); }
void NcclCommunicator::barrier() { not_compiled("barrier"); }
void NcclCommunicator::all_reduce(void*, std::size_t, DType, ReduceOp) { not_compiled("all_reduce"); }
void NcclCommunicator::reduce_scatter(const void*, void*, std::size_t, DType, ReduceOp) {
  not_compiled("reduce_scatter");
}
void NcclCommunicator::all_gather(const void*, void*, std::size_t, DType) { not_compiled("all_gather"); }
void NcclCommunicator::broadcast(void*, std::size_t, DType, int) { not_compiled("broadcast"); }
void NcclCommunicator::all_to_all(const void*, void*, std::size_t, DType) { not_compiled("all_to_all"); }
void NcclCommunicator::synchronize() { not_compiled("synchronize"); }
std::string NcclCommunicator::version() { not_compiled("version"); }

}  // namespace strata::comm

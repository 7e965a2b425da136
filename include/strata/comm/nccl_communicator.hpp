// NcclCommunicator: the Communicator of one grid dimension on GPUs (DESIGN.md: "on GPUs,
// its own NCCL communicator (unique id broadcast over that dimension's MPI communicator)").
// Buffers are device pointers.
//
// Stream semantics. NCCL operations are asynchronous on the GPU, so "completes" means
// "completes in stream order" rather than "the host has waited":
// - blocking forms (all_reduce, ...) are enqueued on the compute stream: everything the
//   compute stream runs afterwards sees the result; the host never blocks.
// - non-blocking forms (iall_reduce, ...) run on this communicator's own communication
//   stream after the compute stream's current point (an event), so they overlap with the
//   compute that follows; wait(work) makes the compute stream wait for the operation's
//   completion event; test(work) queries that event.
// - barrier() and synchronize() block the host until the communication is done.
// - isend/irecv: NCCL matches a send and a receive by their order between two ranks (the tag
//   is not used), and a send blocks on the GPU until the peer's receive runs. So consecutive
//   isend/irecv calls are issued together as one NCCL group by the next call that needs them
//   (wait/test of one of them, any other operation of this communicator, barrier,
//   synchronize): "everyone isend(next), irecv(prev), wait both" works as with MPI.
// - at most max_pending non-blocking operations pending at once (a fixed pool of event
//   pairs, created with the communicator: enough for one bucket of every 25 MB of a 200B
//   model's gradients on one rank, reduced and then gathered); a
//   communicator is moved only while none is pending (Work refers to the object).
// Errors: every NCCL call is checked (the message names the operation, the group "dp" and
// the rank). A watchdog thread polls ncclCommGetAsyncError and the completion events of
// the pending operations; an operation pending longer than the timeout, or an asynchronous
// NCCL error, aborts the communicator (ncclCommAbort) and the job with a message naming the
// operation, the group, the rank and its grid coordinates (abort-not-hang, DESIGN.md).
//
// RAII and move-only: the NCCL communicator, the stream, the events and the watchdog live
// in one implementation object owned through a unique_ptr.
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "strata/comm/communicator.hpp"

namespace strata::comm {

class NcclCommunicator final : public Communicator {
 public:
  // Collective over `group` (that dimension's MPI communicator; not freed here): its rank 0
  // calls ncclGetUniqueId, MPI_Bcast shares the id, then ncclCommInitRank on the current
  // device. compute_stream is the rank's compute stream (a cudaStream_t, passed as void* so
  // this header needs no CUDA headers). `where` names the rank in errors ("rank 5 of 8 (tp
  // 1/2, dp 0/2, pp 1/2)").
  NcclCommunicator(MPI_Comm group, std::string name, void* compute_stream, std::string where,
                   double timeout_s = 600.0);
  ~NcclCommunicator() override;
  NcclCommunicator(NcclCommunicator&& other) noexcept;
  NcclCommunicator& operator=(NcclCommunicator&&) = delete;

  int rank() const override;
  int size() const override;
  const std::string& name() const override;

  Work iall_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) override;
  Work ireduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                       ReduceOp op) override;
  Work iall_gather(const void* send, void* recv, std::size_t send_count, DType dtype) override;
  Work ibroadcast(void* buf, std::size_t count, DType dtype, int root) override;
  Work isend(const void* buf, std::size_t count, DType dtype, int peer, int tag) override;
  Work irecv(void* buf, std::size_t count, DType dtype, int peer, int tag) override;
  void wait(Work& work) override;
  bool test(Work& work) override;
  void barrier() override;

  void all_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op = ReduceOp::sum) override;
  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                      ReduceOp op = ReduceOp::sum) override;
  void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype) override;
  void broadcast(void* buf, std::size_t count, DType dtype, int root) override;
  // NCCL has no all-to-all call: one group of size() ncclSend/ncclRecv pairs on the compute stream.
  void all_to_all(const void* send, void* recv, std::size_t count, DType dtype) override;
  using Communicator::all_reduce;  // the typed form

  // Non-blocking operations that may be pending at once on one communicator.
  static constexpr int max_pending = 8192;

  // Blocks the host until every operation enqueued so far (both streams) has completed.
  void synchronize();
  // The NCCL version the library reports, e.g. "2.28.3".
  static std::string version();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::comm

// Communicator: the collectives and point-to-point operations of one group of ranks (one
// dimension of the rank grid), behind one interface so that model and parallel code never
// know whether they run on MPI/CPU or NCCL/GPU (DESIGN.md invariant 6).
//
// Pre-conditions common to every call: buffers stay valid and unmodified (send side) or
// untouched (receive side) until the operation completes, i.e. until the call returns for
// the blocking forms or until wait() for the non-blocking ones; counts are in elements of
// `dtype`; every rank of the group makes the same sequence of collective calls.
// Blocking forms default to the non-blocking ones followed by wait(); a backend may run them
// as its own blocking calls (MPI's blocking collectives use faster algorithms than its
// non-blocking ones). Watchdog: wait() throws strata::Error naming the operation, the group
// and the rank when an operation does not complete within the timeout, so main() can abort
// the job; a blocking call that hangs is ended by the backend's watchdog thread.
#pragma once
#include <cstddef>
#include <string>

#include "strata/core/tensor.hpp"

namespace strata::comm {

enum class ReduceOp { sum, max, min };

class Communicator;

// Handle of a pending non-blocking operation: a slot in its communicator's request pool
// (no allocation per operation). Default-constructed = nothing pending.
struct Work {
  Communicator* owner = nullptr;
  int slot = -1;
  const char* op = "";
  bool pending() const { return owner != nullptr; }
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const std::string& name() const = 0;  // e.g. "dp", for messages

  // In place: buf = op over the group of buf.
  virtual Work iall_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) = 0;
  // send holds size() blocks of recv_count; rank r receives op over the group of block r.
  virtual Work ireduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                               ReduceOp op) = 0;
  // recv receives size() blocks of send_count, block r from rank r (send may alias block rank()).
  virtual Work iall_gather(const void* send, void* recv, std::size_t send_count, DType dtype) = 0;
  virtual Work ibroadcast(void* buf, std::size_t count, DType dtype, int root) = 0;
  virtual Work isend(const void* buf, std::size_t count, DType dtype, int peer, int tag) = 0;
  virtual Work irecv(void* buf, std::size_t count, DType dtype, int peer, int tag) = 0;

  // Completes `work` (no-op when nothing is pending) and resets it; throws on timeout.
  virtual void wait(Work& work) = 0;
  // True when `work` has completed (and then resets it).
  virtual bool test(Work& work) = 0;
  virtual void barrier() = 0;

  // Blocking forms.
  virtual void all_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op = ReduceOp::sum) {
    Work w = iall_reduce(buf, count, dtype, op);
    wait(w);
  }
  virtual void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                              ReduceOp op = ReduceOp::sum) {
    Work w = ireduce_scatter(send, recv, recv_count, dtype, op);
    wait(w);
  }
  virtual void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype) {
    Work w = iall_gather(send, recv, send_count, dtype);
    wait(w);
  }
  virtual void broadcast(void* buf, std::size_t count, DType dtype, int root) {
    Work w = ibroadcast(buf, count, dtype, root);
    wait(w);
  }
  // recv (significant on `root` only; may be null elsewhere) receives size() blocks of
  // send_count, block r from rank r. Only the root receives: at 30,000 ranks this is what keeps
  // a per-rank report cheap (train/stragglers.hpp). MpiCommunicator implements it; the default
  // throws naming the group.
  virtual void gather(const void* send, void* recv, std::size_t send_count, DType dtype, int root);
  // Variable-size all-gather (blocking): rank r contributes send_count elements and recv
  // receives every rank's block in rank order, rank r's at offset recv_counts[0] + ... +
  // recv_counts[r - 1]. recv_counts has size() entries, the same on every rank (all-gather the
  // counts first: collectives.hpp does both). Host memory. Backends that do not implement it
  // throw strata::Error naming the group.
  virtual void all_gatherv(const void* send, std::size_t send_count, void* recv,
                           const std::size_t* recv_counts, DType dtype);
  // All-to-all (blocking): send holds size() blocks of `count` elements, block r for rank r;
  // recv receives size() blocks, block r from rank r. send and recv must not overlap.
  // Context parallelism's Ulysses mode (model/ulysses_attention_impl.hpp) calls it on the cp
  // group, twice per layer and pass.
  virtual void all_to_all(const void* send, void* recv, std::size_t count, DType dtype) = 0;
  void send(const void* buf, std::size_t count, DType dtype, int peer, int tag = 0) {
    Work w = isend(buf, count, dtype, peer, tag);
    wait(w);
  }
  void recv(void* buf, std::size_t count, DType dtype, int peer, int tag = 0) {
    Work w = irecv(buf, count, dtype, peer, tag);
    wait(w);
  }

  // Typed conveniences.
  template <class T>
  void all_reduce(T* buf, std::size_t count, ReduceOp op = ReduceOp::sum) {
    all_reduce(static_cast<void*>(buf), count, dtype_of<T>(), op);
  }
};

}  // namespace strata::comm

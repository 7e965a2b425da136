// NcclCommunicator: one grid dimension's collectives on GPUs (header: the stream semantics).
//
// Streams and events, per operation kind:
//   blocking collective   ncclX(..., compute)                       -> watched by a ring event
//   non-blocking          record slot.ready on compute; comm waits it; ncclX(..., comm);
//                         record slot.done on comm                  -> wait(): compute waits done
//   isend / irecv         record slot.ready on compute; the NCCL call is deferred (below)
// Slots are a fixed pool (kSlots) of two events each, created with the communicator: no
// allocation per operation.
//
// Point-to-point. NCCL send and recv block on the GPU until the peer posts its match, and
// connecting two ranks is itself a host-side exchange, so a ring "everyone isend(next) then
// irecv(prev)" issued as separate NCCL calls deadlocks. MPI has no such problem, and callers
// are written against MPI's semantics. So isend/irecv only record their ready point; the
// consecutive p2p operations are issued together, in one ncclGroupStart/ncclGroupEnd, by the
// next call that needs them: wait/test of any of them, any other operation on this
// communicator (which keeps every rank's NCCL call order the same as its call order),
// barrier, synchronize or destruction. The tag is not used: NCCL matches sends and receives
// between two ranks of one communicator by their order.
//
// The watchdog thread wakes every 100 ms and, under the mutex that guards the slots and the
// ring: asks ncclCommGetAsyncError, and queries the completion events of the operations
// still running (non-blocking slots and the ring of recent blocking or waited-for ones). An
// asynchronous error or an operation older than timeout_s: message on stderr, ncclCommAbort,
// MPI_Abort. The ring overwrites its oldest entry; that loses nothing, because everything in
// the ring was enqueued on one stream in order: a hung old operation keeps every newer one
// from completing too, and the newer one then times out.
#include "strata/comm/nccl_communicator.hpp"

#include <cuda_runtime.h>
#include <nccl.h>

#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "strata/comm/mpi_communicator.hpp"  // check_mpi
#include "strata/comm/nccl_types.hpp"
#include "strata/core/error.hpp"

namespace strata::comm {

namespace {
constexpr int kSlots = NcclCommunicator::max_pending;  // non-blocking operations pending at once
constexpr int kWatched = 64;  // recent blocking operations the watchdog keeps an eye on
using Clock = std::chrono::steady_clock;
}  // namespace

struct NcclCommunicator::Impl {
  enum class State { free, deferred, running };
  struct Slot {
    cudaEvent_t ready = nullptr;  // the compute stream's point the operation starts after
    cudaEvent_t done = nullptr;   // recorded on the communication stream after it
    State state = State::free;
    bool watched = false;  // running and not yet seen complete by the watchdog
    const char* op = "";
    Clock::time_point start;
    // A deferred send or receive, issued at the next flush.
    bool is_send = false;
    void* buf = nullptr;
    std::size_t count = 0;
    ncclDataType_t type = ncclFloat32;
    int peer = 0;
  };
  struct Watched {
    cudaEvent_t done = nullptr;
    bool active = false;
    const char* op = "";
    Clock::time_point start;
  };

  std::string name, where;
  double timeout_s = 600;
  int rank = 0, size = 1, device = 0;
  ncclComm_t comm = nullptr;
  cudaStream_t compute = nullptr;  // borrowed
  cudaStream_t stream = nullptr;   // owned: the communication stream
  void* scratch = nullptr;         // one device int for barrier()
  bool failed = false;             // an error left the communicator unusable: abort, not destroy

  std::array<Slot, kSlots> slots;
  std::array<int, kSlots> free_slots{};  // a stack of free slot indices
  int num_free = 0;
  std::array<int, kSlots> deferred{};  // deferred p2p slots in call order
  int num_deferred = 0;
  std::array<Watched, kWatched> ring;
  int ring_next = 0;

  // Watchdog state. `host_op` covers a host-blocking call without an event (ncclCommInitRank).
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  const char* host_op = nullptr;
  Clock::time_point host_start;
  std::thread watchdog;

  ~Impl();
  [[noreturn]] void fail(const char* op, const std::string& what);
  void watch_loop();
  void stop_watchdog();

  void check_cuda(cudaError_t err, const char* op, const char* call) {
    if (err == cudaSuccess) return;
    cudaGetLastError();
    throw make_error("NCCL ", op, " on group ", name, " (", where, "): ", call,
                     " failed: ", cudaGetErrorName(err), ": ", cudaGetErrorString(err));
  }
  void check_nccl(ncclResult_t res, const char* op, const char* call) {
    if (res == ncclSuccess) return;
    const char* last = comm ? ncclGetLastError(comm) : ncclGetLastError(nullptr);
    throw make_error("NCCL ", op, " on group ", name, " (", where, "): ", call,
                     " failed: ", ncclGetErrorString(res),
                     last && *last ? std::string(" (") + last + ")" : std::string());
  }
  bool event_done(cudaEvent_t e, const char* op) {
    const cudaError_t err = cudaEventQuery(e);
    if (err == cudaErrorNotReady) return false;
    check_cuda(err, op, "cudaEventQuery");
    return true;
  }
  double elapsed_s(Clock::time_point since) const {
    return std::chrono::duration<double>(Clock::now() - since).count();
  }

  int claim(const char* op);
  void release(int slot);
  void flush_p2p();
  void watch(const char* op, cudaStream_t on, Clock::time_point start);
  void check_usable(const char* op) const {
    if (!comm)
      throw make_error("NCCL ", op, " on group ", name, " (", where, "): the communicator was aborted");
  }
  ncclDataType_t type(DType dtype, const char* op) const {
    try {
      return nccl_type(dtype);
    } catch (const Error& e) {
      throw make_error("NCCL ", op, " on group ", name, " (", where, "): ", e.what());
    }
  }

  // Blocking form: enqueued on the compute stream, in order with the compute around it;
  // watched through a ring event.
  template <class Call>
  void run_blocking(const char* op, Call&& call) {
    check_usable(op);
    flush_p2p();
    const Clock::time_point start = Clock::now();
    check_nccl(call(compute), op, "enqueue");
    watch(op, compute, start);
  }

  // Non-blocking form: the communication stream waits for the compute stream's current
  // point, runs the operation, and records the slot's completion event. Returns the slot.
  template <class Call>
  int run_async(const char* op, Call&& call) {
    check_usable(op);
    flush_p2p();
    const int slot = claim(op);
    Slot& s = slots[std::size_t(slot)];
    try {
      check_cuda(cudaEventRecord(s.ready, compute), op, "cudaEventRecord");
      check_cuda(cudaStreamWaitEvent(stream, s.ready, 0), op, "cudaStreamWaitEvent");
      check_nccl(call(stream), op, "enqueue");
      std::lock_guard lock(mu);
      check_cuda(cudaEventRecord(s.done, stream), op, "cudaEventRecord");
      s.op = op;
      s.start = Clock::now();
      s.state = State::running;
      s.watched = true;
    } catch (...) {
      release(slot);
      throw;
    }
    return slot;
  }

  // isend/irecv: record the ready point now, issue at the next flush (see the top comment).
  int defer_p2p(const char* op, bool is_send, void* buf, std::size_t count, DType dtype, int peer) {
    check_usable(op);
    if (peer < 0 || peer >= size)
      throw make_error("NCCL ", op, " on group ", name, " (", where, "): peer ", peer,
                       " is not a rank of the group (size ", size, ")");
    const ncclDataType_t t = type(dtype, op);
    const int slot = claim(op);
    Slot& s = slots[std::size_t(slot)];
    try {
      check_cuda(cudaEventRecord(s.ready, compute), op, "cudaEventRecord");
    } catch (...) {
      release(slot);
      throw;
    }
    std::lock_guard lock(mu);
    s.op = op;
    s.is_send = is_send;
    s.buf = buf;
    s.count = count;
    s.type = t;
    s.peer = peer;
    s.state = State::deferred;
    s.watched = false;
    deferred[std::size_t(num_deferred++)] = slot;
    return slot;
  }

  Slot& slot_of(const Work& work, const NcclCommunicator* self, const char* what) {
    if (work.owner != self)
      throw make_error("NCCL ", what, " on group ", name, " (", where, "): the Work of ", work.op,
                       " belongs to another communicator (", work.owner ? work.owner->name() : "none", ")");
    if (work.slot < 0 || work.slot >= kSlots || slots[std::size_t(work.slot)].state == State::free)
      throw make_error("NCCL ", what, " on group ", name, " (", where, "): the Work of ", work.op,
                       " is not pending (waited for twice?)");
    return slots[std::size_t(work.slot)];
  }
};

NcclCommunicator::Impl::~Impl() {
  stop_watchdog();
  if (comm) {
    // After an error the peers may never finish their part: abort instead of destroy, which
    // would wait for them.
    if (failed)
      ncclCommAbort(comm);
    else
      ncclCommDestroy(comm);
  }
  for (Slot& s : slots) {
    if (s.ready) cudaEventDestroy(s.ready);
    if (s.done) cudaEventDestroy(s.done);
  }
  for (Watched& w : ring)
    if (w.done) cudaEventDestroy(w.done);
  if (scratch) cudaFree(scratch);
  if (stream) cudaStreamDestroy(stream);
}

void NcclCommunicator::Impl::stop_watchdog() {
  {
    std::lock_guard lock(mu);
    stop = true;
  }
  cv.notify_all();
  if (watchdog.joinable()) watchdog.join();
}

// Called by the watchdog with `mu` held: report, abort the communicator (its kernels return,
// peers blocked on it see an error), end the job. Abort-not-hang (DESIGN.md invariant 5).
void NcclCommunicator::Impl::fail(const char* op, const std::string& what) {
  std::fprintf(stderr, "strata: %s: NCCL %s on group %s %s; aborting the communicator and the job\n",
               where.c_str(), op, name.c_str(), what.c_str());
  std::fflush(stderr);
  if (comm) ncclCommAbort(comm);
  comm = nullptr;
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::_Exit(1);  // MPI_Abort does not return; should it, the process still ends
}

void NcclCommunicator::Impl::watch_loop() {
  cudaSetDevice(device);  // events and the communicator belong to this device
  const std::string late = detail::concat("did not complete within ", timeout_s, " s");
  std::unique_lock lock(mu);
  while (!stop) {
    cv.wait_for(lock, std::chrono::milliseconds(100));
    if (stop) break;
    const bool timing = timeout_s > 0;
    if (host_op && timing && elapsed_s(host_start) > timeout_s) fail(host_op, late);
    // The oldest operation still running names an asynchronous error.
    const char* oldest = nullptr;
    Clock::time_point oldest_start = Clock::time_point::max();
    auto check = [&](cudaEvent_t done, const char* op, Clock::time_point start) {
      const cudaError_t err = cudaEventQuery(done);
      if (err == cudaSuccess) return true;  // completed: stop watching
      if (err != cudaErrorNotReady)
        fail(op,
             std::string("failed on the device: ") + cudaGetErrorName(err) + ": " + cudaGetErrorString(err));
      if (timing && elapsed_s(start) > timeout_s) fail(op, late);
      if (start < oldest_start) oldest = op, oldest_start = start;
      return false;
    };
    for (Slot& s : slots)
      if (s.state == State::running && s.watched && check(s.done, s.op, s.start)) s.watched = false;
    for (Watched& w : ring)
      if (w.active && check(w.done, w.op, w.start)) w.active = false;
    if (comm) {
      ncclResult_t async = ncclSuccess;
      const ncclResult_t res = ncclCommGetAsyncError(comm, &async);
      if (res != ncclSuccess) async = res;
      if (async != ncclSuccess && async != ncclInProgress) {
        const char* last = ncclGetLastError(comm);
        fail(oldest ? oldest : "communicator",
             std::string("failed asynchronously: ") + ncclGetErrorString(async) +
                 (last && *last ? std::string(" (") + last + ")" : std::string()));
      }
    }
  }
}

int NcclCommunicator::Impl::claim(const char* op) {
  if (num_free == 0)
    throw make_error("NCCL ", op, " on group ", name, " (", where, "): ", kSlots,
                     " operations are already pending; wait() or test() the earlier ones first",
                     " (for gradient buckets: raise parallel.bucket_mb)");
  return free_slots[std::size_t(--num_free)];
}

void NcclCommunicator::Impl::release(int slot) {
  std::lock_guard lock(mu);
  Slot& s = slots[std::size_t(slot)];
  s.state = State::free;
  s.watched = false;
  free_slots[std::size_t(num_free++)] = slot;
}

// Records a ring event on `on` after the operations enqueued there so far; the watchdog
// times it from `start`.
void NcclCommunicator::Impl::watch(const char* op, cudaStream_t on, Clock::time_point start) {
  std::lock_guard lock(mu);
  Watched& w = ring[std::size_t(ring_next)];
  ring_next = (ring_next + 1) % kWatched;
  check_cuda(cudaEventRecord(w.done, on), op, "cudaEventRecord");
  w.active = true;
  w.op = op;
  w.start = start;
}

// Issues the deferred sends and receives as one NCCL group on the communication stream, each
// after the compute point it was called at.
void NcclCommunicator::Impl::flush_p2p() {
  if (num_deferred == 0) return;
  const int n = std::exchange(num_deferred, 0);
  auto slot_at = [&](int i) -> Slot& { return slots[std::size_t(deferred[std::size_t(i)])]; };
  try {
    for (int i = 0; i < n; ++i)
      check_cuda(cudaStreamWaitEvent(stream, slot_at(i).ready, 0), slot_at(i).op, "cudaStreamWaitEvent");
    check_nccl(ncclGroupStart(), "send/recv", "ncclGroupStart");
    ncclResult_t first_error = ncclSuccess;
    const char* failed_op = "send/recv";
    for (int i = 0; i < n && first_error == ncclSuccess; ++i) {
      Slot& s = slot_at(i);
      first_error = s.is_send ? ncclSend(s.buf, s.count, s.type, s.peer, comm, stream)
                              : ncclRecv(s.buf, s.count, s.type, s.peer, comm, stream);
      if (first_error != ncclSuccess) failed_op = s.op;
    }
    const ncclResult_t end = ncclGroupEnd();  // always closes the group, even after an error
    check_nccl(first_error, failed_op, "ncclSend/ncclRecv");
    check_nccl(end, "send/recv", "ncclGroupEnd");
    std::lock_guard lock(mu);
    const Clock::time_point now = Clock::now();
    for (int i = 0; i < n; ++i) {
      Slot& s = slot_at(i);
      // The members of a group complete together: each slot's event follows the whole group.
      check_cuda(cudaEventRecord(s.done, stream), s.op, "cudaEventRecord");
      s.state = State::running;
      s.watched = true;
      s.start = now;
    }
  } catch (...) {
    // The peers' matching operations may now never complete: the communicator is abandoned
    // (aborted rather than destroyed) and its slots are freed, so wait() reports "not pending".
    failed = true;
    for (int i = 0; i < n; ++i)
      if (slot_at(i).state != State::free) release(deferred[std::size_t(i)]);
    throw;
  }
}

// ---- construction ---------------------------------------------------------------------

NcclCommunicator::NcclCommunicator(MPI_Comm group, std::string name, void* compute_stream, std::string where,
                                   double timeout_s)
    : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.name = std::move(name);
  m.where = std::move(where);
  m.timeout_s = timeout_s;
  m.compute = static_cast<cudaStream_t>(compute_stream);
  check_mpi(MPI_Comm_rank(group, &m.rank), "NCCL init: MPI_Comm_rank", m.name);
  check_mpi(MPI_Comm_size(group, &m.size), "NCCL init: MPI_Comm_size", m.name);
  m.check_cuda(cudaGetDevice(&m.device), "init", "cudaGetDevice");

  // The unique id comes from the group's rank 0. A failure there is broadcast too, so the
  // other ranks report it instead of waiting for an id that never comes.
  struct {
    int ok;
    ncclUniqueId id;
  } hello{};
  std::string root_error;
  if (m.rank == 0) {
    const ncclResult_t res = ncclGetUniqueId(&hello.id);
    hello.ok = res == ncclSuccess;
    if (!hello.ok) root_error = ncclGetErrorString(res);
  }
  check_mpi(MPI_Bcast(&hello, int(sizeof hello), MPI_BYTE, 0, group), "NCCL init: MPI_Bcast of the unique id",
            m.name);
  if (!hello.ok)
    throw make_error("NCCL init on group ", m.name, " (", m.where,
                     "): ncclGetUniqueId failed on the group's rank 0",
                     root_error.empty() ? std::string() : ": " + root_error);

  // Communication stream at the greatest priority, so collectives are not starved by compute.
  int least = 0, greatest = 0;
  m.check_cuda(cudaDeviceGetStreamPriorityRange(&least, &greatest), "init",
               "cudaDeviceGetStreamPriorityRange");
  m.check_cuda(cudaStreamCreateWithPriority(&m.stream, cudaStreamNonBlocking, greatest), "init",
               "cudaStreamCreateWithPriority");
  for (int i = 0; i < kSlots; ++i) {
    Impl::Slot& s = m.slots[std::size_t(i)];
    m.check_cuda(cudaEventCreateWithFlags(&s.ready, cudaEventDisableTiming), "init",
                 "cudaEventCreateWithFlags");
    m.check_cuda(cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming), "init",
                 "cudaEventCreateWithFlags");
    m.free_slots[std::size_t(i)] = kSlots - 1 - i;  // slot 0 is claimed first
  }
  m.num_free = kSlots;
  for (Impl::Watched& w : m.ring)
    m.check_cuda(cudaEventCreateWithFlags(&w.done, cudaEventDisableTiming), "init",
                 "cudaEventCreateWithFlags");
  m.check_cuda(cudaMalloc(&m.scratch, sizeof(int)), "init", "cudaMalloc");
  m.check_cuda(cudaMemset(m.scratch, 0, sizeof(int)), "init", "cudaMemset");
  m.check_cuda(cudaDeviceSynchronize(), "init", "cudaDeviceSynchronize");  // memset is on the legacy stream

  // The watchdog starts before ncclCommInitRank, which blocks until every rank of the group
  // has joined: a rank that never comes is a timeout, not a hang.
  {
    std::lock_guard lock(m.mu);
    m.host_op = "ncclCommInitRank";
    m.host_start = Clock::now();
  }
  m.watchdog = std::thread([impl = impl_.get()] { impl->watch_loop(); });
  ncclComm_t comm = nullptr;
  const ncclResult_t res = ncclCommInitRank(&comm, m.size, hello.id, m.rank);
  {
    std::lock_guard lock(m.mu);
    m.host_op = nullptr;
    m.comm = comm;
  }
  m.check_nccl(res, "init", "ncclCommInitRank");
}

// Work handles refer to the communicator object: move a communicator only while nothing of
// it is pending (in practice, right after construction).
NcclCommunicator::NcclCommunicator(NcclCommunicator&& other) noexcept : impl_(std::move(other.impl_)) {}

// Normally: finish everything enqueued, then destroy. While an exception unwinds the stack
// the peers may be waiting for this rank's next operation forever; waiting for them here would
// turn main()'s prompt MPI_Abort into a hang, so the communicator is aborted instead.
NcclCommunicator::~NcclCommunicator() {
  if (!impl_) return;  // moved-from
  if (std::uncaught_exceptions() > 0) impl_->failed = true;
  if (impl_->comm && !impl_->failed) {
    try {
      synchronize();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "strata: %s: NCCL communicator %s: %s\n", impl_->where.c_str(),
                   impl_->name.c_str(), e.what());
      impl_->failed = true;
    }
  }
  impl_.reset();  // stops the watchdog, then destroys (or aborts) the NCCL communicator
}

int NcclCommunicator::rank() const { return impl_ ? impl_->rank : -1; }
int NcclCommunicator::size() const { return impl_ ? impl_->size : 0; }
const std::string& NcclCommunicator::name() const {
  static const std::string moved_from = "(moved-from NCCL communicator)";
  return impl_ ? impl_->name : moved_from;
}

std::string NcclCommunicator::version() {
  int code = 0;
  if (ncclGetVersion(&code) != ncclSuccess) return "unknown";
  return nccl_version_string(code);
}

// ---- operations -----------------------------------------------------------------------

Work NcclCommunicator::iall_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) {
  Impl& m = *impl_;
  const ncclDataType_t t = m.type(dtype, "all_reduce");
  const int slot = m.run_async("all_reduce", [&](cudaStream_t st) {
    return ncclAllReduce(buf, buf, count, t, nccl_op(op), m.comm, st);
  });
  return Work{this, slot, "all_reduce"};
}

Work NcclCommunicator::ireduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                                       ReduceOp op) {
  Impl& m = *impl_;
  const ncclDataType_t t = m.type(dtype, "reduce_scatter");
  const int slot = m.run_async("reduce_scatter", [&](cudaStream_t st) {
    return ncclReduceScatter(send, recv, recv_count, t, nccl_op(op), m.comm, st);
  });
  return Work{this, slot, "reduce_scatter"};
}

Work NcclCommunicator::iall_gather(const void* send, void* recv, std::size_t send_count, DType dtype) {
  Impl& m = *impl_;
  const ncclDataType_t t = m.type(dtype, "all_gather");
  // NCCL takes send == recv + rank * block as the in-place form, like the interface says.
  const int slot = m.run_async(
      "all_gather", [&](cudaStream_t st) { return ncclAllGather(send, recv, send_count, t, m.comm, st); });
  return Work{this, slot, "all_gather"};
}

Work NcclCommunicator::ibroadcast(void* buf, std::size_t count, DType dtype, int root) {
  Impl& m = *impl_;
  const ncclDataType_t t = m.type(dtype, "broadcast");
  const int slot = m.run_async(
      "broadcast", [&](cudaStream_t st) { return ncclBroadcast(buf, buf, count, t, root, m.comm, st); });
  return Work{this, slot, "broadcast"};
}

// `tag` is not used: NCCL matches a send and a receive between two ranks by their order.
Work NcclCommunicator::isend(const void* buf, std::size_t count, DType dtype, int peer, int /*tag*/) {
  const int slot = impl_->defer_p2p("send", true, const_cast<void*>(buf), count, dtype, peer);
  return Work{this, slot, "send"};
}

Work NcclCommunicator::irecv(void* buf, std::size_t count, DType dtype, int peer, int /*tag*/) {
  const int slot = impl_->defer_p2p("recv", false, buf, count, dtype, peer);
  return Work{this, slot, "recv"};
}

// The compute stream waits for the operation (the host does not). The slot is then free;
// the watchdog goes on timing the operation through a ring event recorded on the compute
// stream right behind the wait, which completes only when the operation has.
void NcclCommunicator::wait(Work& work) {
  if (!work.pending()) return;
  Impl& m = *impl_;
  Impl::Slot& s = m.slot_of(work, this, "wait");
  if (s.state == Impl::State::deferred) m.flush_p2p();
  m.check_cuda(cudaStreamWaitEvent(m.compute, s.done, 0), work.op, "cudaStreamWaitEvent");
  m.watch(s.op, m.compute, s.start);
  m.release(work.slot);
  work = Work{};
}

bool NcclCommunicator::test(Work& work) {
  if (!work.pending()) return true;
  Impl& m = *impl_;
  Impl::Slot& s = m.slot_of(work, this, "test");
  if (s.state == Impl::State::deferred) m.flush_p2p();
  if (!m.event_done(s.done, work.op)) return false;
  m.release(work.slot);
  work = Work{};
  return true;
}

void NcclCommunicator::all_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) {
  Impl& m = *impl_;
  const ncclDataType_t t = m.type(dtype, "all_reduce");
  m.run_blocking("all_reduce",
                 [&](cudaStream_t st) { return ncclAllReduce(buf, buf, count, t, nccl_op(op), m.comm, st); });
}

void NcclCommunicator::reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                                      ReduceOp op) {
  Impl& m = *impl_;
  const ncclDataType_t t = m.type(dtype, "reduce_scatter");
  m.run_blocking("reduce_scatter", [&](cudaStream_t st) {
    return ncclReduceScatter(send, recv, recv_count, t, nccl_op(op), m.comm, st);
  });
}

void NcclCommunicator::all_gather(const void* send, void* recv, std::size_t send_count, DType dtype) {
  Impl& m = *impl_;
  const ncclDataType_t t = m.type(dtype, "all_gather");
  m.run_blocking("all_gather",
                 [&](cudaStream_t st) { return ncclAllGather(send, recv, send_count, t, m.comm, st); });
}

void NcclCommunicator::broadcast(void* buf, std::size_t count, DType dtype, int root) {
  Impl& m = *impl_;
  const ncclDataType_t t = m.type(dtype, "broadcast");
  m.run_blocking("broadcast",
                 [&](cudaStream_t st) { return ncclBroadcast(buf, buf, count, t, root, m.comm, st); });
}

// One group of a send and a receive per peer (NCCL's documented all-to-all), on the compute
// stream like the other blocking collectives. The group is closed even after an error.
void NcclCommunicator::all_to_all(const void* send, void* recv, std::size_t count, DType dtype) {
  Impl& m = *impl_;
  const ncclDataType_t t = m.type(dtype, "all_to_all");
  const std::size_t block = count * dtype_size(dtype);
  m.run_blocking("all_to_all", [&](cudaStream_t st) {
    ncclResult_t res = ncclGroupStart();
    if (res != ncclSuccess) return res;
    for (int r = 0; r < m.size && res == ncclSuccess; ++r) {
      res = ncclSend(static_cast<const char*>(send) + std::size_t(r) * block, count, t, r, m.comm, st);
      if (res == ncclSuccess)
        res = ncclRecv(static_cast<char*>(recv) + std::size_t(r) * block, count, t, r, m.comm, st);
    }
    const ncclResult_t end = ncclGroupEnd();
    return res != ncclSuccess ? res : end;
  });
}

// NCCL has no barrier: a one-int all-reduce on the communication stream after the compute
// stream's current point, and the host waits for it. So every rank has reached this call and
// its compute so far has completed.
void NcclCommunicator::barrier() {
  Impl& m = *impl_;
  const int slot = m.run_async("barrier", [&](cudaStream_t st) {
    return ncclAllReduce(m.scratch, m.scratch, 1, ncclInt32, ncclSum, m.comm, st);
  });
  const cudaError_t err = cudaEventSynchronize(m.slots[std::size_t(slot)].done);
  m.release(slot);
  m.check_cuda(err, "barrier", "cudaEventSynchronize");
}

void NcclCommunicator::synchronize() {
  Impl& m = *impl_;
  m.check_usable("synchronize");
  m.flush_p2p();
  m.check_cuda(cudaStreamSynchronize(m.stream), "synchronize",
               "cudaStreamSynchronize (communication stream)");
  m.check_cuda(cudaStreamSynchronize(m.compute), "synchronize", "cudaStreamSynchronize (compute stream)");
}

}  // namespace strata::comm

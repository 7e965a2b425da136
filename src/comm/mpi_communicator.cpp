#include "strata/comm/mpi_communicator.hpp"

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <utility>

#include "strata/core/error.hpp"
#include "strata/core/timer.hpp"

namespace strata::comm {

MPI_Datatype mpi_type(DType dtype) {
  switch (dtype) {
    case DType::f32: return MPI_FLOAT;
    case DType::f64: return MPI_DOUBLE;
    case DType::bf16: return MPI_UINT16_T;  // moved as raw 16-bit words; never reduced by MPI
    case DType::i32: return MPI_INT32_T;
    case DType::u16: return MPI_UINT16_T;
    case DType::u32: return MPI_UINT32_T;
    case DType::u64: return MPI_UINT64_T;
  }
  return MPI_DATATYPE_NULL;
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return MPI_SUM;
    case ReduceOp::max: return MPI_MAX;
    case ReduceOp::min: return MPI_MIN;
  }
  return MPI_OP_NULL;
}

void check_mpi(int rc, const char* what, const std::string& group) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw make_error(what, " on group '", group, "' failed: ", msg);
}

namespace {
int as_count(std::size_t count, const char* op) {
  if (count > std::size_t(INT_MAX))
    throw make_error(op, ": ", count, " elements exceed MPI's int count; split the buffer");
  return int(count);
}
}  // namespace

Watchdog::Watchdog(double timeout_s, int global_rank) : timeout_s_(timeout_s), global_rank_(global_rank) {
  if (timeout_s_ > 0) thread_ = std::thread([this] { run(); });
}

Watchdog::~Watchdog() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Watchdog::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (armed_ && std::chrono::steady_clock::now() > deadline_) {
      std::fprintf(stderr,
                   "strata: watchdog (global rank %d): %s on group '%s' did not complete within %g s; "
                   "a peer rank is stuck or has failed. Ending the job.\n",
                   global_rank_, op_, group_ ? group_->c_str() : "?", timeout_s_);
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
}

Watchdog::Guard::Guard(Watchdog* w, const char* op, const std::string& group) : w_(w) {
  if (!w_ || w_->timeout_s_ <= 0) return;
  std::lock_guard lock(w_->mu_);
  w_->armed_ = true;
  w_->op_ = op;
  w_->group_ = &group;
  w_->deadline_ = std::chrono::steady_clock::now() +
                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                      std::chrono::duration<double>(w_->timeout_s_));
}

Watchdog::Guard::~Guard() {
  if (!w_ || w_->timeout_s_ <= 0) return;
  std::lock_guard lock(w_->mu_);
  w_->armed_ = false;
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string name, int global_rank, double timeout_s,
                                 Watchdog* watchdog)
    : comm_(comm), name_(std::move(name)), global_rank_(global_rank), timeout_s_(timeout_s),
      watchdog_(watchdog) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  // Errors come back as codes and become exceptions (abort-not-hang is main's job).
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
}

MpiCommunicator::MpiCommunicator(MpiCommunicator&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)), name_(std::move(other.name_)),
      rank_(other.rank_), size_(other.size_), global_rank_(other.global_rank_),
      timeout_s_(other.timeout_s_), watchdog_(other.watchdog_), requests_(std::move(other.requests_)),
      free_slots_(std::move(other.free_slots_)) {}

MpiCommunicator::~MpiCommunicator() {
  if (comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD && comm_ != MPI_COMM_SELF) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
}

Work MpiCommunicator::start(const char* op) {
  int slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    requests_.push_back(MPI_REQUEST_NULL);
    slot = int(requests_.size()) - 1;
  }
  return Work{this, slot, op};
}

void MpiCommunicator::release(Work& w) {
  requests_[std::size_t(w.slot)] = MPI_REQUEST_NULL;
  free_slots_.push_back(w.slot);
  w = Work{};
}

Work MpiCommunicator::iall_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) {
  Work w = start("all_reduce");
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buf, as_count(count, w.op), mpi_type(dtype), mpi_op(op),
                           comm_, &request(w)),
            w.op, name_);
  return w;
}

Work MpiCommunicator::ireduce_scatter(const void* send, void* recv, std::size_t recv_count,
                                      DType dtype, ReduceOp op) {
  Work w = start("reduce_scatter");
  check_mpi(MPI_Ireduce_scatter_block(send, recv, as_count(recv_count, w.op), mpi_type(dtype),
                                      mpi_op(op), comm_, &request(w)),
            w.op, name_);
  return w;
}

Work MpiCommunicator::iall_gather(const void* send, void* recv, std::size_t send_count, DType dtype) {
  Work w = start("all_gather");
  // A send buffer that is this rank's own block of recv is the in-place form.
  const std::size_t block = send_count * dtype_size(dtype);
  const bool in_place = send == static_cast<const char*>(recv) + std::size_t(rank_) * block;
  check_mpi(MPI_Iallgather(in_place ? MPI_IN_PLACE : send, as_count(send_count, w.op),
                           mpi_type(dtype), recv, as_count(send_count, w.op), mpi_type(dtype),
                           comm_, &request(w)),
            w.op, name_);
  return w;
}

Work MpiCommunicator::ibroadcast(void* buf, std::size_t count, DType dtype, int root) {
  Work w = start("broadcast");
  check_mpi(MPI_Ibcast(buf, as_count(count, w.op), mpi_type(dtype), root, comm_, &request(w)), w.op,
            name_);
  return w;
}

Work MpiCommunicator::isend(const void* buf, std::size_t count, DType dtype, int peer, int tag) {
  Work w = start("send");
  check_mpi(MPI_Isend(buf, as_count(count, w.op), mpi_type(dtype), peer, tag, comm_, &request(w)),
            w.op, name_);
  return w;
}

Work MpiCommunicator::irecv(void* buf, std::size_t count, DType dtype, int peer, int tag) {
  Work w = start("recv");
  check_mpi(MPI_Irecv(buf, as_count(count, w.op), mpi_type(dtype), peer, tag, comm_, &request(w)),
            w.op, name_);
  return w;
}

bool MpiCommunicator::test(Work& work) {
  if (!work.pending()) return true;
  STRATA_CHECK(work.owner == this, "Work of group '", work.owner->name(), "' tested on group '", name_, "'");
  int done = 0;
  check_mpi(MPI_Test(&request(work), &done, MPI_STATUS_IGNORE), work.op, name_);
  if (done) release(work);
  return done != 0;
}

void MpiCommunicator::wait(Work& work) {
  if (!work.pending()) return;
  if (timeout_s_ <= 0) {
    STRATA_CHECK(work.owner == this, "Work waited on the wrong group '", name_, "'");
    check_mpi(MPI_Wait(&request(work), MPI_STATUS_IGNORE), work.op, name_);
    release(work);
    return;
  }
  // Watchdog: poll, yielding the core after a short spin so the progress of other ranks
  // oversubscribed on the same cores is not starved; give up after timeout_s_.
  const Timer timer;
  const char* op = work.op;
  for (long polls = 0;; ++polls) {
    if (test(work)) return;
    if (polls > 1000) {
      std::this_thread::sleep_for(std::chrono::microseconds(polls > 100000 ? 1000 : 20));
      if (timer.seconds() > timeout_s_)
        throw make_error("watchdog: ", op, " on group '", name_, "' (rank ", rank_, " of ", size_,
                         ", global rank ", global_rank_, ") did not complete within ", timeout_s_,
                         " s; a peer rank is stuck or has failed");
    }
  }
}

void MpiCommunicator::all_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) {
  const Watchdog::Guard guard(watchdog_, "all_reduce", name_);
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, buf, as_count(count, "all_reduce"), mpi_type(dtype), mpi_op(op), comm_),
            "all_reduce", name_);
}

void MpiCommunicator::reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                                     ReduceOp op) {
  const Watchdog::Guard guard(watchdog_, "reduce_scatter", name_);
  check_mpi(MPI_Reduce_scatter_block(send, recv, as_count(recv_count, "reduce_scatter"), mpi_type(dtype),
                                     mpi_op(op), comm_),
            "reduce_scatter", name_);
}

void MpiCommunicator::all_gather(const void* send, void* recv, std::size_t send_count, DType dtype) {
  const Watchdog::Guard guard(watchdog_, "all_gather", name_);
  const std::size_t block = send_count * dtype_size(dtype);
  const bool in_place = send == static_cast<const char*>(recv) + std::size_t(rank_) * block;
  check_mpi(MPI_Allgather(in_place ? MPI_IN_PLACE : send, as_count(send_count, "all_gather"), mpi_type(dtype),
                          recv, as_count(send_count, "all_gather"), mpi_type(dtype), comm_),
            "all_gather", name_);
}

void MpiCommunicator::broadcast(void* buf, std::size_t count, DType dtype, int root) {
  const Watchdog::Guard guard(watchdog_, "broadcast", name_);
  check_mpi(MPI_Bcast(buf, as_count(count, "broadcast"), mpi_type(dtype), root, comm_), "broadcast", name_);
}

void MpiCommunicator::all_gatherv(const void* send, std::size_t send_count, void* recv,
                                  const std::size_t* recv_counts, DType dtype) {
  const Watchdog::Guard guard(watchdog_, "all_gatherv", name_);
  std::vector<int> counts(static_cast<std::size_t>(size_)), displs(static_cast<std::size_t>(size_));
  std::size_t total = 0;
  for (int r = 0; r < size_; ++r) {
    counts[std::size_t(r)] = as_count(recv_counts[r], "all_gatherv");
    displs[std::size_t(r)] = as_count(total, "all_gatherv (offset)");
    total += recv_counts[r];
  }
  STRATA_CHECK(recv_counts[rank_] == send_count, "all_gatherv on group '", name_, "': recv_counts[", rank_,
               "] = ", recv_counts[rank_], " but this rank sends ", send_count);
  check_mpi(MPI_Allgatherv(send, as_count(send_count, "all_gatherv"), mpi_type(dtype), recv, counts.data(),
                           displs.data(), mpi_type(dtype), comm_),
            "all_gatherv", name_);
}

MPI_Comm mpi_handle(const Communicator& c) {
  const auto* m = dynamic_cast<const MpiCommunicator*>(&c);
  return m ? m->handle() : MPI_COMM_NULL;
}

void MpiCommunicator::barrier() {
  Work w = start("barrier");
  check_mpi(MPI_Ibarrier(comm_, &request(w)), w.op, name_);
  wait(w);
}

}  // namespace strata::comm

#include "strata/comm/mpi_communicator.hpp"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <sstream>
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

Watchdog::Watchdog(double timeout_s, int global_rank, MPI_Comm world)
    : timeout_s_(timeout_s), global_rank_(global_rank) {
  int size = 1;
  if (world != MPI_COMM_NULL) MPI_Comm_size(world, &size);
  if (timeout_s_ > 0 && size > 1) board_ = std::make_unique<ProgressBoard>(world);
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

std::string Watchdog::rank_name(int global_rank) const {
  std::string s = "global rank " + std::to_string(global_rank);
  if (namer_) s += " (" + namer_(global_rank) + ")";
  return s;
}

void Watchdog::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (armed_ && std::chrono::steady_clock::now() > deadline_) {
      // The peers' progress is read from this thread while the main thread sits in the stuck
      // call: that takes MPI_THREAD_MULTIPLE.
      int level = MPI_THREAD_SINGLE;
      MPI_Query_thread(&level);
      const bool can_read = level == MPI_THREAD_MULTIPLE;
      std::string detail;
      if (comm_) {
        detail = comm_->hang_report(op_, seq_, -1, can_read, [this](int r) { return rank_name(r); });
        if (!can_read)
          detail +=
              " (which ranks have not arrived is not known: reading it from the watchdog thread needs "
              "MPI_THREAD_MULTIPLE)";
      } else {
        detail = std::string(op_) + " on group '" + (group_ ? *group_ : "?") + "'";
      }
      std::fprintf(
          stderr,
          "strata: watchdog (%s): %s; did not complete within %g s: a peer rank is stuck or has failed. "
          "Ending the job.\n",
          rank_name(global_rank_).c_str(), detail.c_str(), timeout_s_);
      std::fflush(stderr);
      std::_Exit(1);
    }
  }
}

Watchdog::Guard::Guard(Watchdog* w, const char* op, const std::string& group, const MpiCommunicator* comm,
                       std::uint64_t seq)
    : w_(w) {
  if (!w_ || w_->timeout_s_ <= 0) return;
  std::lock_guard lock(w_->mu_);
  w_->armed_ = true;
  w_->op_ = op;
  w_->group_ = &group;
  w_->comm_ = comm;
  w_->seq_ = seq;
  w_->deadline_ =
      std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                             std::chrono::duration<double>(w_->timeout_s_));
}

Watchdog::Guard::~Guard() {
  if (!w_ || w_->timeout_s_ <= 0) return;
  std::lock_guard lock(w_->mu_);
  w_->armed_ = false;
}

const char* to_string(CollectiveKind kind) {
  switch (kind) {
    case CollectiveKind::none: return "none";
    case CollectiveKind::all_reduce: return "all_reduce";
    case CollectiveKind::reduce_scatter: return "reduce_scatter";
    case CollectiveKind::all_gather: return "all_gather";
    case CollectiveKind::broadcast: return "broadcast";
    case CollectiveKind::barrier: return "barrier";
    case CollectiveKind::gather: return "gather";
    case CollectiveKind::all_gatherv: return "all_gatherv";
    case CollectiveKind::all_to_all: return "all_to_all";
  }
  return "?";
}

namespace {

CollectiveKind kind_of(const char* op) {
  for (CollectiveKind k : {CollectiveKind::all_reduce, CollectiveKind::reduce_scatter,
                           CollectiveKind::all_gather, CollectiveKind::broadcast, CollectiveKind::barrier,
                           CollectiveKind::gather, CollectiveKind::all_to_all})
    if (std::string(op) == to_string(k)) return k;
  return CollectiveKind::none;
}

// At most this many ranks are named per category; the rest are counted.
constexpr std::size_t kNamedRanks = 16;

}  // namespace

std::string describe_arrivals(CollectiveKind kind, std::uint64_t seq, std::uint64_t mine,
                              const std::string& group, int my_group_rank,
                              const std::vector<PeerProgress>& peers,
                              const std::function<std::string(int)>& name) {
  std::vector<std::string> missing, other, ahead, silent;
  std::size_t arrived = 0;
  for (const PeerProgress& p : peers) {
    if (p.group_rank == my_group_rank) continue;
    const std::string who = group + " rank " + std::to_string(p.group_rank) + " = " + name(p.global_rank);
    const std::string last =
        p.entered == 0 ? "none yet" : std::string(to_string(p.last)) + " #" + std::to_string(p.entered);
    if (!p.read)
      silent.push_back(who);
    else if (p.entered < seq)
      missing.push_back(who + ", last entered " + last);
    else if (p.entered == seq && p.last != kind)
      other.push_back(who + ", entered " + to_string(p.last) + " as #" + std::to_string(seq));
    else if (p.entered > std::max(seq, mine))
      ahead.push_back(who + ", already at " + last);
    else
      ++arrived;
  }
  auto list = [](const std::vector<std::string>& v) {
    std::string s;
    for (std::size_t i = 0; i < v.size() && i < kNamedRanks; ++i) s += (i ? "; " : "") + v[i];
    if (v.size() > kNamedRanks) s += "; and " + std::to_string(v.size() - kNamedRanks) + " more";
    return s;
  };
  std::ostringstream os;
  const std::size_t others = peers.empty() ? 0 : peers.size() - 1;
  os << "not arrived: " << missing.size() << " of the " << others << " other ranks";
  if (!missing.empty()) os << " (" << list(missing) << ")";
  os << "; arrived: " << arrived;
  if (!other.empty())
    os << "; in a different collective at #" << seq
       << " (the ranks call collectives in different orders): " << list(other);
  if (!ahead.empty())
    os << "; past this rank's #" << std::max(seq, mine) << " (the sequences differ): " << list(ahead);
  if (!silent.empty())
    os << "; no answer (busy outside MPI without asynchronous progress, or dead): " << list(silent);
  return os.str();
}

ProgressBoard::ProgressBoard(MPI_Comm comm) {
  check_mpi(MPI_Comm_dup(comm, &comm_), "MPI_Comm_dup", "progress board");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  void* base = nullptr;
  const int rc = MPI_Win_allocate(MPI_Aint(2 * kSlots * sizeof(std::uint64_t)), int(sizeof(std::uint64_t)),
                                  MPI_INFO_NULL, comm_, &base, &win_);
  int ok = rc == MPI_SUCCESS ? 1 : 0;
  // Every rank keeps the window or none does (one missing would hang the collective free).
  MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, comm_);
  if (!ok) {
    if (rc == MPI_SUCCESS) MPI_Win_free(&win_);
    win_ = MPI_WIN_NULL;
    return;
  }
  MPI_Win_set_errhandler(win_, MPI_ERRORS_RETURN);
  base_ = static_cast<std::uint64_t*>(base);
  std::fill(base_, base_ + 2 * kSlots, 0);
  MPI_Barrier(comm_);  // every board zeroed before anyone reads one
}

ProgressBoard::~ProgressBoard() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  // MPI_Win_free is collective: not while an exception unwinds this rank (its peers may be in
  // a collective, waiting for it; main() aborts the job instead), nor with a read in flight.
  if (win_ != MPI_WIN_NULL && std::uncaught_exceptions() == 0 && !busy_) MPI_Win_free(&win_);
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

int ProgressBoard::claim(MPI_Comm group, std::vector<int>& board_ranks) {
  int size = 0;
  MPI_Comm_size(group, &size);
  board_ranks.assign(std::size_t(size), MPI_UNDEFINED);
  bool inside = false;
  if (ok()) {
    MPI_Group g = MPI_GROUP_NULL, b = MPI_GROUP_NULL;
    MPI_Comm_group(group, &g);
    MPI_Comm_group(comm_, &b);
    std::vector<int> ranks(static_cast<std::size_t>(size));
    for (int i = 0; i < size; ++i) ranks[std::size_t(i)] = i;
    MPI_Group_translate_ranks(g, size, ranks.data(), b, board_ranks.data());
    MPI_Group_free(&g);
    MPI_Group_free(&b);
    inside = std::none_of(board_ranks.begin(), board_ranks.end(), [](int r) { return r == MPI_UNDEFINED; });
  }
  int slot = inside ? next_ : kSlots;
  MPI_Allreduce(MPI_IN_PLACE, &slot, 1, MPI_INT, MPI_MAX, group);
  if (slot >= kSlots) return -1;
  next_ = slot + 1;
  return slot;
}

std::vector<PeerProgress> ProgressBoard::read(int slot, const std::vector<int>& board_ranks,
                                              double time_limit_s) {
  if (!ok() || busy_ || slot < 0) return {};
  const std::size_t n = board_ranks.size();
  std::vector<PeerProgress> out(n);
  std::vector<std::uint64_t> words(2 * n, 0);
  std::vector<MPI_Request> reqs(n, MPI_REQUEST_NULL);
  if (MPI_Win_lock_all(MPI_MODE_NOCHECK, win_) != MPI_SUCCESS) return {};
  for (std::size_t p = 0; p < n; ++p)
    if (MPI_Rget(&words[2 * p], 2, MPI_UINT64_T, board_ranks[p], MPI_Aint(2 * slot), 2, MPI_UINT64_T, win_,
                 &reqs[p]) != MPI_SUCCESS)
      reqs[p] = MPI_REQUEST_NULL;
  // Poll with a time limit: a peer without asynchronous progress may never answer.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(time_limit_s);
  std::vector<char> done(n, 0), failed(n, 0);
  for (std::size_t pending = n; pending > 0 && std::chrono::steady_clock::now() < deadline;) {
    pending = 0;
    for (std::size_t p = 0; p < n; ++p) {
      if (done[p] || failed[p]) continue;
      int flag = 0;
      if (reqs[p] == MPI_REQUEST_NULL || MPI_Test(&reqs[p], &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        failed[p] = 1;
        continue;
      }
      done[p] = char(flag != 0);
      pending += flag ? 0 : 1;
    }
    if (pending > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  bool all = true;
  for (std::size_t p = 0; p < n; ++p) {
    out[p].read = done[p] != 0;
    all = all && (done[p] || failed[p]);
    if (done[p]) {
      out[p].entered = words[2 * p];
      out[p].last = CollectiveKind(words[2 * p + 1]);
    }
  }
  // Unlocking waits for every outstanding read: only when none is left.
  if (all)
    MPI_Win_unlock_all(win_);
  else
    busy_ = true;
  return out;
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, std::string name, int global_rank, double timeout_s,
                                 Watchdog* watchdog)
    : comm_(comm),
      name_(std::move(name)),
      global_rank_(global_rank),
      timeout_s_(timeout_s),
      watchdog_(watchdog) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  // Errors come back as codes and become exceptions (abort-not-hang is main's job).
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  // A progress slot, for hang reports: only where a timeout can fire and there are peers.
  if (timeout_s_ > 0 && size_ > 1) {
    members_.resize(std::size_t(size_));
    check_mpi(MPI_Allgather(&global_rank_, 1, MPI_INT, members_.data(), 1, MPI_INT, comm_), "MPI_Allgather",
              name_);
    ProgressBoard* board = watchdog_ ? watchdog_->board() : nullptr;
    if (!board) {  // a communicator made on its own (tests, benchmarks): a board of its own
      own_board_ = std::make_unique<ProgressBoard>(comm_);
      board = own_board_.get();
    }
    slot_ = board->claim(comm_, board_ranks_);
    if (slot_ >= 0) {
      board_ = board;
      progress_ = board->words(slot_);
    }
  }
}

MpiCommunicator::MpiCommunicator(MpiCommunicator&& other) noexcept
    : comm_(std::exchange(other.comm_, MPI_COMM_NULL)),
      name_(std::move(other.name_)),
      rank_(other.rank_),
      size_(other.size_),
      global_rank_(other.global_rank_),
      timeout_s_(other.timeout_s_),
      watchdog_(other.watchdog_),
      requests_(std::move(other.requests_)),
      slot_info_(std::move(other.slot_info_)),
      free_slots_(std::move(other.free_slots_)),
      entered_(other.entered_),
      own_board_(std::move(other.own_board_)),
      board_(std::exchange(other.board_, nullptr)),
      slot_(std::exchange(other.slot_, -1)),
      board_ranks_(std::move(other.board_ranks_)),
      members_(std::move(other.members_)) {
  local_progress_[0] = other.local_progress_[0];
  local_progress_[1] = other.local_progress_[1];
  progress_ = other.progress_ == other.local_progress_ ? local_progress_ : other.progress_;
  other.progress_ = other.local_progress_;
}

MpiCommunicator::~MpiCommunicator() {
  own_board_.reset();  // its window before the communicator
  if (comm_ != MPI_COMM_NULL && comm_ != MPI_COMM_WORLD && comm_ != MPI_COMM_SELF) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Comm_free(&comm_);
  }
}

std::uint64_t MpiCommunicator::enter(CollectiveKind kind) {
  ++entered_;
  // Relaxed stores of aligned words into the window's memory: a peer's MPI_Rget sees the old
  // or the new value, never a torn one, and nothing here waits.
  std::atomic_ref<std::uint64_t>(progress_[1]).store(std::uint64_t(kind), std::memory_order_relaxed);
  std::atomic_ref<std::uint64_t>(progress_[0]).store(entered_, std::memory_order_relaxed);
  return entered_;
}

std::function<std::string(int)> MpiCommunicator::namer() const {
  if (watchdog_) return [w = watchdog_](int r) { return w->rank_name(r); };
  return [](int r) { return "global rank " + std::to_string(r); };
}

std::vector<PeerProgress> MpiCommunicator::read_progress(double time_limit_s) const {
  if (!board_) return {};
  std::vector<PeerProgress> out = board_->read(slot_, board_ranks_, time_limit_s);
  for (std::size_t p = 0; p < out.size(); ++p) {
    out[p].group_rank = int(p);
    out[p].global_rank = members_[p];
  }
  return out;
}

std::string MpiCommunicator::hang_report(const char* op, std::uint64_t seq, int peer, bool read_peers,
                                         const std::function<std::string(int)>& name) const {
  std::ostringstream os;
  os << op;
  if (seq > 0) os << " #" << seq;
  os << " on group '" << name_ << "' (" << size_ << " rank" << (size_ == 1 ? "" : "s") << "; this is "
     << name_ << " rank " << rank_ << ")";
  if (peer >= 0 && peer < int(members_.size()))
    os << " with " << name_ << " rank " << peer << " = " << name(members_[std::size_t(peer)]);
  else if (peer >= 0)
    os << " with " << name_ << " rank " << peer;
  if (!read_peers) return os.str();
  if (!board_) {
    os << "; the peers' progress is not available (no progress window on this group)";
    return os.str();
  }
  const std::vector<PeerProgress> peers = read_progress(std::min(5.0, std::max(0.5, timeout_s_)));
  if (peers.empty()) {
    os << "; the peers' progress could not be read";
    return os.str();
  }
  if (seq > 0) {
    os << "; " << describe_arrivals(kind_of(op), seq, entered_, name_, rank_, peers, name);
  } else if (peer >= 0 && peer < int(peers.size())) {
    const PeerProgress& p = peers[std::size_t(peer)];
    os << "; the peer has entered " << p.entered << " collectives on this group (this rank: " << entered_
       << ")";
  }
  return os.str();
}

Work MpiCommunicator::start(const char* op, CollectiveKind kind, int peer) {
  int slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    requests_.push_back(MPI_REQUEST_NULL);
    slot_info_.emplace_back();
    slot = int(requests_.size()) - 1;
  }
  slot_info_[std::size_t(slot)] = {kind == CollectiveKind::none ? 0 : enter(kind), peer};
  return Work{this, slot, op};
}

void MpiCommunicator::release(Work& w) {
  requests_[std::size_t(w.slot)] = MPI_REQUEST_NULL;
  free_slots_.push_back(w.slot);
  w = Work{};
}

Work MpiCommunicator::iall_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) {
  Work w = start("all_reduce", CollectiveKind::all_reduce);
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, buf, as_count(count, w.op), mpi_type(dtype), mpi_op(op), comm_,
                           &request(w)),
            w.op, name_);
  return w;
}

Work MpiCommunicator::ireduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                                      ReduceOp op) {
  Work w = start("reduce_scatter", CollectiveKind::reduce_scatter);
  check_mpi(MPI_Ireduce_scatter_block(send, recv, as_count(recv_count, w.op), mpi_type(dtype), mpi_op(op),
                                      comm_, &request(w)),
            w.op, name_);
  return w;
}

Work MpiCommunicator::iall_gather(const void* send, void* recv, std::size_t send_count, DType dtype) {
  Work w = start("all_gather", CollectiveKind::all_gather);
  // A send buffer that is this rank's own block of recv is the in-place form.
  const std::size_t block = send_count * dtype_size(dtype);
  const bool in_place = send == static_cast<const char*>(recv) + std::size_t(rank_) * block;
  check_mpi(MPI_Iallgather(in_place ? MPI_IN_PLACE : send, as_count(send_count, w.op), mpi_type(dtype), recv,
                           as_count(send_count, w.op), mpi_type(dtype), comm_, &request(w)),
            w.op, name_);
  return w;
}

Work MpiCommunicator::ibroadcast(void* buf, std::size_t count, DType dtype, int root) {
  Work w = start("broadcast", CollectiveKind::broadcast);
  check_mpi(MPI_Ibcast(buf, as_count(count, w.op), mpi_type(dtype), root, comm_, &request(w)), w.op, name_);
  return w;
}

Work MpiCommunicator::isend(const void* buf, std::size_t count, DType dtype, int peer, int tag) {
  Work w = start("send", CollectiveKind::none, peer);
  check_mpi(MPI_Isend(buf, as_count(count, w.op), mpi_type(dtype), peer, tag, comm_, &request(w)), w.op,
            name_);
  return w;
}

Work MpiCommunicator::irecv(void* buf, std::size_t count, DType dtype, int peer, int tag) {
  Work w = start("recv", CollectiveKind::none, peer);
  check_mpi(MPI_Irecv(buf, as_count(count, w.op), mpi_type(dtype), peer, tag, comm_, &request(w)), w.op,
            name_);
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
  const SlotInfo info = slot_info_[std::size_t(work.slot)];
  for (long polls = 0;; ++polls) {
    if (test(work)) return;
    if (polls > 1000) {
      std::this_thread::sleep_for(std::chrono::microseconds(polls > 100000 ? 1000 : 20));
      if (timer.seconds() > timeout_s_) {
        // This thread is the one that makes MPI calls: it reads the peers' progress itself.
        const auto name = namer();
        throw make_error("watchdog: ", hang_report(op, info.seq, info.peer, true, name), " on ",
                         name(global_rank_), " did not complete within ", timeout_s_,
                         " s; a peer rank is stuck or has failed");
      }
    }
  }
}

void MpiCommunicator::all_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) {
  const Watchdog::Guard guard(watchdog_, "all_reduce", name_, this, enter(CollectiveKind::all_reduce));
  check_mpi(
      MPI_Allreduce(MPI_IN_PLACE, buf, as_count(count, "all_reduce"), mpi_type(dtype), mpi_op(op), comm_),
      "all_reduce", name_);
}

void MpiCommunicator::reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                                     ReduceOp op) {
  const Watchdog::Guard guard(watchdog_, "reduce_scatter", name_, this,
                              enter(CollectiveKind::reduce_scatter));
  check_mpi(MPI_Reduce_scatter_block(send, recv, as_count(recv_count, "reduce_scatter"), mpi_type(dtype),
                                     mpi_op(op), comm_),
            "reduce_scatter", name_);
}

void MpiCommunicator::all_gather(const void* send, void* recv, std::size_t send_count, DType dtype) {
  const Watchdog::Guard guard(watchdog_, "all_gather", name_, this, enter(CollectiveKind::all_gather));
  const std::size_t block = send_count * dtype_size(dtype);
  const bool in_place = send == static_cast<const char*>(recv) + std::size_t(rank_) * block;
  check_mpi(MPI_Allgather(in_place ? MPI_IN_PLACE : send, as_count(send_count, "all_gather"), mpi_type(dtype),
                          recv, as_count(send_count, "all_gather"), mpi_type(dtype), comm_),
            "all_gather", name_);
}

void MpiCommunicator::broadcast(void* buf, std::size_t count, DType dtype, int root) {
  const Watchdog::Guard guard(watchdog_, "broadcast", name_, this, enter(CollectiveKind::broadcast));
  check_mpi(MPI_Bcast(buf, as_count(count, "broadcast"), mpi_type(dtype), root, comm_), "broadcast", name_);
}

void MpiCommunicator::gather(const void* send, void* recv, std::size_t send_count, DType dtype, int root) {
  const Watchdog::Guard guard(watchdog_, "gather", name_, this, enter(CollectiveKind::gather));
  check_mpi(MPI_Gather(send, as_count(send_count, "gather"), mpi_type(dtype), recv,
                       as_count(send_count, "gather"), mpi_type(dtype), root, comm_),
            "gather", name_);
}

void MpiCommunicator::all_gatherv(const void* send, std::size_t send_count, void* recv,
                                  const std::size_t* recv_counts, DType dtype) {
  const Watchdog::Guard guard(watchdog_, "all_gatherv", name_, this, enter(CollectiveKind::all_gatherv));
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

void MpiCommunicator::all_to_all(const void* send, void* recv, std::size_t count, DType dtype) {
  const Watchdog::Guard guard(watchdog_, "all_to_all", name_, this, enter(CollectiveKind::all_to_all));
  check_mpi(MPI_Alltoall(send, as_count(count, "all_to_all"), mpi_type(dtype), recv,
                         as_count(count, "all_to_all"), mpi_type(dtype), comm_),
            "all_to_all", name_);
}

MPI_Comm mpi_handle(const Communicator& c) {
  const auto* m = dynamic_cast<const MpiCommunicator*>(&c);
  return m ? m->handle() : MPI_COMM_NULL;
}

void MpiCommunicator::barrier() {
  Work w = start("barrier", CollectiveKind::barrier);
  check_mpi(MPI_Ibarrier(comm_, &request(w)), w.op, name_);
  wait(w);
}

}  // namespace strata::comm

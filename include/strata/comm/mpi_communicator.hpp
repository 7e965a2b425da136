// MpiCommunicator: Communicator over an MPI communicator it owns (RAII, move-only: the
// handle is exchanged on move; MPI_COMM_NULL means moved-from).
//
// Hang reports. Every communicator counts the collectives each rank has entered on it and
// publishes the count (and the kind of the last one) as two words in an MPI window, the
// process's ProgressBoard. When a collective times out, the rank reads its peers' words with
// one-sided MPI_Rget — the peers do nothing: the read needs neither the stuck collective nor
// any call on their side (shared memory within a node, RDMA between nodes) — and names the
// collective with its number, the group, its own grid coordinates, and every rank of the group
// that has not arrived (a lower count) or that entered a different collective at that number.
// The normal path pays one counter increment and two relaxed stores per collective; no MPI call.
// From the watchdog thread (blocking calls) the read needs MPI_THREAD_MULTIPLE, which strata
// requests (cli/run_cli.cpp); with less the report says so and names the collective only.
#pragma once
#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "strata/comm/communicator.hpp"

namespace strata::comm {

class MpiCommunicator;
struct PeerProgress;

// One MPI window over a communicator that contains every group of the process (the job's
// world), holding two progress words per communicator ("slots"). One window for all groups,
// not one per group: Open MPI 4.1's osc/rdma names a window's shared-memory file after the
// communicator's id, and the groups of one MPI_Comm_split on a node share ids, so per-group
// windows collided (and failed) on one node.
class ProgressBoard {
 public:
  static constexpr int kSlots = 16;  // communicators per process that publish progress
  // Collective over `comm`, which it duplicates (a window of its own id).
  explicit ProgressBoard(MPI_Comm comm);
  ~ProgressBoard();
  ProgressBoard(const ProgressBoard&) = delete;
  ProgressBoard& operator=(const ProgressBoard&) = delete;
  bool ok() const { return win_ != MPI_WIN_NULL; }
  // Collective over `group`, whose ranks must all be on the board: a slot free on every
  // member (the same index everywhere) and, in `board_ranks`, each group rank's rank on the
  // board. -1 when the board is not usable, full, or `group` is not inside it.
  int claim(MPI_Comm group, std::vector<int>& board_ranks);
  std::uint64_t* words(int slot) { return base_ + 2 * slot; }
  // The slot's words at each of `board_ranks`, read one-sidedly; a peer that does not answer
  // within `time_limit_s` is marked unread (and the window is not used again).
  std::vector<PeerProgress> read(int slot, const std::vector<int>& board_ranks, double time_limit_s);

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Win win_ = MPI_WIN_NULL;
  std::uint64_t* base_ = nullptr;
  int next_ = 0;
  bool busy_ = false;  // a read that never completed holds the window's epoch
};

// A thread that ends the process when a blocking MPI call does not return in time: it
// prints the stuck operation, its group, the rank and which peers have not arrived (above),
// then exits with status 1, which makes mpirun/srun take the whole job down (DESIGN.md
// invariant 5). One per process, owned by the rank grid; the thread making MPI calls arms it
// around each blocking call.
class Watchdog {
 public:
  // With `world` (collective over it; the rank grid passes the job's world), the watchdog
  // keeps the process's ProgressBoard, where the communicators it guards publish progress.
  Watchdog(double timeout_s, int global_rank, MPI_Comm world = MPI_COMM_NULL);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  double timeout_s() const { return timeout_s_; }

  // How reports name a global rank ("tp 1/2, dp 0/2, pp 1/2"); set by the rank grid. Without
  // it, reports give global ranks only.
  void name_ranks_with(std::function<std::string(int global_rank)> namer) { namer_ = std::move(namer); }
  std::string rank_name(int global_rank) const;    // "global rank 5 (tp 1/2, dp 0/2, pp 1/2)"
  ProgressBoard* board() { return board_.get(); }  // null without `world`

  class Guard {  // armed for the lifetime of the guard
   public:
    // `comm` and `seq` (the collective's number on it; 0 for none) let the report read the
    // peers' progress.
    Guard(Watchdog* w, const char* op, const std::string& group, const MpiCommunicator* comm = nullptr,
          std::uint64_t seq = 0);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    Watchdog* w_;
  };

 private:
  void run();
  double timeout_s_;
  int global_rank_;
  std::function<std::string(int)> namer_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, armed_ = false;
  const char* op_ = "";
  const std::string* group_ = nullptr;
  const MpiCommunicator* comm_ = nullptr;
  std::uint64_t seq_ = 0;
  std::chrono::steady_clock::time_point deadline_;
  std::unique_ptr<ProgressBoard> board_;
  std::thread thread_;
};

// The collectives a communicator counts (the progress word published for hang reports).
enum class CollectiveKind : std::uint64_t {
  none = 0,
  all_reduce,
  reduce_scatter,
  all_gather,
  broadcast,
  barrier,
  gather,
  all_gatherv,
  all_to_all
};
const char* to_string(CollectiveKind kind);

// One peer's published progress on a group, as read for a report.
struct PeerProgress {
  int group_rank = 0;
  int global_rank = 0;
  bool read = false;          // false: no answer within the read's time limit
  std::uint64_t entered = 0;  // collectives it has entered on the group
  CollectiveKind last = CollectiveKind::none;
};

// The hang report's account of the group (pure; unit-tested) for collective number `seq` of
// kind `kind`, this rank having entered `mine` >= seq collectives (more than seq when later
// non-blocking ones are in flight): which ranks have not arrived (entered < seq), which entered
// another kind of collective as number seq, which are past `mine`, which did not answer;
// `name(global_rank)` names a rank.
std::string describe_arrivals(CollectiveKind kind, std::uint64_t seq, std::uint64_t mine,
                              const std::string& group, int my_group_rank,
                              const std::vector<PeerProgress>& peers,
                              const std::function<std::string(int)>& name);

class MpiCommunicator final : public Communicator {
 public:
  // Takes ownership of `comm` (freed with MPI_Comm_free unless it is MPI_COMM_WORLD/SELF).
  // `timeout_s` bounds every wait (the watchdog); <= 0 disables it.
  // `watchdog` (may be null) guards the blocking calls.
  MpiCommunicator(MPI_Comm comm, std::string name, int global_rank, double timeout_s,
                  Watchdog* watchdog = nullptr);
  ~MpiCommunicator() override;
  MpiCommunicator(MpiCommunicator&& other) noexcept;
  MpiCommunicator& operator=(MpiCommunicator&&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const std::string& name() const override { return name_; }
  MPI_Comm handle() const { return comm_; }

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
  // Blocking collectives as MPI's blocking calls, under the watchdog.
  void all_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) override;
  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                      ReduceOp op) override;
  void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype) override;
  void broadcast(void* buf, std::size_t count, DType dtype, int root) override;
  void gather(const void* send, void* recv, std::size_t send_count, DType dtype, int root) override;
  void all_gatherv(const void* send, std::size_t send_count, void* recv, const std::size_t* recv_counts,
                   DType dtype) override;
  void all_to_all(const void* send, void* recv, std::size_t count, DType dtype) override;
  using Communicator::all_reduce;

  // Collectives this rank has entered on the group.
  std::uint64_t collectives_entered() const { return entered_; }
  // The group's progress words, read one-sidedly (see the top of this file); at most
  // `time_limit_s` seconds for peers that do not answer. Empty when the group has no window
  // (watchdog off, one rank, or the MPI library could not create one).
  std::vector<PeerProgress> read_progress(double time_limit_s) const;
  // "all_reduce #42 on group 'dp' (2 ranks): not arrived: ..." for collective `seq` (0: a
  // point-to-point operation with `peer`); `name` names global ranks.
  std::string hang_report(const char* op, std::uint64_t seq, int peer, bool read_peers,
                          const std::function<std::string(int)>& name) const;

 private:
  Work start(const char* op, CollectiveKind kind, int peer = -1);  // claims a request slot
  MPI_Request& request(const Work& w) { return requests_[std::size_t(w.slot)]; }
  void release(Work& w);
  std::uint64_t enter(CollectiveKind kind);  // counts and publishes a collective; returns its number
  std::function<std::string(int)> namer() const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  std::string name_;
  int rank_ = 0, size_ = 1, global_rank_ = 0;
  double timeout_s_;
  Watchdog* watchdog_ = nullptr;
  std::vector<MPI_Request> requests_;  // pool; grows only past the most ever outstanding
  struct SlotInfo {
    std::uint64_t seq = 0;  // the collective's number; 0 for point-to-point
    int peer = -1;          // point-to-point: the other rank
  };
  std::vector<SlotInfo> slot_info_;  // parallel to requests_
  std::vector<int> free_slots_;
  // Progress: entered_ and the last kind, published at progress_[0..1]: a slot of the
  // watchdog's board (or of own_board_ without a watchdog), or local_progress_ without one.
  std::uint64_t entered_ = 0;
  std::uint64_t local_progress_[2] = {0, 0};
  std::uint64_t* progress_ = local_progress_;
  std::unique_ptr<ProgressBoard> own_board_;
  ProgressBoard* board_ = nullptr;
  int slot_ = -1;
  std::vector<int> board_ranks_;  // each group rank's rank on the board
  std::vector<int> members_;      // each group rank's global rank (with a board)
};

// The MPI communicator behind `c` when it is an MpiCommunicator, else MPI_COMM_NULL. For the
// few libraries that need the MPI handle itself (parallel HDF5's MPI-IO driver).
MPI_Comm mpi_handle(const Communicator& c);

MPI_Datatype mpi_type(DType dtype);
MPI_Op mpi_op(ReduceOp op);

// Throws strata::Error with the MPI error string when rc != MPI_SUCCESS.
void check_mpi(int rc, const char* what, const std::string& group);

}  // namespace strata::comm

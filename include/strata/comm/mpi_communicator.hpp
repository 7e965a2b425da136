// MpiCommunicator: Communicator over an MPI communicator it owns (RAII, move-only: the
// handle is exchanged on move; MPI_COMM_NULL means moved-from).
#pragma once
#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "strata/comm/communicator.hpp"

namespace strata::comm {

// A thread that ends the process when a blocking MPI call does not return in time: it
// prints the stuck operation, its group and the rank, then exits with status 1, which makes
// mpirun/srun take the whole job down (DESIGN.md invariant 5). One per process, owned by the
// rank grid; the thread making MPI calls arms it around each blocking call.
class Watchdog {
 public:
  Watchdog(double timeout_s, int global_rank);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  double timeout_s() const { return timeout_s_; }

  class Guard {  // armed for the lifetime of the guard
   public:
    Guard(Watchdog* w, const char* op, const std::string& group);
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
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, armed_ = false;
  const char* op_ = "";
  const std::string* group_ = nullptr;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

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
  void reduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype, ReduceOp op) override;
  void all_gather(const void* send, void* recv, std::size_t send_count, DType dtype) override;
  void broadcast(void* buf, std::size_t count, DType dtype, int root) override;
  void all_gatherv(const void* send, std::size_t send_count, void* recv, const std::size_t* recv_counts,
                   DType dtype) override;
  using Communicator::all_reduce;

 private:
  Work start(const char* op);  // claims a request slot
  MPI_Request& request(const Work& w) { return requests_[std::size_t(w.slot)]; }
  void release(Work& w);

  MPI_Comm comm_ = MPI_COMM_NULL;
  std::string name_;
  int rank_ = 0, size_ = 1, global_rank_ = 0;
  double timeout_s_;
  Watchdog* watchdog_ = nullptr;
  std::vector<MPI_Request> requests_;  // pool; grows only past the most ever outstanding
  std::vector<int> free_slots_;
};

// The MPI communicator behind `c` when it is an MpiCommunicator, else MPI_COMM_NULL. For the
// few libraries that need the MPI handle itself (parallel HDF5's MPI-IO driver).
MPI_Comm mpi_handle(const Communicator& c);

MPI_Datatype mpi_type(DType dtype);
MPI_Op mpi_op(ReduceOp op);

// Throws strata::Error with the MPI error string when rc != MPI_SUCCESS.
void check_mpi(int rc, const char* what, const std::string& group);

}  // namespace strata::comm

// RankGrid: the TP x CP x DP x PP grid of ranks and its communicators (DESIGN.md invariant 1).
//
// Rank order is TP fastest, then CP (context parallelism), then DP, then PP:
//     global_rank = tp_rank + tp * (cp_rank + cp * (dp_rank + dp * pp_rank))
// so a TP group is tp consecutive ranks (inside one node when tp <= GPUs per node), a CP group
// (the ring of ring attention, which exchanges K/V every layer) the next-closest ranks, and a
// pipeline stage is a contiguous block of tp*cp*dp ranks. With cp = 1 the order is the
// original TP, DP, PP. Each dimension gets its own
// communicator (MPI_Comm_split of the world); with pp > 1 there is also the embedding
// group {first stage, last stage} at the same (tp, dp), which keeps tied embeddings in sync.
// The grid owns every communicator; nothing else touches the world communicator (a background
// writer gets its own duplicate of it, io_group()). On GPUs it
// also owns each dimension's NCCL communicator (device_groups), created from that dimension's
// MPI communicator when the engine first asks for them with its compute stream.
#pragma once
#include <mpi.h>

#include <memory>
#include <string>

#include "strata/comm/mpi_communicator.hpp"
#include "strata/comm/nccl_communicator.hpp"

namespace strata::comm {

struct GridShape {
  int tp = 1, pp = 1, dp = 1;
  int cp = 1;  // context parallelism: the sequence split over cp ranks (ring attention)
  int size() const { return tp * pp * dp * cp; }
};

// Resolve dp (0 = derive from the world size) and check tp*cp*pp*dp == world_size; the error
// names every factor.
GridShape resolve_grid(int world_size, int tp, int pp, int dp, int cp = 1);

// The communicators that move one device's data, one per grid dimension (null: this rank is
// not in the embedding group). Borrowed from the grid.
struct DeviceGroups {
  Communicator* tp = nullptr;
  Communicator* dp = nullptr;
  Communicator* pp = nullptr;
  Communicator* embedding = nullptr;
  Communicator* cp = nullptr;  // the context-parallel ring (size 1 without cp)
};

struct GridCoord {
  int tp_rank = 0, dp_rank = 0, pp_rank = 0;
  int cp_rank = 0;
};
GridCoord coord_of(const GridShape& shape, int global_rank);
int global_rank_of(const GridShape& shape, const GridCoord& c);

class RankGrid {
 public:
  // Collective over `world`: every rank must construct the grid with the same arguments.
  RankGrid(MPI_Comm world, int tp, int pp, int dp, double watchdog_timeout_s = 600.0, int cp = 1);
  RankGrid(const RankGrid&) = delete;
  RankGrid& operator=(const RankGrid&) = delete;

  const GridShape& shape() const { return shape_; }
  const GridCoord& coord() const { return coord_; }
  int global_rank() const { return global_rank_; }
  int world_size() const { return shape_.size(); }
  bool is_first_stage() const { return coord_.pp_rank == 0; }
  bool is_last_stage() const { return coord_.pp_rank == shape_.pp - 1; }

  Communicator& tp_group() { return *tp_; }
  Communicator& pp_group() { return *pp_; }
  Communicator& dp_group() { return *dp_; }
  // The ranks that share tp, dp and pp coordinates: one sequence split over them (ring attention).
  Communicator& cp_group() { return *cp_; }
  Communicator& world_group() { return *world_; }
  // The world communicator's MPI handle, for libraries that take one (parallel HDF5 I/O).
  MPI_Comm world_handle() const;
  // Each dimension's MPI handle: where a GPU job creates that dimension's NCCL communicator.
  MPI_Comm tp_handle() const { return tp_->handle(); }
  MPI_Comm pp_handle() const { return pp_->handle(); }
  MPI_Comm dp_handle() const { return dp_->handle(); }
  // First and last pipeline stage at this (tp, dp); null on middle stages or when pp == 1.
  Communicator* embedding_group() { return embedding_.get(); }
  // The group of a background thread's collectives (the asynchronous checkpoint writer:
  // parallel HDF5's own MPI calls through io_handle(), the checksum all-reduce, barriers): a
  // duplicate of the world, so they never interleave with the training thread's collectives,
  // which go through the other groups (MPI orders collectives per communicator; two threads
  // on one communicator would be erroneous). Blocking calls on it are guarded by a watchdog of
  // its own (one per thread that makes them). Made at the first call, which is collective
  // over the world: the training thread of every rank calls it at the same point.
  Communicator& io_group();
  MPI_Comm io_handle();

  // The groups for data in `device` memory: the MPI communicators above for the CPU; for CUDA
  // the NCCL communicator of each dimension, created on the first call (collective over the
  // grid) and enqueueing on `compute_stream` (a cudaStream_t). A build without CUDA throws.
  DeviceGroups device_groups(Device device, void* compute_stream = nullptr);
  // Destroys the NCCL communicators (before the stream they enqueue on goes away).
  void release_device_groups();

  // "rank 5 of 8 (tp 1/2, dp 0/2, pp 1/2)": what every error message carries (", cp 1/2"
  // appended when cp > 1).
  std::string describe() const;
  std::string coordinates() const;  // "tp 1/2, dp 0/2, pp 1/2"
  // Ranks of this job on this node (MPI_Comm_split_type shared), and this rank's index there:
  // for choosing threads per rank and, on GPUs, the device.
  int local_size() const { return local_size_; }
  int local_rank() const { return local_rank_; }

 private:
  GridShape shape_;
  GridCoord coord_;
  int global_rank_ = 0;
  int local_size_ = 1, local_rank_ = 0;
  std::unique_ptr<Watchdog> watchdog_;  // before the communicators: they point to it
  std::unique_ptr<MpiCommunicator> world_, tp_, pp_, dp_, embedding_, cp_;
  std::unique_ptr<Watchdog> io_watchdog_;  // before io_: it points to it
  std::unique_ptr<MpiCommunicator> io_;
  std::unique_ptr<NcclCommunicator> nccl_tp_, nccl_dp_, nccl_pp_, nccl_embedding_, nccl_cp_;
  void* nccl_stream_ = nullptr;
};

}  // namespace strata::comm

#include "strata/comm/rank_grid.hpp"

#include <sstream>

#include "strata/core/error.hpp"

namespace strata::comm {

GridShape resolve_grid(int world_size, int tp, int pp, int dp, int cp) {
  if (tp < 1 || pp < 1 || dp < 0 || cp < 1)
    throw make_error("parallel layout tp=", tp, " pp=", pp, " dp=", dp, " cp=", cp,
                     ": tp, pp and cp must be >= 1 and dp >= 0 (0 derives it)");
  if (dp == 0) {
    if (world_size % (tp * pp * cp) != 0) {
      if (cp == 1)
        throw make_error("cannot derive parallel.dp: world size ", world_size,
                         " is not divisible by tp x pp = ", tp, " x ", pp, " = ", tp * pp);
      throw make_error("cannot derive parallel.dp: world size ", world_size,
                       " is not divisible by tp x pp x cp = ", tp, " x ", pp, " x ", cp, " = ", tp * pp * cp);
    }
    dp = world_size / (tp * pp * cp);
  }
  if (tp * pp * dp * cp != world_size && cp == 1)
    throw make_error("parallel layout tp=", tp, " x pp=", pp, " x dp=", dp, " = ", tp * pp * dp,
                     " ranks, but the job has ", world_size, " ranks");
  if (tp * pp * dp * cp != world_size)
    throw make_error("parallel layout tp=", tp, " x pp=", pp, " x dp=", dp, " x cp=", cp, " = ",
                     tp * pp * dp * cp, " ranks, but the job has ", world_size, " ranks");
  GridShape s{tp, pp, dp};
  s.cp = cp;
  return s;
}

GridCoord coord_of(const GridShape& s, int global_rank) {
  const int rest = global_rank / (s.tp * s.cp);  // dp_rank + dp * pp_rank
  GridCoord c{global_rank % s.tp, rest % s.dp, rest / s.dp};
  c.cp_rank = (global_rank / s.tp) % s.cp;
  return c;
}

int global_rank_of(const GridShape& s, const GridCoord& c) {
  return c.tp_rank + s.tp * (c.cp_rank + s.cp * (c.dp_rank + s.dp * c.pp_rank));
}

namespace {
// How hang reports name a global rank: "tp 1/2, dp 0/2, pp 1/2".
std::function<std::string(int)> rank_namer(const GridShape& s) {
  return [s](int r) {
    const GridCoord c = coord_of(s, r);
    return detail::concat("tp ", c.tp_rank, "/", s.tp, ", dp ", c.dp_rank, "/", s.dp, ", pp ", c.pp_rank, "/",
                          s.pp, s.cp > 1 ? detail::concat(", cp ", c.cp_rank, "/", s.cp) : std::string());
  };
}
}  // namespace

RankGrid::RankGrid(MPI_Comm world, int tp, int pp, int dp, double watchdog_timeout_s, int cp) {
  int world_size = 1;
  MPI_Comm_rank(world, &global_rank_);
  MPI_Comm_size(world, &world_size);
  shape_ = resolve_grid(world_size, tp, pp, dp, cp);
  coord_ = coord_of(shape_, global_rank_);
  const double t = watchdog_timeout_s;
  watchdog_ = std::make_unique<Watchdog>(t, global_rank_, world);  // `world`: its progress board
  // Hang reports name every rank by its grid coordinates.
  watchdog_->name_ranks_with(rank_namer(shape_));
  auto split = [&](int color, int key, const char* name) {
    MPI_Comm c = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split(world, color, key, &c), "MPI_Comm_split", name);
    return std::make_unique<MpiCommunicator>(c, name, global_rank_, t, watchdog_.get());
  };
  MPI_Comm world_dup = MPI_COMM_NULL;
  check_mpi(MPI_Comm_dup(world, &world_dup), "MPI_Comm_dup", "world");
  world_ = std::make_unique<MpiCommunicator>(world_dup, "world", global_rank_, t, watchdog_.get());
  MPI_Comm node = MPI_COMM_NULL;
  check_mpi(MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, global_rank_, MPI_INFO_NULL, &node),
            "MPI_Comm_split_type", "node");
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_free(&node);
  const GridCoord& c = coord_;
  // Ranks sharing every coordinate but one form that dimension's group, ordered by it. The
  // colours fold cp into the other coordinates (with cp = 1 they are the original ones).
  const int tpc = c.tp_rank + shape_.tp * c.cp_rank;  // (tp, cp) as one index
  tp_ = split(c.cp_rank + shape_.cp * (c.dp_rank + shape_.dp * c.pp_rank), c.tp_rank, "tp");
  dp_ = split(tpc + shape_.tp * shape_.cp * c.pp_rank, c.dp_rank, "dp");
  pp_ = split(tpc + shape_.tp * shape_.cp * c.dp_rank, c.pp_rank, "pp");
  cp_ = split(c.tp_rank + shape_.tp * (c.dp_rank + shape_.dp * c.pp_rank), c.cp_rank, "cp");
  if (shape_.pp > 1) {
    const bool member = is_first_stage() || is_last_stage();
    MPI_Comm e = MPI_COMM_NULL;
    check_mpi(MPI_Comm_split(world, member ? tpc + shape_.tp * shape_.cp * c.dp_rank : MPI_UNDEFINED,
                             c.pp_rank, &e),
              "MPI_Comm_split", "embedding");
    if (member)
      embedding_ = std::make_unique<MpiCommunicator>(e, "embedding", global_rank_, t, watchdog_.get());
  }
}

DeviceGroups RankGrid::device_groups(Device device, void* compute_stream) {
  if (device == Device::cpu) return {tp_.get(), dp_.get(), pp_.get(), embedding_.get(), cp_.get()};
  if (nccl_pp_ && nccl_stream_ != compute_stream)
    throw make_error("RankGrid: the NCCL communicators already enqueue on another compute stream (",
                     "release_device_groups() first)");
  if (!nccl_pp_) {
    // Every dimension, size-1 groups included (an interleaved pipeline on one stage sends to
    // itself); the unique id of each travels over that dimension's MPI communicator.
    auto make = [&](MpiCommunicator& mpi, const char* name) {
      return std::make_unique<NcclCommunicator>(mpi.handle(), name, compute_stream, describe(),
                                                watchdog_->timeout_s());
    };
    nccl_tp_ = make(*tp_, "tp");
    nccl_dp_ = make(*dp_, "dp");
    nccl_pp_ = make(*pp_, "pp");
    if (embedding_) nccl_embedding_ = make(*embedding_, "embedding");
    if (shape_.cp > 1) nccl_cp_ = make(*cp_, "cp");  // cp is CPU-only for now (config/capabilities)
    nccl_stream_ = compute_stream;
  }
  return {nccl_tp_.get(), nccl_dp_.get(), nccl_pp_.get(), nccl_embedding_.get(), nccl_cp_.get()};
}

void RankGrid::release_device_groups() {
  nccl_cp_.reset();
  nccl_embedding_.reset();
  nccl_pp_.reset();
  nccl_dp_.reset();
  nccl_tp_.reset();
  nccl_stream_ = nullptr;
}

std::string RankGrid::coordinates() const {
  std::ostringstream os;
  os << "tp " << coord_.tp_rank << "/" << shape_.tp << ", dp " << coord_.dp_rank << "/" << shape_.dp
     << ", pp " << coord_.pp_rank << "/" << shape_.pp;
  if (shape_.cp > 1) os << ", cp " << coord_.cp_rank << "/" << shape_.cp;
  return os.str();
}

MPI_Comm RankGrid::world_handle() const { return world_->handle(); }

Communicator& RankGrid::io_group() {
  if (!io_) {
    const double t = watchdog_->timeout_s();
    io_watchdog_ = std::make_unique<Watchdog>(t, global_rank_);
    io_watchdog_->name_ranks_with(rank_namer(shape_));
    MPI_Comm dup = MPI_COMM_NULL;
    check_mpi(MPI_Comm_dup(world_->handle(), &dup), "MPI_Comm_dup", "io");
    io_ = std::make_unique<MpiCommunicator>(dup, "io", global_rank_, t, io_watchdog_.get());
  }
  return *io_;
}

MPI_Comm RankGrid::io_handle() { return static_cast<MpiCommunicator&>(io_group()).handle(); }

std::string RankGrid::describe() const {
  return "rank " + std::to_string(global_rank_) + " of " + std::to_string(shape_.size()) + " (" +
         coordinates() + ")";
}

}  // namespace strata::comm

// The few collectives the data pipeline needs, over a borrowed MPI communicator. When MPI is
// not initialised (unit tests, benchmarks, `strata prepare` run as a plain process) the caller
// is a single rank and every collective is the identity. Private to src/data.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <vector>

#include "strata/core/error.hpp"

namespace strata::data::detail {

#define STRATA_MPI_CHECK(call)                                                         \
  do {                                                                                 \
    const int rc_ = (call);                                                            \
    if (rc_ != MPI_SUCCESS) throw ::strata::make_error(#call, " failed with code ", rc_); \
  } while (0)

class Collectives {
 public:
  explicit Collectives(MPI_Comm comm) : comm_(comm) {
    int initialised = 0, finalised = 0;
    MPI_Initialized(&initialised);
    MPI_Finalized(&finalised);
    active_ = initialised && !finalised && comm != MPI_COMM_NULL;
    if (active_) {
      MPI_Comm_rank(comm, &rank_);
      MPI_Comm_size(comm, &size_);
    }
  }
  bool active() const { return active_; }  // MPI is in use (even with one rank)
  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm comm() const { return comm_; }

  void barrier() const {
    if (active_) STRATA_MPI_CHECK(MPI_Barrier(comm_));
  }
  std::uint64_t exscan_sum(std::uint64_t v) const {
    std::uint64_t out = 0;
    if (active_) STRATA_MPI_CHECK(MPI_Exscan(&v, &out, 1, MPI_UINT64_T, MPI_SUM, comm_));
    return rank_ == 0 ? 0 : out;  // MPI_Exscan leaves rank 0's output undefined
  }
  std::uint64_t sum(std::uint64_t v) const {
    std::uint64_t out = v;
    if (active_) STRATA_MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_UINT64_T, MPI_SUM, comm_));
    return out;
  }
  void sum_in_place(std::vector<std::uint64_t>& v) const {
    if (active_ && !v.empty())
      STRATA_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_UINT64_T, MPI_SUM, comm_));
  }
  double max(double v) const {
    double out = v;
    if (active_) STRATA_MPI_CHECK(MPI_Allreduce(&v, &out, 1, MPI_DOUBLE, MPI_MAX, comm_));
    return out;
  }
  // Every rank's `local` concatenated in rank order, on every rank. T is trivially copyable.
  template <class T>
  std::vector<T> allgatherv(const std::vector<T>& local) const {
    if (!active_ || size_ == 1) return local;
    MPI_Datatype type;
    STRATA_MPI_CHECK(MPI_Type_contiguous(int(sizeof(T)), MPI_BYTE, &type));
    STRATA_MPI_CHECK(MPI_Type_commit(&type));
    const int n = int(local.size());
    STRATA_CHECK(std::uint64_t(local.size()) < (1ull << 31), "allgatherv: too many elements on one rank");
    std::vector<int> counts(static_cast<std::size_t>(size_)), displs(static_cast<std::size_t>(size_));
    STRATA_MPI_CHECK(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_));
    std::int64_t total = 0;
    for (int r = 0; r < size_; ++r) {
      displs[std::size_t(r)] = int(total);
      total += counts[std::size_t(r)];
    }
    STRATA_CHECK(total < (1ll << 31), "allgatherv: too many elements in total");
    std::vector<T> out(static_cast<std::size_t>(total));
    STRATA_MPI_CHECK(MPI_Allgatherv(local.data(), n, type, out.data(), counts.data(), displs.data(), type, comm_));
    MPI_Type_free(&type);
    return out;
  }

 private:
  MPI_Comm comm_;
  bool active_ = false;
  int rank_ = 0, size_ = 1;
};

}  // namespace strata::data::detail

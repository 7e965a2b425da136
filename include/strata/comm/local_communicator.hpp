// LocalCommunicator: the group of one process, without MPI. Every collective over one rank is
// the identity (all-reduce, broadcast: nothing to do; gathers and reduce-scatter: a copy), so
// code written against Communicator runs unchanged as a plain process: `strata prepare`
// without mpirun, unit tests, benchmarks. Point-to-point operations have no peer and throw.
#pragma once
#include <cstring>
#include <string>

#include "strata/comm/communicator.hpp"

namespace strata::comm {

class LocalCommunicator final : public Communicator {
 public:
  explicit LocalCommunicator(std::string name = "local") : name_(std::move(name)) {}

  int rank() const override { return 0; }
  int size() const override { return 1; }
  const std::string& name() const override { return name_; }

  Work iall_reduce(void* buf, std::size_t count, DType dtype, ReduceOp op) override;
  Work ireduce_scatter(const void* send, void* recv, std::size_t recv_count, DType dtype,
                       ReduceOp op) override;
  Work iall_gather(const void* send, void* recv, std::size_t send_count, DType dtype) override;
  Work ibroadcast(void* buf, std::size_t count, DType dtype, int root) override;
  Work isend(const void* buf, std::size_t count, DType dtype, int peer, int tag) override;
  Work irecv(void* buf, std::size_t count, DType dtype, int peer, int tag) override;
  void wait(Work& work) override { work = Work{}; }
  bool test(Work& work) override {
    work = Work{};
    return true;
  }
  void barrier() override {}
  void all_gatherv(const void* send, std::size_t send_count, void* recv, const std::size_t* recv_counts,
                   DType dtype) override;
  void all_to_all(const void* send, void* recv, std::size_t count, DType dtype) override {
    std::memmove(recv, send, count * dtype_size(dtype));  // the one block, to itself
  }

 private:
  std::string name_;
};

}  // namespace strata::comm

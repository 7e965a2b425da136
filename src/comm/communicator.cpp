#include "strata/comm/communicator.hpp"

#include <cstring>
#include <vector>

namespace strata::comm {

void Communicator::gather(const void* send, void* recv, std::size_t send_count, DType dtype, int root) {
  const std::size_t block = send_count * dtype_size(dtype);
  std::vector<char> all(block * std::size_t(size()));
  all_gather(send, all.data(), send_count, dtype);
  if (rank() == root) std::memcpy(recv, all.data(), all.size());
}

}  // namespace strata::comm

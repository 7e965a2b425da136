// Typed collectives over host data, built on any Communicator: the small set that
// bookkeeping code (the data pipeline's global deduplication, counters, offsets) needs.
//
//   exclusive_sum(c, v)      sum of v over the ranks before this one (0 on rank 0)
//   all_reduce_value(c, v)   v reduced over the group, on every rank
//   all_gather_vector(c, x)  every rank's vector concatenated in rank order, on every rank
//
// Collective: every rank of `c` calls them in the same order.
#pragma once
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "strata/comm/communicator.hpp"

namespace strata::comm {

template <class T>
T all_reduce_value(Communicator& c, T v, ReduceOp op = ReduceOp::sum) {
  c.all_reduce(&v, 1, op);
  return v;
}

inline std::uint64_t exclusive_sum(Communicator& c, std::uint64_t v) {
  std::vector<std::uint64_t> all(std::size_t(c.size()));
  c.all_gather(&v, all.data(), 1, DType::u64);
  std::uint64_t before = 0;
  for (int r = 0; r < c.rank(); ++r) before += all[std::size_t(r)];
  return before;
}

// T is trivially copyable; it travels as 8-, 4- or 2-byte words.
template <class T>
std::vector<T> all_gather_vector(Communicator& c, std::span<const T> local) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) % 2 == 0, "all_gather_vector: T must be words");
  constexpr std::size_t word = sizeof(T) % 8 == 0 ? 8 : sizeof(T) % 4 == 0 ? 4 : 2;
  constexpr DType dtype = word == 8 ? DType::u64 : word == 4 ? DType::u32 : DType::u16;
  constexpr std::size_t words = sizeof(T) / word;
  const std::uint64_t n = local.size();
  std::vector<std::uint64_t> counts(std::size_t(c.size()));
  c.all_gather(&n, counts.data(), 1, DType::u64);
  std::uint64_t total = 0;
  std::vector<std::size_t> word_counts(counts.size());
  for (std::size_t r = 0; r < counts.size(); ++r)
    total += counts[r], word_counts[r] = std::size_t(counts[r]) * words;
  std::vector<T> out(static_cast<std::size_t>(total));
  c.all_gatherv(local.data(), local.size() * words, out.data(), word_counts.data(), dtype);
  return out;
}

template <class T>
std::vector<T> all_gather_vector(Communicator& c, const std::vector<T>& local) {
  return all_gather_vector(c, std::span<const T>(local));
}

}  // namespace strata::comm

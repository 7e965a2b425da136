#include "slabs.hpp"

#include <algorithm>
#include <bit>

#include "strata/ckpt/checkpoint.hpp"

namespace strata::ckpt {

std::uint64_t element_hash(std::uint64_t global_index, float value) {
  // splitmix64's finaliser over (index * golden ratio) xor the value's bits: every element
  // and position moves the sum, and sums of parts add up (mod 2^64) in any order.
  std::uint64_t z = global_index * 0x9E3779B97F4A7C15ULL ^ std::uint64_t(std::bit_cast<std::uint32_t>(value));
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

std::uint64_t checksum(const float* values, std::int64_t n, std::uint64_t first_index) {
  std::uint64_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += element_hash(first_index + std::uint64_t(i), values[i]);
  return sum;
}

namespace detail {

Dims2 dims2(const Shape& shape) {
  if (shape.size() == 1) return {1, hsize_t(shape[0])};
  return {hsize_t(shape[0]), hsize_t(shape[1])};
}

std::int64_t stored_numel(const model::ParamInfo& p) {
  return p.real_rows < 0 ? p.numel : p.real_rows * p.shape[1];
}

std::vector<Slab> shard_slabs(const model::ParamInfo& p, Range r) {
  std::vector<Slab> out;
  if (r.size() <= 0) return out;
  const Dims2 local = dims2(p.shape);
  const hsize_t lc = local.cols;
  // A 1-D tensor is one row: its TP split ("rows", dimension 0) runs along the columns.
  const bool one_d = p.shape.size() == 1;
  const hsize_t ro = p.split == model::TpSplit::rows && !one_d ? hsize_t(p.split_offset) : 0;
  const hsize_t co = p.split == model::TpSplit::cols || (p.split == model::TpSplit::rows && one_d)
                         ? hsize_t(p.split_offset)
                         : 0;
  auto add = [&](hsize_t row, hsize_t col, hsize_t rows, hsize_t cols) {
    if (rows > 0 && cols > 0) out.push_back({row + ro, col + co, rows, cols});
  };
  hsize_t r0 = hsize_t(r.begin) / lc, c0 = hsize_t(r.begin) % lc;
  const hsize_t r1 = hsize_t(r.end) / lc, c1 = hsize_t(r.end) % lc;
  if (r0 == r1) {
    add(r0, c0, 1, c1 - c0);
    return out;
  }
  if (c0 != 0) {
    add(r0, c0, 1, lc - c0);
    ++r0;
  }
  add(r0, 0, r1 - r0, lc);
  add(r1, 0, 1, c1);
  return out;
}

std::uint64_t hash_range(const model::ParamInfo& p, Range r, const float* v) {
  if (p.split != model::TpSplit::cols)  // consecutive local elements are consecutive stored ones
    return checksum(v, r.size(), stored_index(p, r.begin));
  // Column shards: consecutive within a local row.
  std::uint64_t sum = 0;
  const std::int64_t lc = p.shape[1];
  for (std::int64_t i = r.begin; i < r.end;) {
    const std::int64_t row_end = std::min(r.end, (i / lc + 1) * lc);
    sum += checksum(v + (i - r.begin), row_end - i, stored_index(p, i));
    i = row_end;
  }
  return sum;
}

}  // namespace detail
}  // namespace strata::ckpt

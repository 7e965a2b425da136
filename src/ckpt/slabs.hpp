// How a rank's part of one parameter tensor maps onto the stored (global, unpadded) tensor.
// Private to src/ckpt.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <vector>

#include "strata/model/parameters.hpp"
#include "strata/parallel/distributed_optimizer.hpp"

namespace strata::ckpt::detail {

using parallel::Range;

// A rectangle of the stored tensor seen as 2-D (rows, cols); 1-D tensors are one row.
struct Slab {
  hsize_t row = 0, col = 0, rows = 0, cols = 0;
};

// The stored tensor's 2-D view: [rows, cols].
struct Dims2 {
  hsize_t rows = 1, cols = 1;
};
Dims2 dims2(const Shape& shape);

// Elements of the shard that exist in the stored tensor: all but vocabulary padding rows.
std::int64_t stored_numel(const model::ParamInfo& p);

// The slabs holding local (shard-flat) elements [r.begin, r.end) of `p`, in the stored tensor's
// row-major order, which is also the local order. `r` must lie within [0, stored_numel(p)).
std::vector<Slab> shard_slabs(const model::ParamInfo& p, Range r);

// Global (stored) flat index of local element i of `p`.
inline std::uint64_t stored_index(const model::ParamInfo& p, std::int64_t i) {
  return std::uint64_t(p.global_index(i));
}

// Sum of element_hash over local elements [r.begin, r.end) with values v[0 .. r.size()).
std::uint64_t hash_range(const model::ParamInfo& p, Range r, const float* v);

}  // namespace strata::ckpt::detail

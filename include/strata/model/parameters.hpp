// The parameter table of one model replica (one pipeline stage of one tensor-parallel rank
// once those exist): every tensor's name, local shape, global shape, offset into one flat
// buffer, and its optimizer treatment. Parameters and gradients are two flat buffers with
// the same layout, so the optimizer, gradient clipping and (later) bucketed data-parallel
// reduction work on contiguous ranges rather than on tensor lists.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "strata/core/tensor.hpp"

namespace strata::model {

enum class ParamKind { matrix, embedding, norm, bias };

struct ParamInfo {
  std::string name;       // global name, global layer index: "layers.11.mlp.fc.weight"
  Shape shape;            // local shape (this rank's shard)
  Shape global_shape;     // shape of the whole tensor
  std::int64_t offset;    // element offset into the flat buffers
  std::int64_t numel;
  ParamKind kind;
  double init_std;        // 0 with kind norm: ones; 0 with kind bias: zeros
  bool in_matmul;         // enters a matrix multiply (counted in the 6N FLOP rule)
};

class ParameterTable {
 public:
  void add(std::string name, Shape shape, ParamKind kind, double init_std, bool in_matmul);
  const std::vector<ParamInfo>& entries() const { return entries_; }
  const ParamInfo& get(const std::string& name) const;
  std::int64_t numel() const { return numel_; }
  // Elements that enter a matmul: the N of the 6N FLOP-per-token rule.
  std::int64_t matmul_numel() const;

 private:
  std::vector<ParamInfo> entries_;
  std::int64_t numel_ = 0;
};

}  // namespace strata::model

#include "strata/model/parameters.hpp"

#include "strata/core/error.hpp"

namespace strata::model {

void ParameterTable::add(std::string name, Shape shape, ParamKind kind, double init_std,
                         bool in_matmul) {
  ParamInfo p{std::move(name), shape, shape, numel_, shape_numel(shape), kind, init_std, in_matmul};
  numel_ += p.numel;
  entries_.push_back(std::move(p));
}

const ParamInfo& ParameterTable::get(const std::string& name) const {
  for (const auto& p : entries_)
    if (p.name == name) return p;
  throw make_error("no parameter named '", name, "'");
}

std::int64_t ParameterTable::matmul_numel() const {
  std::int64_t n = 0;
  for (const auto& p : entries_)
    if (p.in_matmul) n += p.numel;
  return n;
}

}  // namespace strata::model

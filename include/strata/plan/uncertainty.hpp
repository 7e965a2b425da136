// Assumptions and their uncertainty. A cluster file marks each constant that no measurement has
// validated with a range (`sustained_fraction_range: [0.40, 0.65]`, ...). The planner then states
// every figure that depends on one at both ends: the step at the slow end of every range
// (fractions and overlap low, the narrow-GEMM width high) and at the fast end. The time model is
// monotone in each constant, so these two bound the figure over the whole box of assumptions.
#pragma once
#include <string>
#include <vector>

#include "strata/config/cluster.hpp"

namespace strata::plan {

struct Assumption {
  std::string key;  // cluster key, e.g. "sustained_fraction"
  double value = 0, low = 0, high = 0;
};

// The constants of `cluster` given as ranges, in schema order.
std::vector<Assumption> assumptions(const config::ClusterConfig& cluster);

// The cluster with every assumed constant at the end of its range that makes a step slowest
// (fastest). Equal to `cluster` when it has no assumptions.
config::ClusterConfig slowest_case(const config::ClusterConfig& cluster);
config::ClusterConfig fastest_case(const config::ClusterConfig& cluster);

// "sustained_fraction 0.5 (assumed: 0.4-0.65), attention_fraction 0.3 (assumed: 0.25-0.35)", or "".
std::string describe_assumptions(const config::ClusterConfig& cluster);

// "11.2 s" -> "11.2 s (8.9-14.0)": a figure and its range, formatted by `format`.
template <class F>
std::string with_range(double value, double low, double high, bool uncertain, F&& format) {
  if (!uncertain) return format(value);
  return format(value) + " (" + format(low) + "-" + format(high) + ")";
}

}  // namespace strata::plan

// Assumptions of a cluster file and the planner's figures at both ends of their ranges.
#include "strata/plan/uncertainty.hpp"

#include "strata/plan/table.hpp"

namespace strata::plan {

namespace {
// Each ranged constant: its key, range, member, and whether a larger value makes a step faster.
struct Ranged {
  const char* key;
  std::vector<double> config::ClusterConfig::*range;
  double config::ClusterConfig::*value;
  bool larger_is_faster;
};
constexpr Ranged kRanged[] = {
    {"sustained_fraction", &config::ClusterConfig::sustained_fraction_range,
     &config::ClusterConfig::sustained_fraction, true},
    {"small_gemm_width", &config::ClusterConfig::small_gemm_width_range,
     &config::ClusterConfig::small_gemm_width, false},
    {"attention_fraction", &config::ClusterConfig::attention_fraction_range,
     &config::ClusterConfig::attention_fraction, true},
    {"elementwise_fraction", &config::ClusterConfig::elementwise_fraction_range,
     &config::ClusterConfig::elementwise_fraction, true},
    {"overlap_efficiency", &config::ClusterConfig::overlap_efficiency_range,
     &config::ClusterConfig::overlap_efficiency, true},
};

config::ClusterConfig at_end(const config::ClusterConfig& c, bool slow) {
  config::ClusterConfig out = c;
  for (const Ranged& r : kRanged) {
    const std::vector<double>& range = c.*r.range;
    if (range.size() != 2) continue;
    out.*r.value = (slow != r.larger_is_faster) ? range[1] : range[0];
  }
  return out;
}
}  // namespace

std::vector<Assumption> assumptions(const config::ClusterConfig& c) {
  std::vector<Assumption> out;
  for (const Ranged& r : kRanged) {
    const std::vector<double>& range = c.*r.range;
    if (range.size() != 2) continue;
    double value = c.*r.value;
    if (r.value == &config::ClusterConfig::attention_fraction) value = c.attention_efficiency();
    out.push_back({r.key, value, range[0], range[1]});
  }
  return out;
}

config::ClusterConfig slowest_case(const config::ClusterConfig& c) { return at_end(c, true); }
config::ClusterConfig fastest_case(const config::ClusterConfig& c) { return at_end(c, false); }

std::string describe_assumptions(const config::ClusterConfig& c) {
  std::string s;
  for (const Assumption& a : assumptions(c))
    s += (s.empty() ? "" : ", ") + a.key + " " + fmt("%g", a.value) + " (assumed: " + fmt("%g", a.low) + "-" +
         fmt("%g", a.high) + ")";
  return s;
}

}  // namespace strata::plan

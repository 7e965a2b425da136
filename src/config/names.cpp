// Enum names as they appear in YAML, and the "did you mean" suggestion for unknown keys.
#include <algorithm>
#include <cctype>

#include "schema.hpp"
#include "strata/config/load.hpp"

namespace strata::config {

const char* to_string(NormKind v) { return schema::enum_name(v); }
const char* to_string(MlpKind v) { return schema::enum_name(v); }
const char* to_string(PositionKind v) { return schema::enum_name(v); }
const char* to_string(AttentionKind v) { return schema::enum_name(v); }
const char* to_string(RecomputeKind v) { return schema::enum_name(v); }
const char* to_string(ScheduleKind v) { return schema::enum_name(v); }
const char* to_string(PipelineSchedule v) { return schema::enum_name(v); }
const char* to_string(DataSource v) { return schema::enum_name(v); }
const char* to_string(DeviceKind v) { return schema::enum_name(v); }
const char* to_string(ReduceDType v) { return schema::enum_name(v); }
const char* to_string(CpMode v) { return schema::enum_name(v); }
const char* to_string(CurriculumOrder v) { return schema::enum_name(v); }
const char* to_string(CurriculumPacing v) { return schema::enum_name(v); }
const char* to_string(ObjectiveKind v) { return schema::enum_name(v); }

namespace schema {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

// Levenshtein distance, two rows.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string closest(std::string_view key, const std::vector<std::string>& candidates) {
  const std::string k = lower(key);
  std::string best;
  std::size_t best_d = static_cast<std::size_t>(-1);
  for (const auto& cand : candidates) {
    const std::string c = lower(cand);
    const std::size_t d = edit_distance(k, c);
    const std::size_t limit = std::min<std::size_t>(3, std::max<std::size_t>(1, c.size() / 2));
    if (d <= limit && d < best_d) best = cand, best_d = d;
  }
  if (!best.empty()) return best;
  // "batch_size" -> "micro_batch_size", "layers" -> "num_layers".
  for (const auto& cand : candidates) {
    const std::string c = lower(cand);
    if (k.size() >= 4 && c.size() >= 4 && (c.find(k) != std::string::npos || k.find(c) != std::string::npos))
      return cand;
  }
  return {};
}

}  // namespace schema
}  // namespace strata::config

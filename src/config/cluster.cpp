// Cluster files (configs/clusters/*.yaml): the schema lists every field once; reading, unknown
// keys with suggestions and range checks come from the same machinery as job configs
// (schema.hpp, yaml_read.hpp).
#include "strata/config/cluster.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "schema.hpp"
#include "strata/config/load.hpp"
#include "strata/core/paths.hpp"
#include "yaml_read.hpp"

namespace strata::config {

namespace schema {
template <>
struct EnumNames<Precision> {
  static constexpr std::pair<std::string_view, Precision> values[] = {{"bf16", Precision::bf16},
                                                                      {"fp32", Precision::fp32}};
};

template <class V>
void visit_fields(ClusterConfig& c, V&& v) {
  v("name", c.name, non_empty);
  v("gpu", c.gpu, non_empty);
  v("device", c.device, any);
  v("precision", c.precision, any);
  v("gpus_per_node", c.gpus_per_node, positive);
  v("peak_tflops_bf16", c.peak_tflops_bf16, non_negative);
  v("peak_tflops_fp32", c.peak_tflops_fp32, non_negative);
  v("memory_gib", c.memory_gib, positive);
  v("reserved_gib", c.reserved_gib, non_negative);
  v("memory_bandwidth_gb_per_s", c.memory_bandwidth_gb_per_s, positive);
  v("intra_node_gb_per_s", c.intra_node_gb_per_s, positive);
  v("inter_node_gb_per_s", c.inter_node_gb_per_s, positive);
  v("intra_node_alpha_us", c.intra_node_alpha_us, non_negative);
  v("inter_node_alpha_us", c.inter_node_alpha_us, non_negative);
  v("sustained_fraction", c.sustained_fraction, positive);
  v("small_gemm_width", c.small_gemm_width, non_negative);
  v("attention_fraction", c.attention_fraction, non_negative);
  v("elementwise_fraction", c.elementwise_fraction, positive);
  v("overlap_efficiency", c.overlap_efficiency, non_negative);
  v("oversubscribe", c.oversubscribe, positive);
  v("price_per_gpu_hour", c.price_per_gpu_hour, non_negative);
  v("power_watts", c.power_watts, non_negative);
  v("sustained_fraction_range", c.sustained_fraction_range, non_negative);
  v("small_gemm_width_range", c.small_gemm_width_range, non_negative);
  v("attention_fraction_range", c.attention_fraction_range, non_negative);
  v("elementwise_fraction_range", c.elementwise_fraction_range, non_negative);
  v("overlap_efficiency_range", c.overlap_efficiency_range, non_negative);
  v("calibration", c.calibration, any);
}
}  // namespace schema

namespace {
namespace fs = std::filesystem;
using namespace detail;

std::string prefix(const std::string& origin) { return origin.empty() ? "" : origin + ": "; }

// Folders that may hold configs/<folder>: $STRATA_CONFIG_DIR/<folder>, the current
// directory's configs/<folder>, then configs/<folder> under each of strata's resource roots
// ($STRATA_HOME, an installed tree's share/strata, the program's folder and those above it:
// core/paths.hpp). Nothing is compiled in, so an installed tree can be moved.
std::vector<fs::path> search_roots(const std::string& folder) {
  std::vector<fs::path> roots;
  if (const char* dir = std::getenv("STRATA_CONFIG_DIR")) roots.push_back(fs::path(dir) / folder);
  roots.push_back(fs::path("configs") / folder);
  for (const fs::path& root : resource_roots()) roots.push_back(root / "configs" / folder);
  return roots;
}
}  // namespace

const char* to_string(Precision v) { return schema::enum_name(v); }

void validate(const ClusterConfig& c, const std::string& origin) {
  const std::string at = prefix(origin);
  ClusterConfig copy = c;
  schema::visit_fields(copy, [&](const char* name, auto& value, schema::Rule rule) {
    using T = std::remove_cvref_t<decltype(value)>;
    if (!schema::satisfies(value, rule))
      throw make_error(at, "cluster.", name, ": expected ", schema::expectation<T>(rule), ", got ",
                       schema::format_value(value));
  });
  if (c.peak_tflops() <= 0)
    throw make_error(at, "cluster.peak_tflops_", to_string(c.precision),
                     " must be > 0: cluster.precision is ", to_string(c.precision),
                     " and the planner needs that peak");
  if (c.sustained_fraction > 1)
    throw make_error(at, "cluster.sustained_fraction (", c.sustained_fraction,
                     ") must be in (0, 1]: it is the achieved share of peak");
  if (c.overlap_efficiency > 1)
    throw make_error(at, "cluster.overlap_efficiency (", c.overlap_efficiency, ") must be in [0, 1]");
  for (const auto& [name, value] : {std::pair{"attention_fraction", c.attention_fraction},
                                    std::pair{"elementwise_fraction", c.elementwise_fraction}})
    if (value > 1)
      throw make_error(at, "cluster.", name, " (", value, ") must be in (0, 1]: it is an achieved share");
  if (c.oversubscribe > 1 && c.device != DeviceKind::cpu)
    throw make_error(at, "cluster.oversubscribe (", c.oversubscribe,
                     ") must be 1 for accelerators: only CPU ranks can share a core");
  // A range is [low, high] around the value it qualifies.
  const auto range = [&](const char* name, const std::vector<double>& r, double value, double ceiling) {
    if (r.empty()) return;
    if (r.size() != 2 || r[0] > r[1])
      throw make_error(at, "cluster.", name, "_range: expected [low, high] with low <= high, got ",
                       schema::format_value(r));
    if (value < r[0] || value > r[1])
      throw make_error(at, "cluster.", name, "_range ", schema::format_value(r), " does not contain cluster.",
                       name, " (", value, ")");
    if (r[1] > ceiling) throw make_error(at, "cluster.", name, "_range: the high end must be <= ", ceiling);
  };
  range("sustained_fraction", c.sustained_fraction_range, c.sustained_fraction, 1.0);
  range("small_gemm_width", c.small_gemm_width_range, c.small_gemm_width, 1e9);
  range("attention_fraction", c.attention_fraction_range, c.attention_efficiency(), 1.0);
  range("elementwise_fraction", c.elementwise_fraction_range, c.elementwise_fraction, 1.0);
  range("overlap_efficiency", c.overlap_efficiency_range, c.overlap_efficiency, 1.0);
}

ClusterConfig load_cluster_config(const std::string& path) {
  const YAML::Node root = parse_yaml(read_file(path, "cluster file"), path);
  Origins origins({path, true});
  if (!root.IsMap())
    fail(origins, "", root,
         "expected a mapping of cluster settings (gpu, peak_tflops_bf16, ...), got " + describe(root));
  const std::vector<std::string> fields = schema::field_names<ClusterConfig>();
  std::vector<std::string> seen;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const YAML::Node key = it->first;  // a copy: it->first lives in a temporary proxy
    if (!key.IsScalar()) fail(origins, "", key, "expected a key name, got " + describe(key));
    const std::string keypath = "cluster." + key.Scalar();
    if (std::ranges::count(seen, key.Scalar())) fail(origins, keypath, key, "duplicate key");
    seen.push_back(key.Scalar());
    if (!std::ranges::count(fields, key.Scalar())) {
      std::string hint = schema::did_you_mean(key.Scalar(), fields);
      if (hint.empty()) hint = " (known keys: " + join(fields) + ")";
      fail(origins, keypath, key, "unknown key in cluster file" + hint);
    }
  }
  ClusterConfig c;
  schema::visit_fields(c, [&](const char* name, auto& value, Rule rule) {
    const YAML::Node n = root[name];
    if (n.IsDefined()) read_value(n, std::string("cluster.") + name, value, rule, origins);
  });
  validate(c, path);
  return c;
}

std::vector<std::string> named_configs(const std::string& folder) {
  std::set<std::string> names;
  std::error_code ec;
  for (const fs::path& root : search_roots(folder)) {
    if (!fs::is_directory(root, ec)) continue;
    for (const auto& e : fs::directory_iterator(root, ec))
      if (e.path().extension() == ".yaml") names.insert(e.path().stem().string());
    if (!names.empty()) break;  // the first folder that has configs is the one used
  }
  return {names.begin(), names.end()};
}

std::string find_named_config(const std::string& name_or_path, const std::string& folder,
                              const std::string& what) {
  std::error_code ec;
  if (fs::is_regular_file(name_or_path, ec)) return name_or_path;
  const bool looks_like_path =
      name_or_path.find('/') != std::string::npos || fs::path(name_or_path).extension() == ".yaml";
  if (!looks_like_path) {
    for (const fs::path& root : search_roots(folder)) {
      const fs::path exact = root / (name_or_path + ".yaml");
      if (fs::is_regular_file(exact, ec)) return exact.string();
      if (!fs::is_directory(root, ec)) continue;
      std::vector<fs::path> prefixed;
      for (const auto& e : fs::directory_iterator(root, ec))
        if (e.path().extension() == ".yaml" && e.path().stem().string().starts_with(name_or_path))
          prefixed.push_back(e.path());
      if (prefixed.size() == 1) return prefixed[0].string();
      if (prefixed.size() > 1) {
        std::vector<std::string> stems;
        for (const auto& p : prefixed) stems.push_back(p.stem().string());
        std::ranges::sort(stems);
        throw make_error("ambiguous ", what, " '", name_or_path, "': matches ", join(stems),
                         "; give the full name");
      }
    }
  }
  const std::vector<std::string> known = named_configs(folder);
  std::string hint = schema::did_you_mean(name_or_path, known);
  throw make_error("unknown ", what, " '", name_or_path, "': no such file and no configs/", folder, "/",
                   name_or_path, ".yaml", hint, known.empty() ? "" : " (known: " + join(known) + ")");
}

}  // namespace strata::config

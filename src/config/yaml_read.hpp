// YAML reading shared by the config loaders (load.cpp: job and model files; cluster.cpp:
// cluster files): where a node came from (file:line:column or the --set option), one-line
// errors naming the key path, and typed reading of one schema field with its range rule.
//
// Private to src/config.
#pragma once
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "schema.hpp"
#include "strata/core/error.hpp"

namespace strata::config::detail {

using schema::Rule;

// ---- where a node came from ---------------------------------------------------------------
struct Origin {
  std::string name;   // file path, or "--set a.b=c"
  bool marks = true;  // whether the node's line:column refer to `name`
};

// Key path -> origin; a path takes the origin of its longest recorded prefix, else the file's.
class Origins {
 public:
  explicit Origins(Origin file) : file_(std::move(file)) {}

  // Everything at and below `path` now comes from `origin`.
  void set(const std::string& path, Origin origin) {
    std::erase_if(by_path_, [&](const auto& e) { return covers(path, e.first); });
    by_path_[path] = std::move(origin);
  }

  const Origin& at(const std::string& path) const {
    const Origin* best = &file_;
    std::size_t best_len = 0;
    for (const auto& [prefix, origin] : by_path_)
      if (covers(prefix, path) && prefix.size() + 1 > best_len) best = &origin, best_len = prefix.size() + 1;
    return *best;
  }

 private:
  // "model" covers "model", "model.num_layers"; "data.paths" covers "data.paths[1]".
  static bool covers(const std::string& prefix, const std::string& path) {
    if (path.size() < prefix.size() || path.compare(0, prefix.size(), prefix) != 0) return false;
    return path.size() == prefix.size() || path[prefix.size()] == '.' || path[prefix.size()] == '[';
  }

  Origin file_;
  std::map<std::string, Origin> by_path_;
};

inline std::string where(const Origins& origins, const std::string& path, const YAML::Node& node) {
  const Origin& o = origins.at(path);
  std::string s = o.name;
  if (o.marks && node.IsDefined()) {
    const YAML::Mark m = node.Mark();
    if (!m.is_null()) s += ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  return s;
}

// "config.yaml:3:15: model.num_layers: expected an integer > 0, got '0'"
[[noreturn]] inline void fail(const Origins& origins, const std::string& path, const YAML::Node& node,
                              const std::string& what) {
  if (path.empty()) throw make_error(where(origins, path, node), ": ", what);
  throw make_error(where(origins, path, node), ": ", path, ": ", what);
}

inline std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Scalar: return "'" + n.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

inline std::string join(const std::vector<std::string>& names, const char* sep = ", ") {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : sep) + n;
  return s;
}

// ---- files and YAML text ------------------------------------------------------------------------
inline std::string read_file(const std::string& path, const char* what) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw make_error("cannot open ", what, " '", path, "': Is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw make_error("cannot open ", what, " '", path, "': ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) throw make_error(origin, ": malformed YAML: ", e.msg);
    throw make_error(origin, ":", e.mark.line + 1, ":", e.mark.column + 1, ": malformed YAML: ", e.msg);
  }
}

// ---- scalars ---------------------------------------------------------------------------------------
template <class T>
bool parse_number(std::string_view s, T& out) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return false;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  if (ec != std::errc() || end != s.data() + s.size()) return false;
  if constexpr (std::is_floating_point_v<T>) return std::isfinite(out);
  return true;
}

inline bool parse_bool(const std::string& s, bool& out) {
  static constexpr std::string_view yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "On"};
  static constexpr std::string_view no[] = {"false", "False", "FALSE", "no", "No", "off", "Off"};
  if (std::find(std::begin(yes), std::end(yes), s) != std::end(yes)) return out = true, true;
  if (std::find(std::begin(no), std::end(no), s) != std::end(no)) return out = false, true;
  return false;
}

// One field's node into its member; `path` is the full key path ("model.num_layers").
template <class T>
void read_value(const YAML::Node& n, const std::string& path, T& out, Rule rule, const Origins& origins) {
  auto expected = [&](const std::string& extra = "") {
    fail(origins, path, n, "expected " + schema::expectation<T>(rule) + ", got " + describe(n) + extra);
  };
  if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    std::vector<std::string> items;
    if (n.IsScalar()) {
      items.push_back(n.Scalar());
    } else if (n.IsSequence()) {
      for (std::size_t i = 0; i < n.size(); ++i) {
        const YAML::Node item = n[i];
        const std::string item_path = path + "[" + std::to_string(i) + "]";
        if (!item.IsScalar()) fail(origins, item_path, item, "expected a string, got " + describe(item));
        if (!schema::satisfies(item.Scalar(), rule))
          fail(origins, item_path, item, "expected a non-empty string, got " + describe(item));
        items.push_back(item.Scalar());
      }
    } else if (!n.IsNull()) {
      expected();
    }
    out = std::move(items);
    return;
  } else if constexpr (std::is_same_v<T, std::vector<DatasetSpec>>) {
    // A list whose items are {path: P, weight: W} (weight optional, default 1) or a plain path.
    if (n.IsNull()) {
      out.clear();
      return;
    }
    if (!n.IsSequence()) expected();
    std::vector<DatasetSpec> items;
    for (std::size_t i = 0; i < n.size(); ++i) {
      const YAML::Node item = n[i];
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      DatasetSpec d;
      if (item.IsScalar()) {
        d.path = item.Scalar();
      } else if (item.IsMap()) {
        static const std::vector<std::string> keys = {"path", "weight"};
        for (auto it = item.begin(); it != item.end(); ++it) {
          const std::string k = it->first.IsScalar() ? it->first.Scalar() : "";
          if (!std::ranges::count(keys, k))
            fail(origins, item_path + "." + k, it->first,
                 "unknown key in a dataset entry" + (schema::did_you_mean(k, keys).empty()
                                                         ? std::string(" (known keys: path, weight)")
                                                         : schema::did_you_mean(k, keys)));
        }
        if (!item["path"]) fail(origins, item_path, item, "a dataset entry needs a 'path'");
        read_value(item["path"], item_path + ".path", d.path, Rule::non_empty, origins);
        if (item["weight"])
          read_value(item["weight"], item_path + ".weight", d.weight, Rule::positive, origins);
      } else {
        fail(origins, item_path, item,
             "expected a dataset path or a {path, weight} mapping, got " + describe(item));
      }
      if (d.path.empty()) fail(origins, item_path, item, "expected a non-empty path, got " + describe(item));
      items.push_back(std::move(d));
    }
    out = std::move(items);
    return;
  } else if constexpr (std::is_same_v<T, std::vector<MixturePoint>>) {
    // A list of {tokens: N, weights: [w0, w1, ...]} mappings.
    if (n.IsNull()) {
      out.clear();
      return;
    }
    if (!n.IsSequence()) expected();
    std::vector<MixturePoint> items;
    for (std::size_t i = 0; i < n.size(); ++i) {
      const YAML::Node item = n[i];
      const std::string item_path = path + "[" + std::to_string(i) + "]";
      if (!item.IsMap())
        fail(origins, item_path, item, "expected a {tokens, weights} mapping, got " + describe(item));
      static const std::vector<std::string> keys = {"tokens", "weights"};
      for (auto it = item.begin(); it != item.end(); ++it) {
        const std::string k = it->first.IsScalar() ? it->first.Scalar() : "";
        if (!std::ranges::count(keys, k))
          fail(origins, item_path + "." + k, it->first,
               "unknown key in a schedule point" + (schema::did_you_mean(k, keys).empty()
                                                        ? std::string(" (known keys: tokens, weights)")
                                                        : schema::did_you_mean(k, keys)));
      }
      if (!item["tokens"] || !item["weights"])
        fail(origins, item_path, item, "a schedule point needs 'tokens' and 'weights'");
      MixturePoint p;
      {
        // Tokens may be written as 2e6: read as a number, then check it is a whole count.
        const YAML::Node t = item["tokens"];
        double v = -1;
        if (!t.IsScalar() || !parse_number(t.Scalar(), v) || v < 0 || v != std::floor(v) || v > 1.8e19)
          fail(origins, item_path + ".tokens", t,
               "expected a whole number of tokens >= 0, got " + describe(t));
        p.tokens = std::uint64_t(v);
      }
      const YAML::Node w = item["weights"];
      if (!w.IsSequence())
        fail(origins, item_path + ".weights", w, "expected a list of numbers >= 0, got " + describe(w));
      for (std::size_t k = 0; k < w.size(); ++k) {
        double x = 0;
        if (!w[k].IsScalar() || !parse_number(w[k].Scalar(), x) || x < 0)
          fail(origins, item_path + ".weights[" + std::to_string(k) + "]", w[k],
               "expected a number >= 0, got " + describe(w[k]));
        p.weights.push_back(x);
      }
      items.push_back(std::move(p));
      // The schema's rule on the point just read (checked in place: a one-element temporary
      // vector here trips GCC 12's -Wfree-nonheap-object false positive).
      if (!schema::satisfies(items, rule))
        fail(origins, item_path + ".weights", w, "the weights must not all be 0");
    }
    out = std::move(items);
    return;
  } else if constexpr (schema::is_number_list<T>) {
    using X = typename T::value_type;
    if (!n.IsSequence() && !n.IsNull()) expected();
    T items;
    for (std::size_t i = 0; n.IsSequence() && i < n.size(); ++i) {
      const YAML::Node item = n[i];
      X value = 0;
      if (!item.IsScalar() || !parse_number(item.Scalar(), value) || !schema::satisfies(value, rule))
        fail(origins, path + "[" + std::to_string(i) + "]", item,
             "expected " + schema::expectation<X>(rule) + ", got " + describe(item));
      items.push_back(value);
    }
    out = std::move(items);
    return;
  } else {
    if (!n.IsScalar()) expected();
    const std::string& s = n.Scalar();
    T value{};
    if constexpr (std::is_same_v<T, bool>) {
      if (!parse_bool(s, value)) expected();
    } else if constexpr (std::is_arithmetic_v<T>) {
      if (!parse_number(s, value)) {
        long double wide;
        const bool out_of_range = std::is_integral_v<T> && parse_number(s, wide) && wide == std::floor(wide);
        expected(out_of_range ? " (out of range)" : "");
      }
    } else if constexpr (std::is_same_v<T, std::string>) {
      value = s;
    } else if constexpr (schema::ConfigEnum<T>) {
      bool found = false;
      std::vector<std::string> names;
      for (const auto& [name, v] : schema::EnumNames<T>::values) {
        names.emplace_back(name);
        if (name == s) value = v, found = true;
      }
      if (!found) expected(schema::did_you_mean(s, names));
    }
    if (!schema::satisfies(value, rule)) expected();
    out = value;
  }
}

}  // namespace strata::config::detail

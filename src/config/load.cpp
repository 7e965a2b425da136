// Loading a job config, in this order:
//
//   1. the YAML file (or text) is read and parsed;
//   2. `model:` naming a file is replaced by that file's mapping (a relative path is looked
//      for next to the including file first, then in the current directory);
//   3. `--set a.b=value` overrides are applied in order (value parsed as YAML, so lists and
//      mappings work; `--set model=path` includes a model file relative to the current
//      directory; `--set optim={lr: 1e-3}` merges into the section);
//   4. every section is typed through the schema (schema.hpp), rejecting unknown keys;
//   5. validate() checks the rules that span fields.
//
// Every node remembers where it came from (Origins: the file, the model file or the --set
// option), so each message starts with "file:line:column" or "--set a.b=c", then the full
// key path, then what was expected and what was found.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "schema.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"

namespace strata::config {
namespace {

namespace fs = std::filesystem;
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

std::string where(const Origins& origins, const std::string& path, const YAML::Node& node) {
  const Origin& o = origins.at(path);
  std::string s = o.name;
  if (o.marks && node.IsDefined()) {
    const YAML::Mark m = node.Mark();
    if (!m.is_null()) s += ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }
  return s;
}

// "config.yaml:3:15: model.num_layers: expected an integer > 0, got '0'"
[[noreturn]] void fail(const Origins& origins, const std::string& path, const YAML::Node& node,
                       const std::string& what) {
  if (path.empty()) throw make_error(where(origins, path, node), ": ", what);
  throw make_error(where(origins, path, node), ": ", path, ": ", what);
}

std::string describe(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Null: return "nothing (null)";
    case YAML::NodeType::Scalar: return "'" + n.Scalar() + "'";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Map: return "a mapping";
    default: return "nothing";
  }
}

std::string join(const std::vector<std::string>& names, const char* sep = ", ") {
  std::string s;
  for (const auto& n : names) s += (s.empty() ? "" : sep) + n;
  return s;
}

// ---- files and YAML text ------------------------------------------------------------------------
std::string read_file(const std::string& path, const char* what) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw make_error("cannot open ", what, " '", path, "': Is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw make_error("cannot open ", what, " '", path, "': ", std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

YAML::Node parse_yaml(const std::string& text, const std::string& origin) {
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

bool parse_bool(const std::string& s, bool& out) {
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
    if (n.IsNull()) { out.clear(); return; }
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
        if (item["weight"]) read_value(item["weight"], item_path + ".weight", d.weight, Rule::positive, origins);
      } else {
        fail(origins, item_path, item, "expected a dataset path or a {path, weight} mapping, got " + describe(item));
      }
      if (d.path.empty()) fail(origins, item_path, item, "expected a non-empty path, got " + describe(item));
      items.push_back(std::move(d));
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

// ---- sections ------------------------------------------------------------------------------------------
struct SectionFields {
  std::string section;
  std::vector<std::string> fields;
};

std::vector<SectionFields> all_fields() {
  std::vector<SectionFields> out;
  JobConfig j;
  schema::visit_sections(j, [&](const char* name, auto& config) {
    out.push_back({name, schema::field_names<std::remove_cvref_t<decltype(config)>>()});
  });
  return out;
}

const std::vector<std::string>* fields_of(const std::string& section) {
  static const std::vector<SectionFields> all = all_fields();
  for (const auto& s : all)
    if (s.section == section) return &s.fields;
  return nullptr;
}

// "unknown key; did you mean 'num_layers'?" or "... did you mean 'optim.lr'?" when the key
// belongs to another section, else the list of known keys.
std::string unknown_key(const std::string& section, const std::string& key) {
  const auto& fields = *fields_of(section);
  std::string hint = schema::did_you_mean(key, fields);
  if (hint.empty())
    for (const auto& other : schema::section_names())
      if (other != section && std::ranges::count(*fields_of(other), key))
        hint = "; did you mean '" + other + "." + key + "'?";
  if (hint.empty()) hint = " (known keys: " + join(fields) + ")";
  return "unknown key in section '" + section + "'" + hint;
}

std::string unknown_section_message(const std::string& key) {
  const auto sections = schema::section_names();
  const std::string hint = schema::did_you_mean(key, sections);
  return "unknown section" + (hint.empty() ? "" : hint) + " (sections: " + join(sections) + ")";
}

template <class C>
void read_section(const YAML::Node& node, const std::string& section, C& config, const Origins& origins) {
  if (!node.IsDefined() || node.IsNull()) return;
  if (!node.IsMap())
    fail(origins, section, node, "expected a mapping of " + section + " settings, got " + describe(node));
  const auto& fields = *fields_of(section);
  std::vector<std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const YAML::Node& key = it->first;
    if (!key.IsScalar()) fail(origins, section, key, "expected a key name, got " + describe(key));
    const std::string path = section + "." + key.Scalar();
    if (std::ranges::count(seen, key.Scalar())) fail(origins, path, key, "duplicate key");
    seen.push_back(key.Scalar());
    if (!std::ranges::count(fields, key.Scalar())) fail(origins, path, key, unknown_key(section, key.Scalar()));
  }
  schema::visit_fields(config, [&](const char* name, auto& value, Rule rule) {
    const YAML::Node n = node[name];
    if (n.IsDefined()) read_value(n, section + "." + name, value, rule, origins);
  });
}

// ---- model include ---------------------------------------------------------------------------------------
// A model file's top level is the model mapping itself.
YAML::Node read_model_file(const std::string& path) {
  YAML::Node model = parse_yaml(read_file(path, "model file"), path);
  if (!model.IsMap())
    throw make_error(path, ": expected a mapping of model settings (num_layers, d_model, ...), got ",
                     describe(model));
  return model;
}

// `model: path` -> the file's mapping. `base_dir` is searched before the current directory.
void include_model_file(YAML::Node& root, Origins& origins, const std::optional<fs::path>& base_dir) {
  const YAML::Node& const_root = root;
  const YAML::Node ref = const_root["model"];
  if (!ref.IsDefined() || !ref.IsScalar()) return;
  const fs::path rel = ref.Scalar();
  std::vector<fs::path> candidates;
  if (rel.is_relative() && base_dir) candidates.push_back((*base_dir / rel).lexically_normal());
  candidates.push_back(rel.lexically_normal());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  std::error_code ec;
  auto found = std::ranges::find_if(candidates, [&](const fs::path& p) { return fs::is_regular_file(p, ec); });
  if (found == candidates.end()) {
    std::vector<std::string> looked;
    for (const auto& c : candidates) looked.push_back("'" + c.string() + "'");
    fail(origins, "model", ref,
         "cannot open model file '" + rel.string() + "': No such file (looked for " + join(looked, " and ") + ")");
  }
  root["model"] = read_model_file(found->string());
  origins.set("model", {found->string(), true});
}

// ---- --set overrides ------------------------------------------------------------------------------------
void check_override_key(const std::string& option, const std::vector<std::string>& parts) {
  if (!fields_of(parts[0])) throw make_error(option, ": ", parts[0], ": ", unknown_section_message(parts[0]));
  if (parts.size() >= 2 && !std::ranges::count(*fields_of(parts[0]), parts[1]))
    throw make_error(option, ": ", parts[0], ".", parts[1], ": ", unknown_key(parts[0], parts[1]));
  if (parts.size() > 2)
    throw make_error(option, ": ", parts[0], ".", parts[1], " is a single setting with no key '", parts[2], "'");
}

void apply_override(YAML::Node& root, Origins& origins, const std::string& text) {
  const std::string option = "--set " + text;
  const auto eq = text.find('=');
  std::vector<std::string> parts;
  if (eq != std::string::npos) {
    std::string_view key(text.data(), eq);
    for (std::size_t start = 0;;) {
      const auto dot = key.find('.', start);
      parts.emplace_back(key.substr(start, dot == std::string_view::npos ? dot : dot - start));
      if (dot == std::string_view::npos) break;
      start = dot + 1;
    }
  }
  if (parts.empty() || std::ranges::any_of(parts, [](const auto& p) { return p.empty(); }))
    throw make_error(option, ": expected section.key=value, e.g. --set train.steps=100");
  const std::string key = text.substr(0, eq);
  check_override_key(option, parts);

  YAML::Node value;
  try {
    value = YAML::Load(text.substr(eq + 1));
  } catch (const YAML::Exception& e) {
    throw make_error(option, ": ", key, ": malformed value: ", e.msg);
  }
  const Origin from{option, false};

  if (parts.size() == 1) {  // a whole section
    if (parts[0] == "model" && value.IsScalar()) {
      root["model"] = value;
      origins.set("model", from);
      include_model_file(root, origins, std::nullopt);
      return;
    }
    if (!value.IsMap())
      throw make_error(option, ": ", key, ": expected a mapping of ", key, " settings",
                       key == "model" ? " or a model file" : "", ", got ", describe(value));
    for (auto it = value.begin(); it != value.end(); ++it) {  // merge key by key
      const std::string field = it->first.Scalar();
      check_override_key(option, {parts[0], field});
      YAML::Node section = root[parts[0]];
      if (!section.IsDefined()) origins.set(parts[0], from);
      section[field] = it->second;
      origins.set(key + "." + field, from);
    }
    return;
  }
  YAML::Node section = root[parts[0]];
  if (section.IsDefined() && !section.IsMap() && !section.IsNull())
    throw make_error(option, ": cannot set ", key, ": ", parts[0], " is ", describe(section), ", not a mapping");
  if (!section.IsDefined()) origins.set(parts[0], from);
  section[parts[1]] = value;
  origins.set(key, from);
}

// ---- the whole job ---------------------------------------------------------------------------------------
JobConfig build_job(YAML::Node root, const std::string& origin, const std::optional<fs::path>& base_dir,
                    const std::vector<std::string>& overrides) {
  Origins origins({origin, true});
  if (!root.IsDefined() || root.IsNull()) root.reset(YAML::Node(YAML::NodeType::Map));
  if (!root.IsMap())
    fail(origins, "", root,
         "expected a mapping of sections (" + join(schema::section_names()) + "), got " + describe(root));

  include_model_file(root, origins, base_dir);
  for (const auto& o : overrides) apply_override(root, origins, o);

  const YAML::Node& const_root = root;
  for (auto it = const_root.begin(); it != const_root.end(); ++it) {
    const YAML::Node& key = it->first;
    if (!key.IsScalar()) fail(origins, "", key, "expected a section name, got " + describe(key));
    if (!fields_of(key.Scalar())) fail(origins, key.Scalar(), key, unknown_section_message(key.Scalar()));
  }
  JobConfig job;
  job.source = origin;
  schema::visit_sections(job, [&](const char* name, auto& config) {
    read_section(const_root[name], name, config, origins);
  });
  validate(job);
  return job;
}

}  // namespace

JobConfig parse_job_config(const std::string& yaml_text, const std::string& origin,
                           const std::vector<std::string>& overrides) {
  return build_job(parse_yaml(yaml_text, origin), origin, fs::path(origin).parent_path(), overrides);
}

JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_job_config(read_file(path, "config file"), path, overrides);
}

ModelConfig load_model_config(const std::string& path) {
  const YAML::Node root = read_model_file(path);
  Origins origins({path, true});
  // A job file given where a model file is expected: say so rather than "unknown key".
  if (root["model"] && root["model"].IsMap())
    throw make_error(path, ": this looks like a job config (it has a 'model:' section); a model file's "
                     "top level is the model mapping itself");
  ModelConfig model;
  read_section(root, "model", model, origins);
  validate(model, path);
  return model;
}

}  // namespace strata::config

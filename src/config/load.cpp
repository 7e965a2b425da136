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
#include "yaml_read.hpp"

namespace strata::config {
namespace {

namespace fs = std::filesystem;
using schema::Rule;

using namespace detail;  // Origins, fail, describe, read_file, parse_yaml, read_value (yaml_read.hpp)

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
    const YAML::Node key = it->first;  // a copy: it->first lives in a temporary proxy
    if (!key.IsScalar()) fail(origins, section, key, "expected a key name, got " + describe(key));
    const std::string path = section + "." + key.Scalar();
    if (std::ranges::count(seen, key.Scalar())) fail(origins, path, key, "duplicate key");
    seen.push_back(key.Scalar());
    if (!std::ranges::count(fields, key.Scalar()))
      fail(origins, path, key, unknown_key(section, key.Scalar()));
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
  auto found =
      std::ranges::find_if(candidates, [&](const fs::path& p) { return fs::is_regular_file(p, ec); });
  if (found == candidates.end()) {
    std::vector<std::string> looked;
    for (const auto& c : candidates) looked.push_back("'" + c.string() + "'");
    fail(origins, "model", ref,
         "cannot open model file '" + rel.string() + "': No such file (looked for " + join(looked, " and ") +
             ")");
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
    throw make_error(option, ": ", parts[0], ".", parts[1], " is a single setting with no key '", parts[2],
                     "'");
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
    throw make_error(option, ": cannot set ", key, ": ", parts[0], " is ", describe(section),
                     ", not a mapping");
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
    const YAML::Node key = it->first;  // a copy: it->first lives in a temporary proxy
    if (!key.IsScalar()) fail(origins, "", key, "expected a section name, got " + describe(key));
    if (!fields_of(key.Scalar())) fail(origins, key.Scalar(), key, unknown_section_message(key.Scalar()));
  }
  JobConfig job;
  job.source = origin;
  schema::visit_sections(
      job, [&](const char* name, auto& config) { read_section(const_root[name], name, config, origins); });
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
    throw make_error(path,
                     ": this looks like a job config (it has a 'model:' section); a model file's "
                     "top level is the model mapping itself");
  ModelConfig model;
  read_section(root, "model", model, origins);
  validate(model, path);
  return model;
}

}  // namespace strata::config

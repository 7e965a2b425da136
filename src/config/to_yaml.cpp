// to_yaml(): the typed config back as a job file, every field written (defaults included) so
// the file records exactly what ran. parse_job_config(to_yaml(job)) gives `job` back; doubles
// are written in their shortest round-trip form.
#include <yaml-cpp/yaml.h>

#include "schema.hpp"
#include "strata/config/load.hpp"

namespace strata::config {
namespace {

template <class T>
void emit(YAML::Emitter& out, const T& v) {
  if constexpr (std::is_same_v<T, bool>)
    out << (v ? "true" : "false");
  else if constexpr (std::is_same_v<T, double>)
    out << schema::format_double(v);
  else if constexpr (std::is_arithmetic_v<T>)
    out << v;
  else if constexpr (std::is_same_v<T, std::string>)
    out << YAML::DoubleQuoted << v;
  else if constexpr (schema::ConfigEnum<T>)
    out << schema::enum_name(v);
  else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto& s : v) out << YAML::DoubleQuoted << s;
    out << YAML::EndSeq;
  } else if constexpr (schema::is_number_list<T>) {
    out << YAML::Flow << YAML::BeginSeq;
    for (const auto x : v) emit(out, x);
    out << YAML::EndSeq;
  } else if constexpr (std::is_same_v<T, std::vector<DatasetSpec>>) {
    out << YAML::BeginSeq;
    for (const auto& d : v)
      out << YAML::Flow << YAML::BeginMap << YAML::Key << "path" << YAML::Value << YAML::DoubleQuoted
          << d.path << YAML::Key << "weight" << YAML::Value << schema::format_double(d.weight)
          << YAML::EndMap;
    out << YAML::EndSeq;
  } else if constexpr (std::is_same_v<T, std::vector<MixturePoint>>) {
    out << YAML::BeginSeq;
    for (const auto& p : v) {
      out << YAML::Flow << YAML::BeginMap << YAML::Key << "tokens" << YAML::Value << p.tokens << YAML::Key
          << "weights" << YAML::Value << YAML::Flow << YAML::BeginSeq;
      for (double w : p.weights) out << schema::format_double(w);
      out << YAML::EndSeq << YAML::EndMap;
    }
    out << YAML::EndSeq;
  }
}

}  // namespace

std::string to_yaml(const JobConfig& job) {
  JobConfig copy = job;  // the visitors take mutable structs; nothing is written
  YAML::Emitter out;
  if (!job.source.empty()) out << YAML::Comment("strata job config, loaded from " + job.source);
  out << YAML::BeginMap;
  schema::visit_sections(copy, [&](const char* section, auto& config) {
    out << YAML::Key << section << YAML::Value << YAML::BeginMap;
    schema::visit_fields(config, [&](const char* name, auto& value, schema::Rule) {
      out << YAML::Key << name << YAML::Value;
      emit(out, value);
    });
    out << YAML::EndMap;
  });
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

}  // namespace strata::config

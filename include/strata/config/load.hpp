// Loading and validating configuration files.
#pragma once
#include <string>
#include <vector>

#include "strata/config/config.hpp"

namespace strata::config {

// Load a job config from `path`, apply `overrides` ("a.b.c=value", later ones win) and
// validate. Throws strata::Error naming file/option, key path and expectation.
JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Parse a job config from YAML text (for tests); `origin` names it in messages and its folder
// is where a relative `model:` file is looked for first. Overrides and validation as above.
JobConfig parse_job_config(const std::string& yaml_text, const std::string& origin,
                           const std::vector<std::string>& overrides = {});

// A model config on its own (configs/models/*.yaml: the top level is the model mapping),
// checked with validate(ModelConfig).
ModelConfig load_model_config(const std::string& path);

// Semantic checks across fields (heads divide width, ...). Throws strata::Error.
void validate(const JobConfig& job);

// The model's own checks (ranges, heads divide width, GQA groups, even RoPE head size);
// part of validate(JobConfig). `origin` prefixes the message when not empty.
void validate(const ModelConfig& model, const std::string& origin = "");

// The config back as YAML (written next to the run's metrics, and into checkpoints).
std::string to_yaml(const JobConfig& job);

// Enum names as they appear in YAML.
const char* to_string(NormKind v);
const char* to_string(MlpKind v);
const char* to_string(PositionKind v);
const char* to_string(AttentionKind v);
const char* to_string(RecomputeKind v);
const char* to_string(ScheduleKind v);
const char* to_string(PipelineSchedule v);
const char* to_string(DataSource v);
const char* to_string(DeviceKind v);
const char* to_string(ReduceDType v);
const char* to_string(CpMode v);
const char* to_string(CurriculumOrder v);
const char* to_string(CurriculumPacing v);
const char* to_string(ObjectiveKind v);

}  // namespace strata::config

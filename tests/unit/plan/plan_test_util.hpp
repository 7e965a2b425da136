// Shared helpers for the planner tests: shipped model and cluster files by name.
#pragma once
#include <string>

#include "strata/config/cluster.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/plan/layout.hpp"

namespace strata::plan::test {

inline std::string model_path(const std::string& name) {
  return std::string(STRATA_SOURCE_DIR) + "/configs/models/" + name + ".yaml";
}
inline std::string cluster_path(const std::string& name) {
  return std::string(STRATA_SOURCE_DIR) + "/configs/clusters/" + name + ".yaml";
}
inline config::ModelConfig model(const std::string& name) {
  return config::load_model_config(model_path(name));
}
inline config::ClusterConfig cluster(const std::string& name) {
  return config::load_cluster_config(cluster_path(name));
}

// A GPT layer as Korthikanti et al. 2022 assume it: multi-head attention, 4h GELU MLP.
inline config::ModelConfig gpt(int layers, int hidden, int heads, int vocab = 51200, int seq = 2048) {
  config::ModelConfig m;
  m.name = "gpt_" + std::to_string(layers) + "x" + std::to_string(hidden);
  m.num_layers = layers, m.d_model = hidden, m.num_heads = heads, m.vocab_size = vocab, m.max_seq_len = seq;
  return m;
}

}  // namespace strata::plan::test

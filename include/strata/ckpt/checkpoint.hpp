// Logical checkpoints (DESIGN.md invariant 4; docs/checkpoints.md has the file layout).
//
// One HDF5 file per saved step, <ckpt.dir>/step_<8 digits>.h5, written collectively with
// parallel HDF5: every parameter and both Adam moments of every tensor stored whole, with the
// global shape (the unpadded vocabulary) and the global layer index, each rank writing only
// the hyperslabs it owns (no gathering). Written as .step_<N>.h5.tmp, published by an atomic
// rename, then <ckpt.dir>/latest (the file name) is replaced atomically. Any layout loads any
// checkpoint: a rank reads the hyperslabs of its own shard and ZeRO pieces.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "strata/comm/rank_grid.hpp"
#include "strata/config/config.hpp"
#include "strata/model/parameters.hpp"

namespace strata::ckpt {

inline constexpr const char* kFormat = "strata-checkpoint";
inline constexpr int kFormatVersion = 1;

// The bad-step guard's state (train/guard.hpp) at a checkpoint, stored in the root attribute
// `guard` so a resumed run skips and rolls back exactly as the uninterrupted run would. A
// checkpoint without the attribute (written before the guard existed) reads as the defaults.
struct GuardState {
  double loss_mean = 0;    // running mean of the good steps' losses
  long loss_count = 0;     // good steps in it
  long bad_streak = 0;     // consecutive bad steps up to the checkpoint's step
  long skipped_steps = 0;  // bad steps skipped (no update) in the whole run
  long rollbacks = 0;      // rollbacks in the whole run
  // Global-sample ranges [begin, end) skipped by rollbacks, in order.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> skipped_samples;
  bool operator==(const GuardState&) const = default;
};
// The attribute's text ("key value" lines; doubles exactly, with 17 digits) and back; parsing
// throws naming `file` on a malformed line.
std::string format_guard(const GuardState& g);
GuardState parse_guard(const std::string& text, const std::string& file);

// What a checkpoint says about itself (root attributes and /train), read without the tensors.
struct CheckpointInfo {
  std::string file;  // the resolved .h5 path
  long step = 0;     // optimizer steps taken
  std::uint64_t consumed_samples = 0;
  std::uint64_t tokens_seen = 0;
  std::string layout;                                         // "tp2-pp2-dp2 zero1" it was written with
  std::string config_yaml;                                    // the full job config it was written with
  std::string tokenizer_hash;                                 // "" when the run had none
  std::map<std::string, std::uint64_t> consumed_per_dataset;  // dataset path -> samples
  GuardState guard;
};

// A directory resolves through its `latest` pointer; a file is returned as it is. Throws
// strata::Error naming the path when neither exists or `latest` names a missing file.
std::string resolve(const std::string& path);
// The latest published checkpoint in `dir`, or "" when there is none.
std::string find_latest(const std::string& dir);

// Rank-local read of the metadata (opens the file on this process only).
CheckpointInfo read_info(const std::string& path);

// One stored tensor as listed in the file: /model/<name>, /optim/exp_avg/<name>, ...
struct StoredTensor {
  std::string path;            // full dataset path, e.g. "/model/layers.0.attn.wq.weight"
  std::string name;            // the parameter's global name, e.g. "layers.0.attn.wq.weight"
  Shape shape;                 // global shape (vocabulary tables: the unpadded vocab_size rows)
  int layer = -1;              // global layer index; -1 for embeddings, final norm, output layer
  std::uint64_t checksum = 0;  // checksum() of the stored values
};
// Every tensor dataset in the file, /model first, in file order. Rank-local.
std::vector<StoredTensor> list_tensors(const std::string& file);
// A whole tensor read on this process (tools: inspect, export); throws naming the tensor.
std::vector<float> read_tensor(const std::string& file, const std::string& dataset_path);

// The layout-independent checksum stored with every tensor: the sum over elements of
// splitmix64(global_flat_index * 0x9E3779B97F4A7C15 ^ fp32_bits(value)), mod 2^64. A sum, so
// every rank adds up the elements it writes and the parts are summed over ranks.
std::uint64_t element_hash(std::uint64_t global_index, float value);
std::uint64_t checksum(const float* values, std::int64_t n, std::uint64_t first_index = 0);

// Loads the parameters of one model chunk's table (any TP shard, any layer range) into
// `params` (host memory in the chunk's flat layout), reading only this rank's hyperslabs.
// Collective over the grid's world (the ranks that open the file together; a grid over
// MPI_COMM_SELF for one process); each element is checksummed once over its TP group (so
// every data-parallel copy checks its own, as strata eval --per-document loads one per DP
// rank). Checks every tensor's shape against the table and the stored checksums, and throws
// naming the tensor on any mismatch.
void load_parameters(const std::string& path, const model::ParameterTable& table, float* params,
                     comm::RankGrid& grid);

}  // namespace strata::ckpt

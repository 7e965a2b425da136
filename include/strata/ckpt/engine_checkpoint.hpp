// Saving and loading a training run's state: every rank's engine (its chunks' parameter shards
// and its DP optimizer's Adam moments, through the engine's host state views: the engine's own
// buffers on the CPU, host staging of the fp32 master weights and moments on GPUs) into one
// logical checkpoint file and back, in any layout and on any backend (checkpoint.hpp has the
// format; docs/checkpoints.md the details).
//
// Who writes what (each stored element is written by exactly one rank):
//   a tensor's TP shard is written by its chunk on TP rank 0 when the tensor is replicated
//   over TP, by every TP rank for its own rows/columns otherwise; the tied copy of embed.wte
//   on the last pipeline stage is never written (the first stage's is the same tensor);
//   within a DP group, the flat buffer is partitioned: ZeRO-1 ranks write the pieces whose
//   Adam moments they own, ZeRO-0 ranks an even 1/dp split of the buffer. Vocabulary padding
//   rows are not stored.
// Reading is the mirror image for the reading layout: every rank reads its whole shard of the
// parameters and its pieces of the moments, and the checksums are verified on the reading
// layout's own partition, so every stored element is checked once.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "strata/ckpt/checkpoint.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/parallel/engine.hpp"

namespace strata::ckpt {

// What a run needs besides the tensors to continue exactly where it stopped. The learning
// rate schedule is a function of `step`, and every random draw (initialisation, sampling,
// masking) a pure function of (seed, global index), so step, seed and the sampler's position
// are the whole RNG and schedule state.
struct TrainState {
  long step = 0;                        // optimizer steps completed
  std::uint64_t consumed_samples = 0;   // global samples consumed (step * global batch)
  std::uint64_t tokens_seen = 0;
  std::uint64_t seed = 0;
  double lr = 0;                        // the last learning rate applied (for inspection)
  std::vector<std::pair<std::string, std::uint64_t>> consumed_per_dataset;
  std::string tokenizer_hash;
  std::string layout;                   // what it was written with, e.g. "tp2-pp2-dp2 zero1" (load only)
};

struct SaveResult {
  std::string file;          // the published checkpoint
  double seconds = 0;        // from the first write to the published `latest`
  std::uint64_t bytes = 0;   // file size
  double gb_per_s() const { return seconds > 0 ? double(bytes) / seconds / 1e9 : 0.0; }
};

class EngineCheckpointer {
 public:
  // This rank's hyperslabs are planned at the first save or load, from the engine's state
  // views (so a GPU run that never saves makes no host staging).
  EngineCheckpointer(const config::JobConfig& job, parallel::Engine& engine, comm::RankGrid& grid);
  ~EngineCheckpointer();
  EngineCheckpointer(const EngineCheckpointer&) = delete;
  EngineCheckpointer& operator=(const EngineCheckpointer&) = delete;

  // Collective. Writes <dir>/.step_<N>.h5.tmp, renames it to <dir>/step_<N>.h5, replaces
  // <dir>/latest, then deletes all but the newest `keep` checkpoints (0: keep all).
  SaveResult save(const std::string& dir, const TrainState& state, int keep);
  // Collective. Validates the file against the job (model shape, vocabulary, tokenizer hash,
  // every tensor's shape and checksum) before anything is used, loads the parameters, the
  // Adam moments and the optimizer step into the engine, and returns the stored state.
  // Throws (on every rank alike) naming the file and the tensor or key at fault.
  TrainState load(const std::string& file, const std::string& expected_tokenizer_hash);

  struct Plan;

 private:
  void prepare();  // the plan from the engine's state views, at first use

  const config::JobConfig& job_;
  parallel::Engine& engine_;
  comm::RankGrid& grid_;
  std::vector<parallel::StateView> chunks_;
  std::unique_ptr<Plan> plan_;
};

// Removes <dir>/.step_*.h5.tmp left by a save that was killed (rank-local; call on one rank).
void remove_stale_temporaries(const std::string& dir);

}  // namespace strata::ckpt

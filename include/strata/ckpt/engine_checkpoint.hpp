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
//
// Asynchronous saves (ckpt.async, docs/checkpoints.md "Asynchronous saves"): at a step boundary
// the training thread takes a snapshot — on GPUs the state goes from the device to pinned host
// staging (pull_state), on the CPU the part this rank writes is copied out of the engine's live
// buffers — and a background thread writes and publishes it while training goes on. The writer's
// collectives (parallel HDF5's, the checksum all-reduce, barriers) run on the grid's io group, a
// duplicate of the world that nothing else uses, so they never interleave with the training
// thread's; its HDF5 calls hold h5::Lock and yield it between datasets to the data loader.
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "strata/ckpt/checkpoint.hpp"
#include "strata/comm/rank_grid.hpp"
#include "strata/core/faults.hpp"
#include "strata/parallel/engine.hpp"

namespace strata::ckpt {

// What a run needs besides the tensors to continue exactly where it stopped. The learning
// rate schedule is a function of `step`, and every random draw (initialisation, sampling,
// masking) a pure function of (seed, global index), so step, seed and the sampler's position
// are the whole RNG and schedule state; the bad-step guard's state makes its decisions repeat.
struct TrainState {
  long step = 0;                       // optimizer steps completed (skipped bad steps count)
  std::uint64_t consumed_samples = 0;  // the sampler's position: global samples consumed or skipped
  std::uint64_t tokens_seen = 0;
  std::uint64_t seed = 0;
  double lr = 0;  // the last learning rate applied (for inspection)
  std::vector<std::pair<std::string, std::uint64_t>> consumed_per_dataset;
  std::string tokenizer_hash;
  std::string layout;  // what it was written with, e.g. "tp2-pp2-dp2 zero1" (load only)
  GuardState guard;    // checkpoint.hpp; defaults when the file has none
};

struct SaveResult {
  long step = 0;
  std::string file;         // the published checkpoint
  double seconds = 0;       // from the first write to the published `latest`
  std::uint64_t bytes = 0;  // file size
  bool background = false;  // written by the background thread
  double gb_per_s() const { return seconds > 0 ? double(bytes) / seconds / 1e9 : 0.0; }
};

// What a save cost the training thread.
struct SaveCost {
  double wait_s = 0;      // waiting for the previous background save to be published
  double snapshot_s = 0;  // the copy to host memory (a synchronous save: the whole save)
};

class EngineCheckpointer {
 public:
  // This rank's hyperslabs are planned at the first save or load, from the engine's state
  // views (so a GPU run that never saves makes no host staging). With job.ckpt.async and an MPI
  // that provides MPI_THREAD_MULTIPLE, saves can run in the background; the grid's io group is
  // made here (collective: every rank constructs the checkpointer at the same point).
  // `faults`: tests only (core/faults.hpp: a save held halfway); production passes none.
  EngineCheckpointer(const config::JobConfig& job, parallel::Engine& engine, comm::RankGrid& grid,
                     const FaultHooks* faults = nullptr);
  // Waits for a background save still running (its failure is reported on stderr, not thrown).
  ~EngineCheckpointer();
  EngineCheckpointer(const EngineCheckpointer&) = delete;
  EngineCheckpointer& operator=(const EngineCheckpointer&) = delete;

  // Plans this rank's part of a save and allocates the host memory saves use — on GPUs the
  // pinned staging of the state, with async saves on the CPU the snapshot buffer (12 bytes per
  // parameter this rank writes) — so that the step loop allocates nothing. Returns its bytes.
  // Called by the first save otherwise.
  std::size_t prepare_saves();
  // Whether save_async() writes in the background (else it saves synchronously), and why not.
  bool async() const { return async_; }
  const std::string& sync_reason() const { return sync_reason_; }

  // Collective. Writes <dir>/.step_<N>.h5.tmp, renames it to <dir>/step_<N>.h5, replaces
  // <dir>/latest, then deletes all but the newest `keep` checkpoints (0: keep all). Waits for a
  // background save first. Returns when the checkpoint is published.
  SaveResult save(const std::string& dir, const TrainState& state, int keep);
  // Collective, from the training thread of every rank at the same step boundary: waits for
  // the previous background save (rethrowing its failure), snapshots the state and starts
  // writing it on the background thread (or, when !async(), saves it here). The result comes
  // from take_finished() once it is published.
  SaveCost save_async(const std::string& dir, const TrainState& state, int keep);
  // Waits for the background save, if any (rethrows its failure). Every rank's writer finishes
  // the same save, so calling it on every rank is a flush of the whole job's save.
  void wait();
  // The saves published since the last call, oldest first (a background one once it has
  // finished); rethrows a background failure. Rank-local and cheap: call it every step.
  std::vector<SaveResult> take_finished();
  bool pending() const { return writer_.joinable(); }
  // A background save is being written right now (started and not finished).
  bool writing() const { return writer_.joinable() && !writer_done_.load(); }

  // Collective. Validates the file against the job (model shape, vocabulary, tokenizer hash,
  // every tensor's shape and checksum) before anything is used, loads the parameters, the
  // Adam moments and the optimizer step into the engine, and returns the stored state.
  // Throws (on every rank alike) naming the file and the tensor or key at fault. Waits for a
  // background save first.
  TrainState load(const std::string& file, const std::string& expected_tokenizer_hash);

  struct Plan;
  struct Snapshot;

 private:
  void prepare();  // the plan from the engine's state views, at first use
  // Fills `snap` at a step boundary: pull_state, and with `copy` the written part of live views
  // into the snapshot buffer. Returns its seconds.
  double take_snapshot(Snapshot& snap, const std::string& dir, const TrainState& st, int keep, bool copy);
  // Writes and publishes `snap` with collectives over `group` (parallel HDF5 over `handle`);
  // `yield`: let other threads' HDF5 calls in between datasets.
  SaveResult write(const Snapshot& snap, comm::Communicator& group, MPI_Comm handle, bool yield);
  void join_writer();  // joins a finished or running writer; its result or error into finished_

  const config::JobConfig& job_;
  parallel::Engine& engine_;
  comm::RankGrid& grid_;
  const FaultHooks::SavePause save_pause_;  // tests only; defaults: no pause
  std::vector<parallel::StateView> chunks_;
  std::unique_ptr<Plan> plan_;
  bool async_ = false;
  std::string sync_reason_;
  comm::Communicator* io_ = nullptr;  // the grid's io group and its handle (async only)
  MPI_Comm io_handle_ = MPI_COMM_NULL;
  std::unique_ptr<Snapshot> background_;  // the snapshot the writer works on
  std::vector<float> snapshot_buffer_;    // live views: the copy of what this rank writes
  std::thread writer_;
  std::atomic<bool> writer_done_{false};
  std::exception_ptr writer_error_;
  SaveResult writer_result_;
  std::vector<SaveResult> finished_;
};

// Removes <dir>/.step_*.h5.tmp left by a save that was killed (rank-local; call on one rank).
void remove_stale_temporaries(const std::string& dir);

}  // namespace strata::ckpt

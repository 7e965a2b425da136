// Verifying checkpoints without loading them: `strata ckpt verify DIR|FILE`, and the choice of
// the checkpoint `train.resume: auto` continues from (the newest INTACT one of the directory).
//
// A checkpoint is intact when
//   1. it opens as HDF5 (a truncated file does not: its superblock records the full size),
//   2. it is a strata checkpoint of a format version this strata reads, with every root
//      attribute and the /optim step,
//   3. its tensors are those of the model config stored in it — every /model, /optim/exp_avg
//      and /optim/exp_avg_sq tensor of that model with its global shape, float32, with its
//      `layer` and `checksum` attributes, and nothing else — and
//   4. every tensor's values sum to its stored checksum (checkpoint.hpp: ckpt::checksum).
// Step 4 reads the whole file. Over a group of ranks the tensors are cut into row ranges of
// at least kVerifyPieceElements elements, spread over the ranks by size (each rank reads only
// its pieces, with its own rank-local HDF5 handle), and the partial checksums are summed with
// one all-reduce, so every rank reaches the same verdict.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "strata/comm/communicator.hpp"

namespace strata::ckpt {

// Elements read at a time per rank, and the smallest piece a tensor is split into (16 MiB).
inline constexpr std::int64_t kVerifyPieceElements = std::int64_t(1) << 22;

struct TensorVerdict {
  std::string path;            // "/optim/exp_avg/layers.1.mlp.fc.weight"
  std::uint64_t stored = 0;    // the checksum attribute
  std::uint64_t computed = 0;  // recomputed from the values (when readable)
  bool readable = true;        // every piece of it could be read
  bool ok() const { return readable && stored == computed; }
};

struct VerifyResult {
  std::string file;
  long step = -1;  // the stored step; -1 when unreadable
  std::uint64_t file_bytes = 0;
  std::uint64_t tensor_bytes = 0;      // bytes of tensor data read
  std::vector<TensorVerdict> tensors;  // every tensor listed in the file (empty when it did not open)
  // One line per problem, each naming the file and the tensor or key, in the words of the
  // training load ("checkpoint 'F': tensor /model/x fails its checksum (stored A, read B): the
  // file is corrupt"); empty when the checkpoint is intact.
  std::vector<std::string> problems;
  double seconds = 0;  // wall time of the verification
  bool intact() const { return problems.empty(); }
};

// Verifies one checkpoint file. A bad file is a result, not an exception (the result says what
// is wrong); only a missing file throws. Collective over `group` when it is not null (every
// rank calls it with the same file and gets the same result); null: this process alone.
// `piece_elements`: the piece and read size (tests make it small to split small tensors).
VerifyResult verify_checkpoint(const std::string& file, comm::Communicator* group = nullptr,
                               std::int64_t piece_elements = kVerifyPieceElements);

// The step_<N>.h5 checkpoints of `dir`, newest (highest N) first; .tmp files of an interrupted
// save are not checkpoints and are not listed. Empty when there are none (or no directory).
std::vector<std::string> list_checkpoints(const std::string& dir);

// The checkpoint `train.resume: auto` continues from, verified: the one `dir/latest` names if
// it is intact, else the newest intact checkpoint older than it. Without `latest` but with
// step files (the pointer lost or deleted) the newest intact step file. "" when the directory
// holds no checkpoint at all (a fresh start).
// Rank 0 of `group` logs a warning for every checkpoint it skips (file, and the tensor or key
// at fault) and one saying which checkpoint the run resumes from instead. Throws (on every
// rank alike) when checkpoints exist but none is intact, listing them: a person decides then.
// Collective over `group` (the job: grid.world_group()); null: this process alone.
struct IntactCheckpoint {
  std::string file;                   // "" for a fresh start
  std::vector<VerifyResult> skipped;  // newer checkpoints found damaged, newest first
  std::string latest;                 // what `latest` names ("" when absent)
};
IntactCheckpoint find_intact_checkpoint(const std::string& dir, comm::Communicator* group);
// The same, returning the file: the drop-in for find_latest() in the trainer's resume_target().
std::string find_latest_intact(const std::string& dir, comm::Communicator& group);

}  // namespace strata::ckpt

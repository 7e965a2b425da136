// Hyperslab transfers between a rank's shard of a tensor and its stored dataset, shared by the
// engine checkpointer and load_parameters. Private to src/ckpt.
#pragma once
#include <hdf5.h>

#include <string>
#include <vector>

#include "slabs.hpp"
#include "strata/data/hdf5_util.hpp"

namespace strata::ckpt::detail {

// Local elements [r.begin, r.end) of a shard and where their values are (contiguous).
struct Seg {
  Range r;
  float* ptr = nullptr;
};

// Writes (or reads) `segs` of shard `p` to (from) dataset `dset` with transfer property `dxpl`
// (when it is collective, every rank of the file's communicator calls it, with no segments if
// it has none; `p` may then be null). Values go straight from/to memory when the segments sit at
// one base pointer in shard order, else through `staging`.
void transfer(bool write, hid_t dset, const model::ParamInfo* p, const std::vector<Seg>& segs,
              std::vector<float>& staging, hid_t dxpl, const std::string& where);

// The dataset path of a tensor kind: "/model/<name>", "/optim/exp_avg/<name>", ...
inline constexpr const char* kKindGroups[3] = {"/model/", "/optim/exp_avg/", "/optim/exp_avg_sq/"};

// Global layer index in a parameter name ("layers.11.mlp.fc.weight" -> 11), or -1.
int layer_of(const std::string& name);

// Opens a checkpoint for reading (parallel over `comm` when it is not MPI_COMM_NULL) and checks
// the format attributes; the error names the file and says truncated/corrupt.
h5::Id open_checkpoint(const std::string& file, MPI_Comm comm);

// Opens /<group>/<name> and checks its shape; errors name the tensor and both shapes.
h5::Id open_tensor(hid_t file, const std::string& dataset_path, const Shape& expected,
                   const std::string& where);

}  // namespace strata::ckpt::detail

// The checkpoint file as a file: finding it, its metadata, whole-tensor reads for the tools,
// and loading one chunk's parameters (inference, evaluation).
#include "strata/ckpt/checkpoint.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "io.hpp"
#include "strata/core/error.hpp"

namespace strata::ckpt {

namespace fs = std::filesystem;
using namespace h5;
using detail::Seg;

std::string find_latest(const std::string& dir) {
  const fs::path pointer = fs::path(dir) / "latest";
  std::ifstream in(pointer);
  if (!in) return "";
  std::string name;
  std::getline(in, name);
  if (name.empty()) return "";
  const fs::path file = fs::path(dir) / name;
  if (!fs::exists(file))
    throw make_error("checkpoint pointer '", pointer.string(), "' names '", name, "', which does not exist");
  return file.string();
}

std::string resolve(const std::string& path) {
  if (fs::is_directory(path)) {
    const std::string latest = find_latest(path);
    if (latest.empty())
      throw make_error("checkpoint directory '", path,
                       "' has no 'latest' pointer (no checkpoint was published there)");
    return latest;
  }
  if (!fs::exists(path)) throw make_error("checkpoint '", path, "' does not exist");
  return path;
}

namespace {

std::map<std::string, std::uint64_t> parse_consumed(const std::string& text) {
  std::map<std::string, std::uint64_t> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto tab = line.rfind('\t');
    if (tab != std::string::npos) out[line.substr(0, tab)] = std::stoull(line.substr(tab + 1));
  }
  return out;
}

}  // namespace

std::string format_guard(const GuardState& g) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "loss_mean %.17g\nloss_count %ld\nbad_streak %ld\nskipped_steps %ld\nrollbacks %ld\n",
                g.loss_mean, g.loss_count, g.bad_streak, g.skipped_steps, g.rollbacks);
  std::string out = buf;
  for (const auto& [begin, end] : g.skipped_samples)
    out += "skipped_samples " + std::to_string(begin) + " " + std::to_string(end) + "\n";
  return out;
}

GuardState parse_guard(const std::string& text, const std::string& file) {
  GuardState g;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    std::istringstream words(line);
    std::string key;
    words >> key;
    bool ok = true;
    if (key == "loss_mean")
      ok = bool(words >> g.loss_mean);
    else if (key == "loss_count")
      ok = bool(words >> g.loss_count);
    else if (key == "bad_streak")
      ok = bool(words >> g.bad_streak);
    else if (key == "skipped_steps")
      ok = bool(words >> g.skipped_steps);
    else if (key == "rollbacks")
      ok = bool(words >> g.rollbacks);
    else if (key == "skipped_samples") {
      std::uint64_t b = 0, e = 0;
      ok = bool(words >> b >> e) && b <= e;
      g.skipped_samples.emplace_back(b, e);
    } else {
      ok = false;
    }
    if (!ok)
      throw make_error("checkpoint '", file, "': root attribute 'guard' has a malformed line '", line, "'");
  }
  return g;
}

CheckpointInfo read_info(const std::string& path) {
  Lock lock;
  CheckpointInfo info;
  info.file = resolve(path);
  const Id f = detail::open_checkpoint(info.file, MPI_COMM_NULL);
  const hid_t root = f.get();
  info.step = long(read_attr_int<std::int64_t>(root, "step", H5T_NATIVE_INT64, info.file));
  info.consumed_samples =
      read_attr_int<std::uint64_t>(root, "consumed_samples", H5T_NATIVE_UINT64, info.file);
  info.tokens_seen = read_attr_int<std::uint64_t>(root, "tokens_seen", H5T_NATIVE_UINT64, info.file);
  info.layout = read_attr_string(root, "layout", info.file);
  info.config_yaml = read_attr_string(root, "config", info.file);
  info.tokenizer_hash = read_attr_string(root, "tokenizer_hash", info.file);
  info.consumed_per_dataset = parse_consumed(read_attr_string(root, "consumed_per_dataset", info.file));
  if (has_attr(root, "guard"))
    info.guard = parse_guard(read_attr_string(root, "guard", info.file), info.file);
  return info;
}

std::vector<StoredTensor> list_tensors(const std::string& path) {
  Lock lock;
  const std::string file = resolve(path);
  const Id f = detail::open_checkpoint(file, MPI_COMM_NULL);
  std::vector<StoredTensor> out;
  for (const char* group : detail::kKindGroups) {
    const std::string g(group, std::strlen(group) - 1);  // without the trailing '/'
    if (H5Lexists(f.get(), g.c_str(), H5P_DEFAULT) <= 0) continue;
    Id grp(check(H5Gopen2(f.get(), g.c_str(), H5P_DEFAULT), file, g.c_str()), H5Gclose);
    H5G_info_t gi;
    check(H5Gget_info(grp.get(), &gi), file, g.c_str());
    for (hsize_t i = 0; i < gi.nlinks; ++i) {
      // Creation order is the file order (tensors are created in model order).
      const ssize_t len =
          H5Lget_name_by_idx(grp.get(), ".", H5_INDEX_CRT_ORDER, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
      std::string name(std::size_t(std::max<ssize_t>(len, 0)), '\0');
      H5Lget_name_by_idx(grp.get(), ".", H5_INDEX_CRT_ORDER, H5_ITER_INC, i, name.data(), name.size() + 1,
                         H5P_DEFAULT);
      StoredTensor t;
      t.name = name;
      t.path = std::string(group) + name;
      Id d(check(H5Dopen2(grp.get(), name.c_str(), H5P_DEFAULT), file, t.path.c_str()), H5Dclose);
      Id space(H5Dget_space(d.get()), H5Sclose);
      hsize_t dims[8] = {};
      const int nd = H5Sget_simple_extent_dims(space.get(), dims, nullptr);
      for (int k = 0; k < nd; ++k) t.shape.push_back(std::int64_t(dims[k]));
      t.layer = read_attr_int<int>(d.get(), "layer", H5T_NATIVE_INT, t.path);
      t.checksum = read_attr_int<std::uint64_t>(d.get(), "checksum", H5T_NATIVE_UINT64, t.path);
      out.push_back(std::move(t));
    }
  }
  return out;
}

std::vector<float> read_tensor(const std::string& path, const std::string& dataset_path) {
  Lock lock;
  const std::string file = resolve(path);
  const Id f = detail::open_checkpoint(file, MPI_COMM_NULL);
  if (H5Lexists(f.get(), dataset_path.c_str(), H5P_DEFAULT) <= 0)
    throw make_error("checkpoint '", file, "' has no tensor ", dataset_path);
  Id d(check(H5Dopen2(f.get(), dataset_path.c_str(), H5P_DEFAULT), file, dataset_path.c_str()), H5Dclose);
  Id space(H5Dget_space(d.get()), H5Sclose);
  std::vector<float> out(std::size_t(H5Sget_simple_extent_npoints(space.get())));
  check(H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()), file,
        ("read " + dataset_path + " (truncated or corrupt file?)").c_str());
  return out;
}

void load_parameters(const std::string& path, const model::ParameterTable& table, float* params,
                     comm::RankGrid& grid) {
  Lock lock;
  const std::string file = resolve(path);
  const Id f = detail::open_checkpoint(file, grid.world_handle());  // HDF5 takes the MPI handle
  Id dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_INDEPENDENT);  // as EngineCheckpointer::load
  std::vector<float> staging;
  std::vector<std::uint64_t> sums, stored;
  for (const model::ParamInfo& p : table.entries()) {
    const std::string dpath = std::string(detail::kKindGroups[0]) + p.name;
    Id d(check(H5Dopen2(f.get(), dpath.c_str(), H5P_DEFAULT), file,
               ("open tensor " + dpath + " (missing: written for another model?)").c_str()),
         H5Dclose);
    {
      // Stored vocabulary tables have the unpadded rows: this shard's real rows must be what
      // the stored vocabulary leaves it (every shard checks its own part).
      Id space(H5Dget_space(d.get()), H5Sclose);
      hsize_t dims[8] = {};
      const int nd = H5Sget_simple_extent_dims(space.get(), dims, nullptr);
      Shape s;
      for (int k = 0; k < nd; ++k) s.push_back(std::int64_t(dims[k]));
      Shape expected = p.global_shape;
      bool ok = true;
      if (p.real_rows >= 0 && !s.empty()) {
        expected[0] = s[0];
        ok = std::clamp<std::int64_t>(s[0] - p.split_offset, 0, p.shape[0]) == p.real_rows;
      }
      if (s != expected || !ok)
        throw make_error(
            "checkpoint '", file, "': tensor ", dpath, " has shape ", shape_string(s),
            " but the model needs ", shape_string(p.global_shape),
            p.real_rows >= 0 ? " (rows: the vocabulary before padding for tensor parallelism)" : "");
    }
    const std::int64_t n = detail::stored_numel(p);
    detail::transfer(false, d.get(), &p, {Seg{{0, n}, params + p.offset}}, staging, dxpl.get(),
                     file + ":" + dpath);
    std::fill(params + p.offset + n, params + p.offset + p.numel, 0.0f);
    // Each element counted once over the TP group: split tensors by every rank, replicated ones
    // by TP rank 0 (the copy that counts in the gradient norm).
    const bool owner = p.split != model::TpSplit::replicated || p.counts_in_norm;
    sums.push_back(owner ? detail::hash_range(p, {0, n}, params + p.offset) : 0);
    stored.push_back(read_attr_int<std::uint64_t>(d.get(), "checksum", H5T_NATIVE_UINT64, dpath));
  }
  grid.tp_group().all_reduce(sums.data(), sums.size(), DType::u64);  // each copy of the model checks itself
  for (std::size_t i = 0; i < sums.size(); ++i)
    if (sums[i] != stored[i])
      throw make_error("checkpoint '", file, "': tensor /model/", table.entries()[i].name,
                       " fails its checksum (stored ", stored[i], ", read ", sums[i],
                       "): the file is corrupt");
}

void remove_stale_temporaries(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(".step_", 0) == 0 && name.size() > 4 && name.ends_with(".tmp")) fs::remove(e.path(), ec);
  }
}

}  // namespace strata::ckpt

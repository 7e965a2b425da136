// Checkpoint verification (verify.hpp): the format and every tensor's checksum, on one process
// or split over a group of ranks; and the newest intact checkpoint for train.resume=auto.
#include "strata/ckpt/verify.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <queue>
#include <set>

#include "io.hpp"
#include "strata/ckpt/checkpoint.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/core/log.hpp"
#include "strata/core/memory_plan.hpp"
#include "strata/core/timer.hpp"

namespace strata::ckpt {

namespace fs = std::filesystem;
using namespace h5;

namespace {

// What every rank learns from the file's metadata on its own (rank-local reads).
struct Metadata {
  bool listed = false;  // the tensors could be listed: the checksum pass can run
  long step = -1;
  std::vector<StoredTensor> tensors;
  std::vector<std::string> problems;
};

std::string quote(const std::string& file) { return "checkpoint '" + file + "'"; }

// The root attributes every checkpoint has, and the /optim step (hdf5_mutex held).
void read_root(const std::string& file, hid_t root, Metadata& m, std::string& config_yaml) {
  auto attr = [&](const char* name, auto read) {
    try {
      read();
    } catch (const std::exception&) {
      H5Eclear2(H5E_DEFAULT);
      m.problems.push_back(quote(file) + ": root attribute '" + name + "' is missing or unreadable");
    }
  };
  attr("step", [&] { m.step = long(read_attr_int<std::int64_t>(root, "step", H5T_NATIVE_INT64, file)); });
  for (const char* name : {"consumed_samples", "tokens_seen", "seed"})
    attr(name, [&] { read_attr_int<std::uint64_t>(root, name, H5T_NATIVE_UINT64, file); });
  attr("lr", [&] {
    double lr = 0;
    check(H5Aread(open_attr(root, "lr", file).get(), H5T_NATIVE_DOUBLE, &lr), file, "lr");
  });
  for (const char* name : {"layout", "tokenizer_hash", "consumed_per_dataset"})
    attr(name, [&] { read_attr_string(root, name, file); });
  attr("config", [&] { config_yaml = read_attr_string(root, "config", file); });
  // Optional (checkpoints of strata before the bad-step guard have none), but readable if there.
  if (has_attr(root, "guard"))
    attr("guard", [&] { parse_guard(read_attr_string(root, "guard", file), file); });
  try {
    Id optim(check(H5Gopen2(root, "optim", H5P_DEFAULT), file, "/optim"), H5Gclose);
    read_attr_int<std::int64_t>(optim.get(), "step", H5T_NATIVE_INT64, file + ":/optim");
  } catch (const std::exception&) {
    H5Eclear2(H5E_DEFAULT);
    m.problems.push_back(quote(file) + ": /optim or its 'step' attribute is missing or unreadable");
  }
}

// Root attributes, /optim, and the tensor list against the stored model config.
Metadata read_metadata(const std::string& file) {
  Metadata m;
  std::string config_yaml;
  {
    Lock lock;
    Id f;
    try {
      f = detail::open_checkpoint(file, MPI_COMM_NULL);
    } catch (const std::exception& e) {
      m.problems.push_back(e.what());
      return m;
    }
    read_root(file, f.get(), m, config_yaml);
  }

  try {
    m.tensors = list_tensors(file);
    m.listed = true;
  } catch (const std::exception& e) {
    m.problems.push_back(quote(file) + ": its tensors cannot be listed: " + e.what());
    return m;
  }
  if (config_yaml.empty()) return m;

  // The tensors must be exactly those of the stored model: three kinds of every parameter.
  std::map<std::string, Shape> expected;
  try {
    const config::JobConfig stored = config::parse_job_config(config_yaml, file + " (stored config)");
    const model::ParameterTable table = model::make_parameter_table(stored.model);
    for (const model::ParamInfo& p : table.entries()) {
      Shape s = p.global_shape;
      if (p.real_rows >= 0 && !s.empty()) s[0] = stored.model.vocab_size;  // stored unpadded
      for (const char* kind : detail::kKindGroups) expected[std::string(kind) + p.name] = s;
    }
  } catch (const std::exception& e) {
    m.problems.push_back(quote(file) + ": its stored config cannot be read: " + e.what());
    return m;
  }
  std::set<std::string> seen;
  for (const StoredTensor& t : m.tensors) {
    seen.insert(t.path);
    const auto it = expected.find(t.path);
    if (it == expected.end())
      m.problems.push_back(quote(file) + " holds tensor " + t.path +
                           ", which its stored model config does not have");
    else if (it->second != t.shape)
      m.problems.push_back(quote(file) + ": tensor " + t.path + " has shape " + shape_string(t.shape) +
                           " but its stored model config gives " + shape_string(it->second));
  }
  for (const auto& [path, shape] : expected)
    if (!seen.count(path))
      m.problems.push_back(quote(file) + " has no tensor " + path + " (the stored model has it)");
  return m;
}

// A row range of one tensor, read by one rank.
struct Piece {
  std::size_t tensor = 0;
  std::int64_t row_begin = 0, row_end = 0;
};

// Cuts every tensor into row ranges of at least kVerifyPieceElements elements (at most one per
// rank) and gives each to the rank with the least data so far: the same plan on every rank.
std::vector<Piece> plan_pieces(const std::vector<StoredTensor>& tensors, int ranks, int my_rank,
                               std::int64_t piece_elements) {
  using Load = std::pair<std::int64_t, int>;  // (elements assigned, rank): smallest first
  std::priority_queue<Load, std::vector<Load>, std::greater<Load>> loads;
  for (int r = 0; r < ranks; ++r) loads.push({0, r});
  std::vector<Piece> mine;
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    const Shape& s = tensors[t].shape;
    const std::int64_t n = shape_numel(s), rows = s.empty() ? 1 : s[0];
    if (n == 0 || rows == 0) continue;
    const std::int64_t pieces = std::clamp<std::int64_t>((n + piece_elements - 1) / piece_elements, 1,
                                                         std::min<std::int64_t>(ranks, rows));
    for (std::int64_t p = 0; p < pieces; ++p) {
      const Piece piece{t, rows * p / pieces, rows * (p + 1) / pieces};
      Load l = loads.top();
      loads.pop();
      if (l.second == my_rank) mine.push_back(piece);
      l.first += (piece.row_end - piece.row_begin) * (n / rows);
      loads.push(l);
    }
  }
  return mine;
}

// Per tensor: the partial checksum of this rank's pieces, and whether a read failed (1) or the
// dataset is not float32 (2).
void checksum_pieces(const std::string& file, const std::vector<StoredTensor>& tensors,
                     const std::vector<Piece>& pieces, std::int64_t piece_elements,
                     std::vector<std::uint64_t>& sums, std::vector<std::uint64_t>& status,
                     std::vector<std::string>& details) {
  if (pieces.empty()) return;
  Lock lock;
  Id f;
  try {
    f = detail::open_checkpoint(file, MPI_COMM_NULL);
  } catch (const std::exception& e) {  // opened a moment ago: the file changed under us
    for (const Piece& p : pieces) status[p.tensor] = 1;
    details[pieces.front().tensor] = e.what();
    return;
  }
  std::vector<float> buf;
  std::size_t open_tensor = tensors.size();
  Id dset;
  for (const Piece& p : pieces) {
    if (status[p.tensor] != 0) continue;
    const StoredTensor& t = tensors[p.tensor];
    const std::int64_t row_elems = t.shape.empty() ? 1 : shape_numel(t.shape) / t.shape[0];
    try {
      if (open_tensor != p.tensor) {
        dset = Id(check(H5Dopen2(f.get(), t.path.c_str(), H5P_DEFAULT), file, t.path.c_str()), H5Dclose);
        open_tensor = p.tensor;
        Id type(check(H5Dget_type(dset.get()), file, t.path.c_str()), H5Tclose);
        if (H5Tget_class(type.get()) != H5T_FLOAT || H5Tget_size(type.get()) != 4) {
          status[p.tensor] = 2;
          continue;
        }
      }
      Id space(check(H5Dget_space(dset.get()), file, t.path.c_str()), H5Sclose);
      const int nd = std::max(1, int(t.shape.size()));
      std::vector<hsize_t> start(std::size_t(nd), 0), count(std::size_t(nd), 1);
      for (int k = 1; k < int(t.shape.size()); ++k) count[std::size_t(k)] = hsize_t(t.shape[std::size_t(k)]);
      const std::int64_t rows_per_read = std::max<std::int64_t>(1, piece_elements / row_elems);
      for (std::int64_t r = p.row_begin; r < p.row_end; r += rows_per_read) {
        const std::int64_t nr = std::min(rows_per_read, p.row_end - r);
        start[0] = hsize_t(r);
        count[0] = hsize_t(nr);
        check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr),
              file, "select hyperslab");
        const hsize_t n = hsize_t(nr * row_elems);
        Id mem(H5Screate_simple(1, &n, nullptr), H5Sclose);
        buf.resize(std::size_t(n));
        check(H5Dread(dset.get(), H5T_NATIVE_FLOAT, mem.get(), space.get(), H5P_DEFAULT, buf.data()), file,
              ("read " + t.path).c_str());
        sums[p.tensor] += checksum(buf.data(), std::int64_t(n), std::uint64_t(r * row_elems));
      }
    } catch (const std::exception& e) {
      H5Eclear2(H5E_DEFAULT);
      status[p.tensor] = 1;
      details[p.tensor] = e.what();
    }
  }
}

long step_of(const std::string& name) {
  // step_<digits>.h5
  if (name.size() <= 8 || name.rfind("step_", 0) != 0 || !name.ends_with(".h5")) return -1;
  const std::string digits = name.substr(5, name.size() - 8);
  if (digits.empty() ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stol(digits);
}

}  // namespace

VerifyResult verify_checkpoint(const std::string& file, comm::Communicator* group,
                               std::int64_t piece_elements) {
  STRATA_CHECK(piece_elements > 0, "verify_checkpoint: piece_elements must be positive");
  const Timer timer;
  if (!fs::exists(file)) throw make_error("checkpoint '", file, "' does not exist");
  VerifyResult r;
  r.file = file;
  r.file_bytes = fs::file_size(file);
  const int ranks = group ? group->size() : 1, my_rank = group ? group->rank() : 0;

  Metadata m = read_metadata(file);
  // Every rank read the metadata itself: agree on whether the tensors could be listed, and on
  // how many (a file that changed between the ranks' reads is not verified).
  std::uint64_t agree[2] = {m.listed ? 0u : 1u, m.tensors.size()}, agree_max[2] = {agree[0], agree[1]};
  if (group) {
    group->all_reduce(agree, 2, DType::u64, comm::ReduceOp::min);
    group->all_reduce(agree_max, 2, DType::u64, comm::ReduceOp::max);
  }
  r.step = m.step;
  r.problems = std::move(m.problems);
  if (agree_max[0] != 0 || agree[1] != agree_max[1]) {
    if (r.problems.empty())
      r.problems.push_back(quote(file) + " could not be read the same way on every rank of the job");
    r.seconds = timer.seconds();
    return r;
  }

  const std::size_t nt = m.tensors.size();
  std::vector<std::uint64_t> sums_status(2 * nt, 0);  // [partial checksums..., failures...]
  std::vector<std::uint64_t> sums(nt, 0), status(nt, 0);
  std::vector<std::string> details(nt);
  checksum_pieces(file, m.tensors, plan_pieces(m.tensors, ranks, my_rank, piece_elements), piece_elements,
                  sums, status, details);
  std::vector<std::uint64_t> kinds = status;  // 2 = not float32: kept apart from read failures
  for (std::size_t i = 0; i < nt; ++i) {
    sums_status[i] = sums[i];
    sums_status[nt + i] = status[i] == 0 ? 0 : 1;
  }
  if (group && nt > 0) {
    group->all_reduce(sums_status.data(), sums_status.size(), DType::u64, comm::ReduceOp::sum);
    group->all_reduce(kinds.data(), kinds.size(), DType::u64, comm::ReduceOp::max);
  }
  for (std::size_t i = 0; i < nt; ++i) {
    const StoredTensor& t = m.tensors[i];
    TensorVerdict v{t.path, t.checksum, sums_status[i], sums_status[nt + i] == 0};
    r.tensor_bytes += std::uint64_t(shape_numel(t.shape)) * 4;
    if (kinds[i] == 2)
      r.problems.push_back(quote(file) + ": tensor " + t.path + " is not float32");
    else if (!v.readable)
      r.problems.push_back(quote(file) + ": tensor " + t.path +
                           " cannot be read (truncated or corrupt file?)" +
                           (details[i].empty() ? "" : ": " + details[i]));
    else if (!v.ok())
      r.problems.push_back(strata::detail::concat(quote(file), ": tensor ", t.path,
                                                  " fails its checksum (stored ", v.stored, ", read ",
                                                  v.computed, "): the file is corrupt"));
    r.tensors.push_back(std::move(v));
  }
  r.seconds = timer.seconds();
  return r;
}

std::vector<std::string> list_checkpoints(const std::string& dir) {
  std::vector<std::pair<long, std::string>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const long step = step_of(e.path().filename().string());
    if (step >= 0 && e.is_regular_file(ec)) found.emplace_back(step, e.path().string());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<std::string> out;
  for (auto& [step, path] : found) out.push_back(std::move(path));
  return out;
}

IntactCheckpoint find_intact_checkpoint(const std::string& dir, comm::Communicator* group) {
  const bool lead = !group || group->rank() == 0;
  IntactCheckpoint out;
  std::vector<std::string> candidates = list_checkpoints(dir);
  {
    std::ifstream in(fs::path(dir) / "latest");
    if (in) std::getline(in, out.latest);
  }
  if (!out.latest.empty()) {
    const std::string named = (fs::path(dir) / out.latest).string();
    // Checkpoints newer than `latest` were renamed into place by a save that was killed before
    // it published them: not published, not used.
    const long limit = step_of(out.latest);
    if (limit >= 0)
      std::erase_if(candidates,
                    [&](const std::string& c) { return step_of(fs::path(c).filename().string()) > limit; });
    if (!fs::exists(named)) {
      VerifyResult missing;
      missing.file = named;
      missing.problems.push_back("checkpoint pointer '" + (fs::path(dir) / "latest").string() + "' names '" +
                                 out.latest + "', which does not exist");
      out.skipped.push_back(std::move(missing));
      if (lead) log_warn("train.resume=auto: ", out.skipped.back().problems.front());
    }
  } else if (!candidates.empty() && lead) {
    log_warn("train.resume=auto: '", dir, "' has no 'latest' pointer but holds ", candidates.size(),
             " checkpoint files; resuming from the newest intact one");
  }
  for (const std::string& c : candidates) {
    VerifyResult v = verify_checkpoint(c, group);
    if (v.intact()) {
      out.file = c;
      if (lead) {
        log_info("checkpoint ", c, " verified before use: ", v.tensors.size(), " tensors, ",
                 format_bytes(double(v.tensor_bytes)), ", every checksum matches (", v.seconds, " s)");
        if (!out.skipped.empty())
          log_warn("train.resume=auto: resuming from ", c, " (step ", v.step,
                   "), the newest intact checkpoint, "
                   "instead of ",
                   out.skipped.front().file, " (", out.skipped.size(), " newer checkpoint",
                   out.skipped.size() == 1 ? "" : "s", " skipped)");
      }
      return out;
    }
    if (lead) {
      std::string why;
      const std::size_t shown = std::min<std::size_t>(v.problems.size(), 5);
      for (std::size_t i = 0; i < shown; ++i) why += (i ? "; " : "") + v.problems[i];
      if (v.problems.size() > shown)
        why += strata::detail::concat("; and ", v.problems.size() - shown, " more problems");
      log_warn("train.resume=auto: skipping a damaged checkpoint: ", why);
    }
    out.skipped.push_back(std::move(v));
  }
  if (!out.skipped.empty()) {
    std::string list;
    for (const VerifyResult& v : out.skipped) list += (list.empty() ? " " : "; ") + v.problems.front();
    throw make_error("train.resume=auto: no intact checkpoint in '", dir, "' (", out.skipped.size(),
                     " damaged; `strata ckpt verify ", dir,
                     "` lists every problem). Move them away to start fresh, ",
                     "or set train.resume=none. First problem of each:", list);
  }
  return out;  // no checkpoint at all: a fresh start
}

std::string find_latest_intact(const std::string& dir, comm::Communicator& group) {
  return find_intact_checkpoint(dir, &group).file;
}

}  // namespace strata::ckpt

#include "strata/ckpt/engine_checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "io.hpp"
#include "strata/config/load.hpp"
#include "strata/core/error.hpp"
#include "strata/core/timer.hpp"

namespace strata::ckpt {

namespace fs = std::filesystem;
using namespace h5;
using detail::Range;
using detail::Seg;

namespace {

enum Kind { kModel = 0, kExpAvg = 1, kExpAvgSq = 2 };

// A range of a shard and where its Adam moments sit (offset into the optimizer's m/v arrays).
struct StateRange {
  Range r;
  std::int64_t state = 0;
};

// One chunk's copy of a tensor on this rank.
struct Target {
  const model::ParamInfo* info = nullptr;
  float* params = nullptr;  // the shard's first element
  const parallel::StateView* chunk = nullptr;
  bool primary = false;           // writes and checksums: not the tied copy, TP rank 0 if replicated
  std::vector<StateRange> own;    // this rank's part of the DP partition of the shard
  std::vector<StateRange> state;  // the parts whose Adam moments this rank holds
};

struct Entry {
  std::string name;
  Shape stored_shape;
  int layer = -1;
  std::vector<Target> targets;  // primary first
};

// The parts of `pieces` (flat-buffer ranges) inside tensor `p`, as ranges of its shard, each
// with the offset of its Adam moments in the optimizer's m/v arrays.
std::vector<StateRange> clip_to_tensor(const model::ParamInfo& p, const std::vector<Range>& pieces,
                                       const std::vector<Range>& owned,
                                       const std::vector<std::int64_t>& owned_state) {
  const Range tensor{p.offset, p.offset + detail::stored_numel(p)};
  std::vector<StateRange> out;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const Range r = pieces[i].intersect(tensor);
    if (r.size() <= 0) continue;
    // The owned piece holding r (pieces are within owned pieces).
    std::int64_t state = -1;
    for (std::size_t k = 0; k < owned.size(); ++k)
      if (owned[k].begin <= r.begin && r.end <= owned[k].end)
        state = owned_state[k] + (r.begin - owned[k].begin);
    STRATA_CHECK(state >= 0, "checkpoint plan: piece outside the optimizer's state");
    out.push_back({{r.begin - p.offset, r.end - p.offset}, state});
  }
  std::sort(out.begin(), out.end(),
            [](const StateRange& a, const StateRange& b) { return a.r.begin < b.r.begin; });
  return out;
}

std::vector<Seg> param_segs(const Target& t, const std::vector<StateRange>& ranges) {
  std::vector<Seg> out;
  for (const StateRange& s : ranges) out.push_back({s.r, t.params + s.r.begin});
  return out;
}

std::vector<Seg> state_segs(const Target& t, const std::vector<StateRange>& ranges, Kind kind) {
  float* base = kind == kExpAvg ? t.chunk->exp_avg : t.chunk->exp_avg_sq;
  std::vector<Seg> out;
  for (const StateRange& s : ranges) out.push_back({s.r, base + s.state});
  return out;
}

std::vector<Seg> segs_for(const Target& t, const std::vector<StateRange>& ranges, Kind kind) {
  return kind == kModel ? param_segs(t, ranges) : state_segs(t, ranges, kind);
}

std::string layout_string(const config::JobConfig& job, const comm::GridShape& g) {
  return "tp" + std::to_string(g.tp) + "-pp" + std::to_string(g.pp) + "-dp" + std::to_string(g.dp) +
         (g.cp > 1 ? "-cp" + std::to_string(g.cp) : "") + " zero" + std::to_string(job.parallel.zero_stage);
}

// "step_00000100.h5", or its temporary ".step_00000100.h5.tmp".
std::string step_name(long step, bool temporary = false) {
  char buf[40];
  std::snprintf(buf, sizeof buf, temporary ? ".step_%08ld.h5.tmp" : "step_%08ld.h5", step);
  return buf;
}

void fsync_path(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Replaces `target` with `content` atomically (write a temporary, fsync, rename).
void write_atomically(const fs::path& target, const std::string& content) {
  const fs::path tmp = target.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << content;
    if (!out.flush()) throw make_error("cannot write '", tmp.string(), "'");
  }
  fsync_path(tmp);
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) throw make_error("cannot rename '", tmp.string(), "' to '", target.string(), "': ", ec.message());
}

// Published checkpoints in `dir`, oldest first.
std::vector<fs::path> published(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step_", 0) == 0 && n.ends_with(".h5")) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

Id create_group(hid_t loc, const char* name, const std::string& file) {
  Id gcpl(H5Pcreate(H5P_GROUP_CREATE), H5Pclose);
  H5Pset_link_creation_order(gcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
  return Id(check(H5Gcreate2(loc, name, H5P_DEFAULT, gcpl.get(), H5P_DEFAULT), file, name), H5Gclose);
}

// Architecture settings that change what the stored tensors mean without changing their
// shapes (shapes are checked tensor by tensor).
void check_model_matches(const config::ModelConfig& stored, const config::ModelConfig& cfg,
                         const std::string& file) {
  auto mismatch = [&](const char* key, const std::string& a, const std::string& b) {
    throw make_error("checkpoint '", file, "' was written for model.", key, " = ", a, " but the config has ",
                     b, "; a checkpoint loads only into the same architecture");
  };
  if (stored.norm != cfg.norm) mismatch("norm", config::to_string(stored.norm), config::to_string(cfg.norm));
  if (stored.mlp != cfg.mlp) mismatch("mlp", config::to_string(stored.mlp), config::to_string(cfg.mlp));
  if (stored.positions != cfg.positions)
    mismatch("positions", config::to_string(stored.positions), config::to_string(cfg.positions));
  if (stored.attention != cfg.attention)
    mismatch("attention", config::to_string(stored.attention), config::to_string(cfg.attention));
  if (stored.tied_embeddings != cfg.tied_embeddings)
    mismatch("tied_embeddings", stored.tied_embeddings ? "true" : "false",
             cfg.tied_embeddings ? "true" : "false");
  if (stored.bias != cfg.bias) mismatch("bias", stored.bias ? "true" : "false", cfg.bias ? "true" : "false");
  if (stored.num_layers != cfg.num_layers)
    mismatch("num_layers", std::to_string(stored.num_layers), std::to_string(cfg.num_layers));
  if (stored.num_heads != cfg.num_heads)
    mismatch("num_heads", std::to_string(stored.num_heads), std::to_string(cfg.num_heads));
  if (stored.kv_heads() != cfg.kv_heads())
    mismatch("num_kv_heads", std::to_string(stored.kv_heads()), std::to_string(cfg.kv_heads()));
  if (stored.vocab_size != cfg.vocab_size)
    mismatch("vocab_size", std::to_string(stored.vocab_size), std::to_string(cfg.vocab_size));
  if (stored.positions == config::PositionKind::rope && stored.rope_theta != cfg.rope_theta)
    mismatch("rope_theta", std::to_string(stored.rope_theta), std::to_string(cfg.rope_theta));
}

using Writes = std::vector<std::array<std::vector<Seg>, 3>>;  // per entry and kind

}  // namespace

struct EngineCheckpointer::Plan {
  std::vector<Entry> entries;
  std::vector<float> staging;  // load: pieces that are not contiguous in memory
  // What this rank writes of each entry and kind (its primary target's own ranges), in the
  // engine's views; and their total elements.
  Writes writes;
  std::int64_t write_elems = 0;
};

// One save's input: the state at its step boundary and where the values to write are.
struct EngineCheckpointer::Snapshot {
  std::string dir;
  int keep = 0;
  TrainState state;
  long adam_steps = 0;
  Writes writes;  // into the engine's views, or into the checkpointer's copy of them
};

EngineCheckpointer::EngineCheckpointer(const config::JobConfig& job, parallel::Engine& engine,
                                       comm::RankGrid& grid, const FaultHooks* faults)
    : job_(job),
      engine_(engine),
      grid_(grid),
      save_pause_(faults ? faults->save_pause : FaultHooks::SavePause{}) {
  // A background writer makes MPI calls while the training thread makes others.
  int level = MPI_THREAD_SINGLE;
  MPI_Query_thread(&level);
  if (!job.ckpt.async) {
    sync_reason_ = "ckpt.async is false";
  } else if (level != MPI_THREAD_MULTIPLE) {
    sync_reason_ = "the MPI library does not provide MPI_THREAD_MULTIPLE, which a background writer needs";
  } else {
    async_ = true;
    io_ = &grid.io_group();  // collective: every rank builds its checkpointer at the same point
    io_handle_ = grid.io_handle();
  }
}

void EngineCheckpointer::prepare() {
  if (plan_) return;
  chunks_ = engine_.state_views();
  plan_ = std::make_unique<Plan>();
  // Every tensor of the whole model, in model order, with its stored (unpadded) shape.
  const model::ParameterTable whole = model::make_parameter_table(job_.model);
  std::map<std::string, std::size_t> index;
  for (const model::ParamInfo& p : whole.entries()) {
    index[p.name] = plan_->entries.size();
    plan_->entries.push_back({p.name, p.global_shape, detail::layer_of(p.name), {}});
  }
  for (const parallel::StateView& chunk : chunks_) {
    const std::vector<Range> partition = chunk.sharding->partition();
    for (const model::ParamInfo& p : chunk.table->entries()) {
      Target t;
      t.info = &p;
      t.params = chunk.params + p.offset;
      t.chunk = &chunk;
      const bool tied_copy = p.name == "embed.wte" && !chunk.has_embedding;
      // cp ranks hold replicas of the same state: the first of them writes it.
      t.primary = !tied_copy && (p.split != model::TpSplit::replicated || grid_.coord().tp_rank == 0) &&
                  grid_.coord().cp_rank == 0;
      t.own = clip_to_tensor(p, partition, chunk.sharding->owned, chunk.sharding->shard_offset);
      t.state = clip_to_tensor(p, chunk.sharding->owned, chunk.sharding->owned, chunk.sharding->shard_offset);
      auto& targets = plan_->entries.at(index.at(p.name)).targets;
      if (t.primary)
        targets.insert(targets.begin(), std::move(t));
      else
        targets.push_back(std::move(t));
    }
  }
  for (const Entry& e : plan_->entries) {
    std::array<std::vector<Seg>, 3> w;
    if (!e.targets.empty() && e.targets.front().primary) {
      const Target& t = e.targets.front();
      for (int k = 0; k < 3; ++k) {
        w[std::size_t(k)] = segs_for(t, t.own, Kind(k));
        for (const Seg& g : w[std::size_t(k)]) plan_->write_elems += g.r.size();
      }
    }
    plan_->writes.push_back(std::move(w));
  }
}

EngineCheckpointer::~EngineCheckpointer() {
  if (!writer_.joinable()) return;
  writer_.join();  // every rank's writer finishes the same save (or the job is being aborted)
  if (writer_error_) {
    try {
      std::rethrow_exception(writer_error_);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "strata: %s\n", e.what());
    }
  }
}

std::size_t EngineCheckpointer::prepare_saves() {
  prepare();  // GPU: the state views' pinned staging
  std::size_t bytes = 0;
  for (const parallel::StateView& v : chunks_)
    if (!v.live)
      bytes += (std::size_t(v.sharding->padded) + 2 * std::size_t(v.sharding->state_elems)) * sizeof(float);
  const bool live =
      std::any_of(chunks_.begin(), chunks_.end(), [](const parallel::StateView& v) { return v.live; });
  if (async_ && !background_) {
    background_ = std::make_unique<Snapshot>();
    if (live) {
      // One buffer for everything this rank writes, each piece packed after the previous one;
      // zero-filled here, so its pages are in memory before the first step.
      snapshot_buffer_.assign(std::size_t(plan_->write_elems), 0.0f);
      background_->writes = plan_->writes;
      float* at = snapshot_buffer_.data();
      for (auto& entry : background_->writes)
        for (auto& segs : entry)
          for (Seg& g : segs) {
            g.ptr = at;
            at += g.r.size();
          }
    }
  }
  return bytes + snapshot_buffer_.size() * sizeof(float);
}

void EngineCheckpointer::join_writer() {
  if (!writer_.joinable()) return;
  writer_.join();
  if (writer_error_) std::rethrow_exception(std::exchange(writer_error_, nullptr));
  finished_.push_back(writer_result_);
}

void EngineCheckpointer::wait() { join_writer(); }

std::vector<SaveResult> EngineCheckpointer::take_finished() {
  if (writer_.joinable() && writer_done_.load()) join_writer();
  return std::exchange(finished_, {});
}

double EngineCheckpointer::take_snapshot(Snapshot& snap, const std::string& dir, const TrainState& st,
                                         int keep, bool copy) {
  const Timer timer;
  engine_.pull_state();  // GPU: the device state into the (pinned) host staging
  snap.dir = dir;
  snap.keep = keep;
  snap.state = st;
  snap.adam_steps = engine_.steps_taken();
  if (!copy) {
    snap.writes = plan_->writes;
    return timer.seconds();
  }
  // The engine's own buffers change with the next optimizer step: copy what this rank writes.
  // The copy's layout (snap.writes into snapshot_buffer_) was made with the buffer.
  for (std::size_t i = 0; i < plan_->writes.size(); ++i)
    for (std::size_t k = 0; k < 3; ++k) {
      const std::vector<Seg>& from = plan_->writes[i][k];
      const std::vector<Seg>& to = snap.writes[i][k];
      for (std::size_t j = 0; j < from.size(); ++j)
        std::memcpy(to[j].ptr, from[j].ptr, std::size_t(from[j].r.size()) * sizeof(float));
    }
  return timer.seconds();
}

SaveCost EngineCheckpointer::save_async(const std::string& dir, const TrainState& st, int keep) {
  prepare();
  SaveCost cost;
  if (!async_) {
    const Timer timer;
    finished_.push_back(save(dir, st, keep));
    cost.snapshot_s = timer.seconds();
    return cost;
  }
  {
    const Timer timer;
    join_writer();  // the previous save published (or its failure thrown) on this rank
    cost.wait_s = timer.seconds();
  }
  prepare_saves();
  const bool live =
      std::any_of(chunks_.begin(), chunks_.end(), [](const parallel::StateView& v) { return v.live; });
  cost.snapshot_s = take_snapshot(*background_, dir, st, keep, live);
  writer_done_.store(false);
  writer_ = std::thread([this] {
    try {
      writer_result_ = write(*background_, *io_, io_handle_, true);
      writer_result_.background = true;
    } catch (const std::exception& e) {
      writer_error_ =
          std::make_exception_ptr(Error("checkpoint of step " + std::to_string(background_->state.step) +
                                        " (written in the background): " + e.what()));
    } catch (...) {
      writer_error_ = std::current_exception();
    }
    writer_done_.store(true);
  });
  return cost;
}

SaveResult EngineCheckpointer::save(const std::string& dir, const TrainState& st, int keep) {
  join_writer();
  prepare();
  Snapshot snap;
  take_snapshot(snap, dir, st, keep, false);  // no copy: nothing changes the state until we return
  return write(snap, grid_.world_group(), grid_.world_handle(), false);
}

SaveResult EngineCheckpointer::write(const Snapshot& snap, comm::Communicator& all, MPI_Comm world,
                                     bool yield) {
  // HDF5 takes the MPI handle `world`; every other collective goes through the group `all`
  // over the same ranks.
  const Timer timer;
  const TrainState& st = snap.state;
  const std::string& dir = snap.dir;
  const bool lead = grid_.global_rank() == 0;
  const fs::path final_path = fs::path(dir) / step_name(st.step);
  const fs::path tmp_path = fs::path(dir) / step_name(st.step, true);
  const std::string tmp = tmp_path.string();
  if (lead) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw make_error("cannot create checkpoint directory '", dir, "': ", ec.message());
    remove_stale_temporaries(dir);
  }
  // The creation time travels from rank 0 so every rank writes the same attribute; the
  // broadcast also holds every rank until rank 0 has made the directory.
  std::int64_t now = lead ? std::int64_t(std::time(nullptr)) : 0;
  all.broadcast(&now, 1, DType::u64, 0);

  std::vector<std::uint64_t> sums;  // per tensor and kind: this rank's part of the checksum
  {
    Lock lock;  // every HDF5 call below, and the handles' closing at the end of the scope
    quiet_hdf5();
    Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    H5Pset_fapl_mpio(fapl.get(), world, MPI_INFO_NULL);
    Id dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
    H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE);
    Id file(check(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), tmp, "cannot create file"),
            H5Fclose);
    const hid_t root = file.get();
    // Attributes are collective metadata: every rank writes the same values.
    write_attr_string(root, "format", kFormat, tmp);
    write_attr_number(root, "version", kFormatVersion, H5T_NATIVE_INT, H5T_STD_I32LE, tmp);
    write_attr_number(root, "step", std::int64_t(st.step), H5T_NATIVE_INT64, H5T_STD_I64LE, tmp);
    write_attr_number(root, "consumed_samples", st.consumed_samples, H5T_NATIVE_UINT64, H5T_STD_U64LE, tmp);
    write_attr_number(root, "tokens_seen", st.tokens_seen, H5T_NATIVE_UINT64, H5T_STD_U64LE, tmp);
    write_attr_number(root, "seed", st.seed, H5T_NATIVE_UINT64, H5T_STD_U64LE, tmp);
    write_attr_number(root, "lr", st.lr, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, tmp);
    const comm::GridShape& g = grid_.shape();
    write_attr_string(root, "layout", layout_string(job_, g), tmp);
    write_attr_number(root, "tp", g.tp, H5T_NATIVE_INT, H5T_STD_I32LE, tmp);
    write_attr_number(root, "pp", g.pp, H5T_NATIVE_INT, H5T_STD_I32LE, tmp);
    write_attr_number(root, "dp", g.dp, H5T_NATIVE_INT, H5T_STD_I32LE, tmp);
    write_attr_number(root, "cp", g.cp, H5T_NATIVE_INT, H5T_STD_I32LE, tmp);
    write_attr_string(root, "config", config::to_yaml(job_), tmp);
    write_attr_string(root, "tokenizer_hash", st.tokenizer_hash, tmp);
    write_attr_string(root, "model_name", job_.model.name, tmp);
    std::string consumed;
    for (const auto& [path, n] : st.consumed_per_dataset) consumed += path + "\t" + std::to_string(n) + "\n";
    write_attr_string(root, "consumed_per_dataset", consumed, tmp);
    write_attr_string(root, "guard", format_guard(st.guard), tmp);
    char created[32];
    const std::time_t t = std::time_t(now);
    std::strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
    write_attr_string(root, "created", created, tmp);

    Id model_group = create_group(root, "model", tmp);
    Id optim_group = create_group(root, "optim", tmp);
    {
      write_attr_number(optim_group.get(), "step", std::int64_t(snap.adam_steps), H5T_NATIVE_INT64,
                        H5T_STD_I64LE, tmp);
      write_attr_number(optim_group.get(), "beta1", job_.optim.beta1, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, tmp);
      write_attr_number(optim_group.get(), "beta2", job_.optim.beta2, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, tmp);
      write_attr_number(optim_group.get(), "eps", job_.optim.eps, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, tmp);
    }
    Id m_group = create_group(optim_group.get(), "exp_avg", tmp);
    Id v_group = create_group(optim_group.get(), "exp_avg_sq", tmp);
    const hid_t groups[3] = {model_group.get(), m_group.get(), v_group.get()};

    Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);
    H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY);
    std::vector<Id> datasets;
    std::vector<float> staging;  // pieces of a tensor that are not contiguous in memory
    for (std::size_t i = 0; i < plan_->entries.size(); ++i) {
      const Entry& e = plan_->entries[i];
      if (i == plan_->entries.size() / 2) {
        lock.unlock();  // no HDF5 call in flight; the handles stay open
        if (save_pause_.hits(st.step))
          std::this_thread::sleep_for(std::chrono::duration<double>(save_pause_.seconds));
        lock.lock();
      }
      // Between tensors a waiting thread (the data loader) gets HDF5 for its call.
      if (yield) lock.yield();
      std::vector<hsize_t> dims(e.stored_shape.begin(), e.stored_shape.end());
      Id space(H5Screate_simple(int(dims.size()), dims.data(), nullptr), H5Sclose);
      const Target* t = !e.targets.empty() && e.targets.front().primary ? &e.targets.front() : nullptr;
      for (int k = 0; k < 3; ++k) {
        const std::string where = tmp + ":" + detail::kKindGroups[k] + e.name;
        Id d(check(H5Dcreate2(groups[k], e.name.c_str(), H5T_IEEE_F32LE, space.get(), H5P_DEFAULT, dcpl.get(),
                              H5P_DEFAULT),
                   where, "create dataset"),
             H5Dclose);
        const std::vector<Seg>& segs = snap.writes[i][std::size_t(k)];
        detail::transfer(true, d.get(), t ? t->info : nullptr, segs, staging, dxpl.get(), where);
        std::uint64_t sum = 0;
        for (const Seg& s : segs) sum += detail::hash_range(*t->info, s.r, s.ptr);
        sums.push_back(sum);
        datasets.push_back(std::move(d));
      }
    }
    all.all_reduce(sums.data(), sums.size(), DType::u64);
    for (std::size_t i = 0; i < datasets.size(); ++i) {
      const std::string where = tmp + ":" + plan_->entries[i / 3].name;
      write_attr_number(datasets[i].get(), "layer", plan_->entries[i / 3].layer, H5T_NATIVE_INT,
                        H5T_STD_I32LE, where);
      write_attr_number(datasets[i].get(), "checksum", sums[i], H5T_NATIVE_UINT64, H5T_STD_U64LE, where);
    }
    datasets.clear();
    check(H5Fflush(root, H5F_SCOPE_GLOBAL), tmp, "flush");
  }  // every handle closed: the file is complete
  all.barrier();

  // Publish: the file, then the pointer, each by an atomic rename; then prune.
  SaveResult result;
  result.step = st.step;
  result.file = final_path.string();
  if (lead) {
    fsync_path(tmp_path);
    std::error_code ec;
    fs::rename(tmp_path, final_path, ec);
    if (ec) throw make_error("cannot rename '", tmp, "' to '", final_path.string(), "': ", ec.message());
    fsync_path(dir);
    write_atomically(fs::path(dir) / "latest", final_path.filename().string() + "\n");
    fsync_path(dir);
    if (snap.keep > 0) {
      const std::vector<fs::path> all = published(dir);
      for (std::size_t i = 0; i + std::size_t(snap.keep) < all.size(); ++i)
        if (all[i] != final_path) fs::remove(all[i], ec);
    }
    result.bytes = std::uint64_t(fs::file_size(final_path));
  }
  all.broadcast(&result.bytes, 1, DType::u64, 0);
  result.seconds = timer.seconds();
  return result;
}

TrainState EngineCheckpointer::load(const std::string& path, const std::string& expected_tokenizer_hash) {
  join_writer();  // its snapshot may be the staging the load fills
  prepare();
  Lock lock;
  const MPI_Comm world = grid_.world_handle();  // for HDF5
  comm::Communicator& all = grid_.world_group();
  const std::string file = resolve(path);
  const Id f = detail::open_checkpoint(file, world);
  const hid_t root = f.get();

  TrainState st;
  st.step = long(read_attr_int<std::int64_t>(root, "step", H5T_NATIVE_INT64, file));
  st.consumed_samples = read_attr_int<std::uint64_t>(root, "consumed_samples", H5T_NATIVE_UINT64, file);
  st.tokens_seen = read_attr_int<std::uint64_t>(root, "tokens_seen", H5T_NATIVE_UINT64, file);
  st.seed = read_attr_int<std::uint64_t>(root, "seed", H5T_NATIVE_UINT64, file);
  st.tokenizer_hash = read_attr_string(root, "tokenizer_hash", file);
  st.layout = read_attr_string(root, "layout", file);
  if (has_attr(root, "guard")) st.guard = parse_guard(read_attr_string(root, "guard", file), file);
  {
    std::map<std::string, std::uint64_t> consumed;
    const std::string text = read_attr_string(root, "consumed_per_dataset", file);
    std::size_t at = 0;
    while (at < text.size()) {
      const std::size_t nl = text.find('\n', at), tab = text.rfind('\t', nl);
      if (nl == std::string::npos || tab == std::string::npos || tab < at) break;
      st.consumed_per_dataset.emplace_back(text.substr(at, tab - at),
                                           std::stoull(text.substr(tab + 1, nl - tab - 1)));
      at = nl + 1;
    }
  }

  // Validate before touching the engine: architecture, tokenizer, every tensor's shape.
  const config::JobConfig stored = config::parse_job_config(read_attr_string(root, "config", file), file);
  check_model_matches(stored.model, job_.model, file);
  if (!st.tokenizer_hash.empty() && !expected_tokenizer_hash.empty() &&
      st.tokenizer_hash != expected_tokenizer_hash)
    throw make_error("checkpoint '", file, "' was trained with tokenizer hash ", st.tokenizer_hash,
                     " but this run's data uses ", expected_tokenizer_hash,
                     " (another tokenizer: the token ids would not mean the same)");
  std::vector<Id> datasets;
  for (const Entry& e : plan_->entries)
    for (int k = 0; k < 3; ++k)
      datasets.push_back(detail::open_tensor(root, detail::kKindGroups[k] + e.name, e.stored_shape, file));
  {
    // Nothing else in /model: a checkpoint of a larger model is not silently truncated.
    Id g(check(H5Gopen2(root, "model", H5P_DEFAULT), file, "/model"), H5Gclose);
    H5G_info_t gi;
    check(H5Gget_info(g.get(), &gi), file, "/model");
    if (gi.nlinks != plan_->entries.size())
      throw make_error("checkpoint '", file, "' holds ", gi.nlinks, " model tensors; this model has ",
                       plan_->entries.size(), " (written for another model shape)");
  }

  // Read: every target its whole parameter shard and its moment pieces. Independent reads:
  // each rank asks for exactly its hyperslabs (collective reads measured 2-3x slower with 8
  // ranks on one node, and need matching call counts on every rank).
  Id dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_INDEPENDENT);
  std::vector<std::uint64_t> sums, stored_sums;
  for (std::size_t i = 0; i < plan_->entries.size(); ++i) {
    const Entry& e = plan_->entries[i];
    for (int k = 0; k < 3; ++k) {
      const hid_t d = datasets[i * 3 + std::size_t(k)].get();
      const std::string where = file + ":" + detail::kKindGroups[k] + e.name;
      for (const Target& t : e.targets) {
        const std::int64_t n = detail::stored_numel(*t.info);
        const std::vector<Seg> segs =
            k == kModel ? std::vector<Seg>{{{0, n}, t.params}} : state_segs(t, t.state, Kind(k));
        detail::transfer(false, d, t.info, segs, plan_->staging, dxpl.get(), where);
      }
      // Checksum over the reading layout's own partition (primary copies only).
      std::uint64_t sum = 0;
      if (!e.targets.empty() && e.targets.front().primary) {
        const Target& t = e.targets.front();
        for (const Seg& s : segs_for(t, t.own, Kind(k))) sum += detail::hash_range(*t.info, s.r, s.ptr);
      }
      sums.push_back(sum);
      stored_sums.push_back(read_attr_int<std::uint64_t>(d, "checksum", H5T_NATIVE_UINT64, where));
    }
  }
  all.all_reduce(sums.data(), sums.size(), DType::u64);
  for (std::size_t i = 0; i < sums.size(); ++i)
    if (sums[i] != stored_sums[i])
      throw make_error("checkpoint '", file, "': tensor ", detail::kKindGroups[i % 3],
                       plan_->entries[i / 3].name, " fails its checksum (stored ", stored_sums[i], ", read ",
                       sums[i], "): the file is corrupt; nothing was loaded into training");
  // Vocabulary padding rows: zero, as initialised (never targets, excluded from the softmax,
  // so their gradients and Adam moments stay zero too).
  for (const Entry& e : plan_->entries)
    for (const Target& t : e.targets)
      std::fill(t.params + detail::stored_numel(*t.info), t.params + t.info->numel, 0.0f);
  const long adam_steps = long(read_attr_int<std::int64_t>(
      Id(check(H5Gopen2(root, "optim", H5P_DEFAULT), file, "/optim"), H5Gclose).get(), "step",
      H5T_NATIVE_INT64, file));
  engine_
      .push_state();  // GPU: the host staging to the device (the master weights, the compute copy, moments)
  engine_.set_steps_taken(adam_steps);
  return st;
}

}  // namespace strata::ckpt

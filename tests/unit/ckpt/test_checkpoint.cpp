// Checkpoint pieces on one rank: hyperslab mapping, the checksum, publication and pruning,
// and refusal of checkpoints that do not fit the model or are damaged.
#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>

#include "../../../src/ckpt/slabs.hpp"
#include "../mpi_singleton.hpp"
#include "strata/ckpt/checkpoint.hpp"
#include "strata/ckpt/engine_checkpoint.hpp"
#include "strata/config/load.hpp"
#include "strata/parallel/pipeline.hpp"
#include "strata/train/trainer.hpp"

using namespace strata;
namespace fs = std::filesystem;

namespace {

// Every element of the slabs, as stored flat indices, in slab order.
std::vector<std::uint64_t> slab_elements(const std::vector<ckpt::detail::Slab>& slabs, std::uint64_t cols) {
  std::vector<std::uint64_t> out;
  for (const auto& s : slabs)
    for (hsize_t r = 0; r < s.rows; ++r)
      for (hsize_t c = 0; c < s.cols; ++c) out.push_back((s.row + r) * cols + s.col + c);
  return out;
}

// The slabs of any local range are exactly the stored elements of that range, in local order.
void check_mapping(const model::ParamInfo& p, std::uint64_t stored_cols) {
  const std::int64_t n = ckpt::detail::stored_numel(p);
  for (std::int64_t a = 0; a < n; a += 3)
    for (std::int64_t b = a + 1; b <= n; b += 5) {
      const auto got = slab_elements(ckpt::detail::shard_slabs(p, {a, b}), stored_cols);
      ASSERT_EQ(got.size(), std::size_t(b - a));
      for (std::int64_t i = a; i < b; ++i)
        ASSERT_EQ(got[std::size_t(i - a)], ckpt::detail::stored_index(p, i)) << p.name;
      ASSERT_LE(ckpt::detail::shard_slabs(p, {a, b}).size(), 3u);
    }
}

config::JobConfig tiny_job(const std::string& name) {
  config::JobConfig job = config::load_job_config(std::string(STRATA_SOURCE_DIR) + "/configs/test_tiny.yaml");
  job.train.steps = 2;
  job.train.out_dir = testing::TempDir() + "/strata_ckpt_unit/" + name;
  job.ckpt.dir = job.train.out_dir + "/ckpt";
  fs::remove_all(job.train.out_dir);
  return job;
}

// A 2-step run's checkpoint (step_00000002.h5).
std::string make_checkpoint(const config::JobConfig& job) {
  train::run_training(job, MPI_COMM_WORLD);
  return job.ckpt.dir + "/step_00000002.h5";
}

// The error text of resuming `job` from `file`, or "" when it loads.
std::string resume_error(config::JobConfig job, const std::string& file) {
  job.train.resume = file;
  job.train.steps = 3;
  job.train.out_dir += "_resume";
  job.ckpt.dir += "_resume";
  try {
    train::run_training(job, MPI_COMM_WORLD);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(CheckpointSlabs, RowColumnAndVectorShardsMapToTheirStoredElements) {
  model::ParamInfo rows;  // rows 6..11 of a [16, 5] tensor
  rows.name = "rows";
  rows.shape = {6, 5};
  rows.global_shape = {16, 5};
  rows.split = model::TpSplit::rows;
  rows.split_offset = 6;
  rows.numel = 30;
  check_mapping(rows, 5);

  model::ParamInfo cols = rows;  // columns 4..7 of a [5, 12] tensor
  cols.name = "cols";
  cols.shape = {5, 4};
  cols.global_shape = {5, 12};
  cols.split = model::TpSplit::cols;
  cols.split_offset = 4;
  cols.numel = 20;
  check_mapping(cols, 12);

  model::ParamInfo bias = rows;  // elements 8..15 of a [24] bias (column-parallel)
  bias.name = "bias";
  bias.shape = {8};
  bias.global_shape = {24};
  bias.split_offset = 8;
  bias.numel = 8;
  check_mapping(bias, 24);

  model::ParamInfo vocab = rows;  // the last TP shard of a padded vocabulary: 2 real rows of 4
  vocab.name = "vocab";
  vocab.shape = {4, 3};
  vocab.global_shape = {12, 3};
  vocab.split_offset = 8;
  vocab.real_rows = 2;
  vocab.numel = 12;
  EXPECT_EQ(ckpt::detail::stored_numel(vocab), 6);
  check_mapping(vocab, 3);
}

TEST(CheckpointChecksum, PartsAddUpInAnyOrderAndEveryChangeShows) {
  std::vector<float> v(1000);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.37f - 100.0f;
  const std::uint64_t whole = ckpt::checksum(v.data(), 1000);
  EXPECT_EQ(ckpt::checksum(v.data() + 600, 400, 600) + ckpt::checksum(v.data(), 600), whole);
  std::vector<float> w = v;
  w[500] = std::nextafter(w[500], 1e9f);  // one ulp
  EXPECT_NE(ckpt::checksum(w.data(), 1000), whole);
  w = v;
  std::swap(w[3], w[4]);  // same values, other positions
  EXPECT_NE(ckpt::checksum(w.data(), 1000), whole);
  EXPECT_NE(ckpt::checksum(v.data(), 1000, 1), whole);
}

TEST(CheckpointFiles, PublishesLatestKeepsTheNewestAndResolvesDirectories) {
  config::JobConfig job = tiny_job("publish");
  job.train.steps = 5;
  job.ckpt.interval = 1;
  job.ckpt.keep = 2;
  train::run_training(job, MPI_COMM_WORLD);
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(job.ckpt.dir)) names.insert(e.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"latest", "step_00000004.h5", "step_00000005.h5"}));
  EXPECT_EQ(ckpt::resolve(job.ckpt.dir), job.ckpt.dir + "/step_00000005.h5");
  const ckpt::CheckpointInfo info = ckpt::read_info(job.ckpt.dir);
  EXPECT_EQ(info.step, 5);
  EXPECT_EQ(info.layout, "tp1-pp1-dp1 zero0");
  EXPECT_NE(info.config_yaml.find("test_tiny"), std::string::npos);
  // Every stored tensor's checksum is what the values give.
  const auto tensors = ckpt::list_tensors(job.ckpt.dir);
  ASSERT_FALSE(tensors.empty());
  EXPECT_EQ(tensors.front().path, "/model/embed.wte");
  EXPECT_EQ(tensors.front().shape, (Shape{64, 64}));
  for (const auto& t : tensors) {
    const std::vector<float> v = ckpt::read_tensor(job.ckpt.dir, t.path);
    EXPECT_EQ(ckpt::checksum(v.data(), std::int64_t(v.size())), t.checksum) << t.path;
  }
  EXPECT_THROW(ckpt::resolve(job.ckpt.dir + "/nope"), Error);
  fs::remove(job.ckpt.dir + "/latest");
  EXPECT_EQ(ckpt::find_latest(job.ckpt.dir), "");
  EXPECT_THROW(ckpt::resolve(job.ckpt.dir), Error);
}

TEST(CheckpointFiles, AStaleTemporaryFromAKilledSaveIsIgnoredAndRemoved) {
  config::JobConfig job = tiny_job("stale");
  const std::string file = make_checkpoint(job);
  const std::string stale = job.ckpt.dir + "/.step_00000009.h5.tmp";
  std::ofstream(stale) << "half a checkpoint";
  EXPECT_EQ(ckpt::find_latest(job.ckpt.dir), file);
  ckpt::remove_stale_temporaries(job.ckpt.dir);
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(file));
}

TEST(CheckpointRefusal, AnotherModelShapeIsRefusedNamingTheKeyOrTensor) {
  const config::JobConfig job = tiny_job("shape");
  const std::string file = make_checkpoint(job);
  config::JobConfig wider = job;
  wider.model.d_model = 128;
  EXPECT_NE(
      resume_error(wider, file).find("/model/embed.wte has shape [64, 64] but the model needs [64, 128]"),
      std::string::npos)
      << resume_error(wider, file);
  config::JobConfig deeper = job;
  deeper.model.num_layers = 3;
  EXPECT_NE(resume_error(deeper, file).find("model.num_layers = 2 but the config has 3"), std::string::npos);
  config::JobConfig vocab = job;
  vocab.model.vocab_size = 80;
  EXPECT_NE(resume_error(vocab, file).find("model.vocab_size = 64 but the config has 80"), std::string::npos);
  config::JobConfig norm = job;
  norm.model.norm = config::NormKind::rmsnorm;
  norm.model.bias = false;
  EXPECT_NE(resume_error(norm, file).find("model.norm = layernorm but the config has rmsnorm"),
            std::string::npos);
  EXPECT_EQ(resume_error(job, file), "");  // the right config loads
}

TEST(CheckpointRefusal, ACorruptTensorIsRefusedByName) {
  const config::JobConfig job = tiny_job("corrupt");
  const std::string file = make_checkpoint(job);
  // Flip one byte in the middle of /optim/exp_avg/layers.1.mlp.fc.weight.
  haddr_t offset = 0;
  {
    const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, "/optim/exp_avg/layers.1.mlp.fc.weight", H5P_DEFAULT);
    offset = H5Dget_offset(d);
    H5Dclose(d);
    H5Fclose(f);
  }
  ASSERT_NE(offset, HADDR_UNDEF);
  {
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(std::streamoff(offset + 1000));
    char c = 0;
    io.read(&c, 1);
    c = char(c ^ 0x10);
    io.seekp(std::streamoff(offset + 1000));
    io.write(&c, 1);
  }
  const std::string err = resume_error(job, file);
  EXPECT_NE(err.find("tensor /optim/exp_avg/layers.1.mlp.fc.weight fails its checksum"), std::string::npos)
      << err;
  EXPECT_NE(err.find("corrupt"), std::string::npos);
}

TEST(CheckpointRefusal, ATruncatedFileIsRefused) {
  const config::JobConfig job = tiny_job("truncated");
  const std::string file = make_checkpoint(job);
  fs::resize_file(file, fs::file_size(file) / 2);
  const std::string err = resume_error(job, file);
  EXPECT_NE(err.find("cannot be opened (truncated"), std::string::npos) << err;
  std::ofstream(job.ckpt.dir + "/junk.h5") << "not hdf5";
  EXPECT_NE(resume_error(job, job.ckpt.dir + "/junk.h5").find("cannot be opened"), std::string::npos);
}

TEST(CheckpointRefusal, AnotherTokenizerIsRefused) {
  // Through the checkpointer directly: the synthetic data of the test config has no tokenizer.
  config::JobConfig job = tiny_job("tokenizer");
  comm::RankGrid grid(MPI_COMM_WORLD, 1, 1, 1);
  parallel::CpuEngine engine(job.model, job.parallel, job.optim, job.train.seq_len, 1, grid);
  engine.init_parameters(job.train.seed);
  ckpt::EngineCheckpointer io(job, engine, grid);
  ckpt::TrainState st;
  st.step = 7;
  st.tokenizer_hash = "aaaa";
  const ckpt::SaveResult r = io.save(job.ckpt.dir, st, 0);
  EXPECT_GT(r.bytes, 0u);
  try {
    io.load(r.file, "bbbb");
    ADD_FAILURE() << "a checkpoint of another tokenizer loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer hash aaaa but this run's data uses bbbb"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(io.load(r.file, "aaaa").step, 7);
}

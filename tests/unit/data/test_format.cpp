#include <gtest/gtest.h>
#include <hdf5.h>

#include <filesystem>

#include "data_test_util.hpp"
#include "strata/core/error.hpp"
#include "strata/data/format.hpp"
#include "strata/data/loader.hpp"
#include "strata/data/tokenizer.hpp"

using namespace strata;
using namespace strata::data;

namespace {

DatasetInfo bytes_info() {
  const ByteTokenizer t;
  DatasetInfo info;
  info.tokenizer_name = t.name();
  info.tokenizer_hash = t.content_hash();
  info.vocab_size = t.vocab_size();
  info.eos_id = t.eos_id();
  info.source = "unit test";
  info.statistics = R"({"documents_read": 3})";
  return info;
}

// Writes three documents of the byte tokenizer: "ab" EOS, "c" EOS, "hello" EOS.
std::string write_small(const std::string& dir) {
  const std::string path = dir + "/small.h5";
  const std::vector<std::int32_t> tokens = {'a', 'b', 256, 'c', 256, 'h', 'e', 'l', 'l', 'o', 256};
  const std::vector<std::uint64_t> lengths = {3, 2, 6};
  write_token_dataset(path, testing_util::one_rank(), bytes_info(), tokens, lengths);
  return path;
}

std::string error_of(const std::string& path) {
  try {
    TokenDataset ds(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// Rewrites one attribute or dataset of an existing file with raw HDF5 calls.
void overwrite_offsets(const std::string& path, const std::vector<std::uint64_t>& offsets) {
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  hid_t d = H5Dopen2(f, "doc_offsets", H5P_DEFAULT);
  H5Dwrite(d, H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets.data());
  H5Dclose(d);
  H5Fclose(f);
}

}  // namespace

TEST(TokenDatasetFormat, RoundTripKeepsTokensOffsetsAndAttributes) {
  const std::string dir = testing_util::temp_folder();
  const std::string path = write_small(dir);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const TokenDataset ds(path);
  EXPECT_EQ(ds.num_documents(), 3u);
  EXPECT_EQ(ds.num_tokens(), 11u);
  EXPECT_EQ(ds.doc_offsets(), (std::vector<std::uint64_t>{0, 3, 5, 11}));
  EXPECT_EQ(ds.info().token_bytes, 2);
  EXPECT_EQ(ds.info().tokenizer_name, "bytes");
  EXPECT_EQ(ds.info().tokenizer_hash, ByteTokenizer().content_hash());
  EXPECT_EQ(ds.info().vocab_size, 257);
  EXPECT_EQ(ds.info().eos_id, 256);
  EXPECT_EQ(ds.info().source, "unit test");
  EXPECT_EQ(ds.info().statistics, R"({"documents_read": 3})");
  std::vector<std::int32_t> out(6);
  ds.read(5, 6, out.data());
  EXPECT_EQ(out, (std::vector<std::int32_t>{'h', 'e', 'l', 'l', 'o', 256}));
  EXPECT_THROW(ds.read(10, 2, out.data()), Error);
}

TEST(TokenDatasetFormat, LargeVocabulariesAreStoredAsUint32) {
  const std::string dir = testing_util::temp_folder();
  DatasetInfo info = bytes_info();
  info.vocab_size = 100000;
  const std::vector<std::int32_t> tokens = {99999, 70000, 1};
  const std::vector<std::uint64_t> lengths = {3};
  write_token_dataset(dir + "/big.h5", testing_util::one_rank(), info, tokens, lengths);
  const TokenDataset ds(dir + "/big.h5");
  EXPECT_EQ(ds.info().token_bytes, 4);
  std::vector<std::int32_t> out(3);
  ds.read(0, 3, out.data());
  EXPECT_EQ(out, tokens);
}

TEST(TokenDatasetFormat, IdsOutsideTheVocabularyAreRejectedOnWrite) {
  const std::string dir = testing_util::temp_folder();
  const std::vector<std::int32_t> tokens = {1, 300};
  const std::vector<std::uint64_t> lengths = {2};
  EXPECT_THROW(write_token_dataset(dir + "/bad.h5", testing_util::one_rank(), bytes_info(), tokens, lengths),
               Error);
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.h5"));
}

TEST(TokenDatasetFormat, MissingAndNonHdf5FilesAreNamed) {
  const std::string dir = testing_util::temp_folder();
  EXPECT_NE(error_of(dir + "/nope.h5").find("nope.h5': No such file"), std::string::npos);
  testing_util::write_file(dir + "/text.h5", "just text");
  EXPECT_NE(error_of(dir + "/text.h5").find("not an HDF5 file"), std::string::npos);
}

TEST(TokenDatasetFormat, TruncatedFileIsAClearError) {
  const std::string dir = testing_util::temp_folder();
  const std::string path = write_small(dir);
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  const std::string e = error_of(path);
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_TRUE(e.find("truncated") != std::string::npos || e.find("not an HDF5") != std::string::npos) << e;
}

TEST(TokenDatasetFormat, OffsetsPastTheEndOrDecreasingAreRejected) {
  const std::string dir = testing_util::temp_folder();
  const std::string path = write_small(dir);
  overwrite_offsets(path, {0, 3, 50, 11});
  EXPECT_NE(error_of(path).find("/doc_offsets[2] = 50 is past the end of /tokens (11 tokens)"),
            std::string::npos)
      << error_of(path);
  overwrite_offsets(path, {0, 5, 3, 11});
  EXPECT_NE(error_of(path).find("decreases at index 2"), std::string::npos) << error_of(path);
  overwrite_offsets(path, {1, 3, 5, 11});
  EXPECT_NE(error_of(path).find("/doc_offsets[0] is 1"), std::string::npos) << error_of(path);
}

TEST(TokenDatasetFormat, WrongTokenDtypeIsRejected) {
  const std::string dir = testing_util::temp_folder();
  const std::string path = write_small(dir);
  // Replace /tokens by a float dataset of the same length.
  hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  H5Ldelete(f, "tokens", H5P_DEFAULT);
  const hsize_t n = 11;
  hid_t space = H5Screate_simple(1, &n, nullptr);
  hid_t d = H5Dcreate2(f, "tokens", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  std::vector<float> v(11, 1.0f);
  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data());
  H5Dclose(d);
  H5Sclose(space);
  H5Fclose(f);
  EXPECT_NE(error_of(path).find("/tokens has the wrong dtype (expected uint16"), std::string::npos)
      << error_of(path);
}

TEST(TokenDatasetFormat, DatasetFromAnotherTokenizerIsRefusedForTraining) {
  const std::string dir = testing_util::temp_folder();
  DatasetInfo info = bytes_info();
  info.tokenizer_hash = "0123456789abcdef";  // same name, other vocabulary
  std::vector<std::int32_t> tokens(400, 'x');
  const std::vector<std::uint64_t> lengths = {400};
  write_token_dataset(dir + "/other.h5", testing_util::one_rank(), info, tokens, lengths);
  config::DataConfig cfg;
  cfg.source = config::DataSource::hdf5;
  cfg.datasets = {{dir + "/other.h5", 1.0}};
  cfg.tokenizer = "bytes";
  config::ModelConfig model;
  model.vocab_size = 257;
  try {
    make_sample_source(cfg, model, 16, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(
        m.find("other.h5: tokenised with 'bytes' (hash 0123456789abcdef) but data.tokenizer is 'bytes'"),
        std::string::npos)
        << m;
  }
  model.vocab_size = 256;  // smaller than the dataset's vocabulary
  cfg.tokenizer.clear();
  try {
    make_sample_source(cfg, model, 16, 1);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("vocabulary of 257 but model.vocab_size is 256"), std::string::npos)
        << e.what();
  }
}

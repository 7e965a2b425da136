// Helpers shared by the tokenizer tests: the real tokenizer files (fetched by the CTest
// fixture tokenizer_files_fetch into .cache/tokenizers), the committed fixtures, temp folders.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "strata/core/error.hpp"
#include "strata/data/bpe_tokenizer.hpp"
#include "strata/data/tokenizer.hpp"

namespace strata::data::test {

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

inline nlohmann::json fixture(const std::string& name) {
  const auto path = std::filesystem::path(STRATA_SOURCE_DIR) / "tests" / "fixtures" / name;
  return nlohmann::json::parse(read_text(path));
}

inline std::filesystem::path tokenizer_dir() { return default_tokenizer_dir(); }

// Loaded once per process (loading parses ~1 MB of JSON); tokenizers are immutable.
inline const BpeTokenizer& gpt2() {
  static const std::unique_ptr<BpeTokenizer> t =
      BpeTokenizer::from_gpt2_files((tokenizer_dir() / "gpt2" / "encoder.json").string(),
                                    (tokenizer_dir() / "gpt2" / "vocab.bpe").string());
  return *t;
}

// A fresh empty folder under the system temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = std::filesystem::temp_directory_path() /
            ("strata_tok_" + std::to_string(::getpid()) + "_" + (info ? info->name() : "x"));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// English prose for round trips and training: the GPL-3 text every Debian system carries.
inline std::string english_text() { return read_text("/usr/share/common-licenses/GPL-3"); }

}  // namespace strata::data::test

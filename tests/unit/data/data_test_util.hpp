// Helpers for the data tests: temporary folders and files.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "strata/comm/local_communicator.hpp"

namespace strata::data::testing_util {

// The one-process group the data pipeline's collectives run over in unit tests.
inline comm::Communicator& one_rank() {
  static comm::LocalCommunicator group("test");  // stateless: sharing it between tests is harmless
  return group;
}

// A fresh folder under the test temp dir, named after the running test.
inline std::string temp_folder() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::filesystem::path p =
      std::filesystem::path(::testing::TempDir()) /
      (std::string("strata_data_") + info->test_suite_name() + "_" + info->name());
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

inline void write_file(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// A plausible English paragraph of about `words` words, different for each `seed`.
inline std::string paragraph(int seed, int words = 80) {
  static const char* vocab[] = {"river",   "mountain", "light",   "garden", "people", "ancient",
                                "market",  "winter",   "letter",  "window", "silver", "morning",
                                "harbour", "stories",  "village", "forest", "travel", "teacher",
                                "evening", "kitchen",  "bridge",  "meadow", "candle", "thunder",
                                "orchard", "lantern",  "island",  "shadow", "whisper"};
  static const char* glue[] = {"the", "and", "of", "a", "with", "under", "near", "from"};
  std::string s;
  std::uint64_t x = std::uint64_t(seed) * 0x9E3779B97F4A7C15ull + 12345;
  for (int i = 0; i < words; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    s += (i % 2 ? glue[x % 8] : vocab[x % 29]);
    s += (i % 12 == 11) ? ".\n" : " ";
  }
  return s;
}

}  // namespace strata::data::testing_util

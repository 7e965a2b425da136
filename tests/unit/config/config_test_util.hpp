// Helpers for the config tests: a scratch folder per test, and checks on error messages.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <string>

#include <unistd.h>

#include "strata/core/error.hpp"

namespace strata::config::testing {

namespace fs = std::filesystem;

// The message of the strata::Error that `f` throws; fails the test when it throws nothing.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const strata::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a strata::Error, none was thrown";
  return {};
}

// Every piece must appear in the message, and the message must be one line.
inline ::testing::AssertionResult mentions(const std::string& message,
                                           std::initializer_list<std::string> pieces) {
  if (message.find('\n') != std::string::npos)
    return ::testing::AssertionFailure() << "message spans lines: " << message;
  for (const auto& p : pieces)
    if (message.find(p) == std::string::npos)
      return ::testing::AssertionFailure() << "'" << p << "' missing from: " << message;
  return ::testing::AssertionSuccess();
}

// A fresh folder under the system temp dir, removed at the end of the test.
class ScratchDir {
 public:
  ScratchDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / ("strata_config_" + std::string(info->test_suite_name()) + "_" +
                                         info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  std::string write(const std::string& rel, const std::string& text) const {
    const fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }

 private:
  fs::path path_;
};

// Runs the scope with the current directory set to `dir`.
class ChangeDir {
 public:
  explicit ChangeDir(const fs::path& dir) : old_(fs::current_path()) { fs::current_path(dir); }
  ~ChangeDir() { fs::current_path(old_); }

 private:
  fs::path old_;
};

inline std::string source_path(const std::string& rel) { return std::string(STRATA_SOURCE_DIR) + "/" + rel; }

}  // namespace strata::config::testing

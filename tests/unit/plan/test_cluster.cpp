// Cluster files: every shipped file loads; errors name the file, line, key and the fix.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <unistd.h>

#include "plan_test_util.hpp"

namespace strata::config {
namespace {

// ctest runs every test of this file as its own process, in parallel: each test writes under
// a folder of its own (test name and pid), so two tests never read each other's file.
std::string write_temp(const std::string& name, const std::string& text) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const auto dir = std::filesystem::temp_directory_path() /
                   ("strata_cluster_" + std::string(info->name()) + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto path = dir / name;
  std::ofstream(path) << text;
  return path.string();
}

std::string load_error(const std::string& text) {
  const std::string path = write_temp("strata_cluster_test.yaml", text);
  try {
    load_cluster_config(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PlanCluster, ShippedClusterFilesLoad) {
  for (const char* name : {"h100_sxm_80gb", "a100_sxm_80gb", "a100_sxm_40gb", "cpu_node", "local"}) {
    const ClusterConfig c = plan::test::cluster(name);
    EXPECT_EQ(c.name, name);
    EXPECT_GT(c.peak_tflops(), 0) << name;
  }
  const ClusterConfig h100 = plan::test::cluster("h100_sxm_80gb");
  EXPECT_EQ(h100.gpus_per_node, 8);
  EXPECT_DOUBLE_EQ(h100.peak_tflops_bf16, 989);
  EXPECT_EQ(plan::test::cluster("local").precision, Precision::fp32);
}

TEST(PlanCluster, UnknownKeySuggestsTheNearestWithFileAndLine) {
  const std::string msg = load_error("name: x\npeak_tflops_bf6: 10\n");
  EXPECT_NE(msg.find("strata_cluster_test.yaml:2:1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("cluster.peak_tflops_bf6: unknown key"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'peak_tflops_bf16'"), std::string::npos) << msg;
}

TEST(PlanCluster, BadValuesAreNamed) {
  EXPECT_NE(load_error("peak_tflops_bf16: fast\n").find("expected a number >= 0, got 'fast'"),
            std::string::npos);
  EXPECT_NE(load_error("peak_tflops_bf16: 100\nprecision: fp16\n").find("expected one of bf16|fp32"),
            std::string::npos);
  EXPECT_NE(load_error("peak_tflops_bf16: 100\nsustained_fraction: 1.5\n").find("must be in (0, 1]"),
            std::string::npos);
  EXPECT_NE(load_error("precision: bf16\n").find("cluster.peak_tflops_bf16 must be > 0"), std::string::npos);
  EXPECT_NE(load_error("- a\n- b\n").find("expected a mapping of cluster settings"), std::string::npos);
}

// Assumptions are [low, high] ranges around their value; a bad range names the key.
TEST(PlanCluster, AssumptionRangesAreChecked) {
  const std::string ok =
      write_temp("strata_cluster_range.yaml",
                 "peak_tflops_bf16: 100\nsustained_fraction: 0.5\nsustained_fraction_range: [0.4, 0.7]\n");
  EXPECT_EQ(load_cluster_config(ok).sustained_fraction_range, (std::vector<double>{0.4, 0.7}));
  const std::string base = "peak_tflops_bf16: 100\nsustained_fraction: 0.5\n";
  EXPECT_NE(load_error(base + "sustained_fraction_range: [0.7, 0.4]\n")
                .find("expected [low, high] with low <= high"),
            std::string::npos);
  EXPECT_NE(load_error(base + "sustained_fraction_range: [0.6, 0.7]\n")
                .find("does not contain cluster.sustained_fraction"),
            std::string::npos);
  EXPECT_NE(load_error(base + "sustained_fraction_range: [0.4]\n").find("expected [low, high]"),
            std::string::npos);
  const std::string word = load_error(base + "sustained_fraction_range: [0.4, high]\n");
  EXPECT_NE(word.find("strata_cluster_test.yaml:3"), std::string::npos) << word;
  EXPECT_NE(word.find("cluster.sustained_fraction_range[1]: expected a number >= 0, got 'high'"),
            std::string::npos)
      << word;
  EXPECT_NE(load_error(base + "attention_fraction: 1.5\n").find("attention_fraction (1.5) must be in (0, 1]"),
            std::string::npos);
  EXPECT_NE(load_error(base + "oversubscribe: 2\n").find("only CPU ranks can share a core"),
            std::string::npos);
}

// Every constant of a shipped GPU file is either calibrated (named in `calibration`) or an
// assumption with a range: nothing is quoted without its uncertainty.
TEST(PlanCluster, ShippedGpuFilesStateTheirAssumptions) {
  const ClusterConfig h100 = plan::test::cluster("h100_sxm_80gb");
  EXPECT_EQ(h100.sustained_fraction_range.size(), 2u);  // no H100 run calibrates it
  EXPECT_TRUE(h100.calibration.empty());
  const ClusterConfig a100 = plan::test::cluster("a100_sxm_80gb");
  EXPECT_TRUE(a100.sustained_fraction_range.empty());  // fitted and validated
  EXPECT_NE(a100.calibration.find("Megatron-LM 2021"), std::string::npos);
  for (const ClusterConfig& c : {h100, a100}) {
    EXPECT_EQ(c.attention_fraction_range.size(), 2u) << c.name;
    EXPECT_EQ(c.elementwise_fraction_range.size(), 2u) << c.name;
    EXPECT_EQ(c.overlap_efficiency_range.size(), 2u) << c.name;
    EXPECT_EQ(c.small_gemm_width_range.size(), 2u) << c.name;
  }
}

TEST(PlanCluster, NamedConfigsResolveByNameOrPrefix) {
  EXPECT_TRUE(find_named_config("h100", "clusters", "cluster").ends_with("h100_sxm_80gb.yaml"));
  EXPECT_TRUE(find_named_config("llama2_70b", "models", "model").ends_with("llama2_70b.yaml"));
  try {
    find_named_config("h200", "clusters", "cluster");
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown cluster 'h200'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("known: a100_sxm_40gb, a100_sxm_80gb"), std::string::npos) << msg;
  }
  try {
    find_named_config("a100", "clusters", "cluster");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ambiguous cluster 'a100'"), std::string::npos) << e.what();
  }
  try {
    find_named_config("configs/models/nope.yaml", "models", "model");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown model 'configs/models/nope.yaml'"), std::string::npos);
  }
}

}  // namespace
}  // namespace strata::config

// data.schedule and data.curriculum*: parsed from YAML and --set, written back by to_yaml, and
// every mistake named with its key path.
#include "config_test_util.hpp"
#include "strata/config/load.hpp"

using namespace strata::config;
using namespace strata::config::testing;

namespace {
const char* kJob = R"(data:
  source: hdf5
  datasets: [{path: a.h5, weight: 1}, {path: b.h5, weight: 1}]
  schedule:
    - {tokens: 0, weights: [1, 0]}
    - {tokens: 2e6, weights: [0.5, 0.5]}
  curriculum: length
  curriculum_pacing: linear
  curriculum_tokens: 1000000
)";
std::string parse_error(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return error_of([&] { parse_job_config(yaml, "job.yaml", overrides); });
}
}  // namespace

TEST(CurriculumKeys, ScheduleAndCurriculumParseAndRoundTripThroughToYaml) {
  const JobConfig j = parse_job_config(kJob, "job.yaml", {});
  ASSERT_EQ(j.data.schedule.size(), 2u);
  EXPECT_EQ(j.data.schedule[1].tokens, 2000000u);
  EXPECT_EQ(j.data.schedule[1].weights, (std::vector<double>{0.5, 0.5}));
  EXPECT_EQ(j.data.curriculum, CurriculumOrder::length);
  EXPECT_EQ(j.data.curriculum_pacing, CurriculumPacing::linear);
  EXPECT_EQ(j.data.curriculum_tokens, 1000000u);
  const JobConfig back = parse_job_config(to_yaml(j), "roundtrip.yaml", {});
  EXPECT_EQ(back.data.schedule, j.data.schedule);
  EXPECT_EQ(back.data.curriculum, j.data.curriculum);
  const JobConfig set = parse_job_config(kJob, "job.yaml", {"data.schedule=[{tokens: 5, weights: [2, 1]}]"});
  EXPECT_EQ(set.data.schedule.size(), 1u);
  EXPECT_EQ(set.data.schedule[0].tokens, 5u);
}

TEST(CurriculumKeys, MistakesNameTheKeyAndWhatIsWrong) {
  EXPECT_TRUE(mentions(parse_error(kJob, {"data.schedule=[{tokens: 0, weights: [1]}]"}),
                       {"data.schedule[0].weights has 1 weights but data.datasets has 2"}));
  EXPECT_TRUE(mentions(
      parse_error(kJob, {"data.schedule=[{tokens: 9, weights: [1, 1]}, {tokens: 9, weights: [1, 1]}]"}),
      {"data.schedule[1].tokens (9) must be greater"}));
  EXPECT_TRUE(
      mentions(parse_error(kJob, {"data.schedule=[{tokens: 0, weights: [0, 0]}]"}), {"must not all be 0"}));
  EXPECT_TRUE(mentions(parse_error(kJob, {"data.schedule=[{tokens: -1, weights: [1, 1]}]"}),
                       {"data.schedule[0].tokens", "whole number of tokens"}));
  EXPECT_TRUE(mentions(parse_error(kJob, {"data.schedule=[{token: 0, weights: [1, 1]}]"}),
                       {"did you mean 'tokens'?"}));
  EXPECT_TRUE(mentions(parse_error(kJob, {"data.curriculum_tokens=0"}), {"data.curriculum_tokens is 0"}));
  EXPECT_TRUE(mentions(parse_error(kJob, {"data.curriculum=scores"}), {"one score file per dataset"}));
  EXPECT_TRUE(mentions(parse_error(kJob, {"data.curriculum=easy"}),
                       {"data.curriculum", "none|length|quality|scores"}));
  EXPECT_TRUE(mentions(parse_error("data:\n  curriculum: length\n  curriculum_tokens: 5\n"),
                       {"data.curriculum is only used with data.source: hdf5"}));
}

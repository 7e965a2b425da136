// A scaling-study point checked before submission (plan/study.hpp), and the report over a
// study with failed, unfinished and refused points (plan/scaling.hpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "plan_test_util.hpp"
#include "strata/config/load.hpp"
#include "strata/plan/scaling.hpp"
#include "strata/plan/study.hpp"

namespace strata::plan {
namespace {

namespace fs = std::filesystem;

// configs/pretrain_tiny.yaml: tp 2, pp 2, dp derived, micro-batch 4, global batch 16.
config::JobConfig tiny(const std::vector<std::string>& sets = {}) {
  return config::load_job_config(std::string(STRATA_SOURCE_DIR) + "/configs/pretrain_tiny.yaml", sets);
}

bool has(const std::vector<std::string>& v, const std::string& what) {
  for (const auto& s : v)
    if (s.find(what) != std::string::npos) return true;
  return false;
}

TEST(PlanStudy, PointThatRunsIsPredicted) {
  const PointCheck pc = check_point(tiny({"parallel.pp=1"}), 8, 2, test::cluster("local"));
  EXPECT_TRUE(pc.ok()) << (pc.problems.empty() ? "" : pc.problems.front());
  EXPECT_EQ(pc.nodes, 4);
  EXPECT_EQ(pc.dp, 4);
  EXPECT_EQ(pc.global_batch, 16);
  EXPECT_EQ(pc.micro_batches, 1);
  ASSERT_TRUE(pc.predicted);
  EXPECT_GT(pc.prediction.time.total, 0);
  EXPECT_GT(pc.prediction.time.mfu, 0);
  EXPECT_TRUE(pc.prediction.fits);
  // The planner sees the point's ranks per node, not the cluster file's.
  EXPECT_EQ(pc.request.cluster.gpus_per_node, 2);
  EXPECT_EQ(pc.prediction.layout.dp, 4);
  EXPECT_GE(pc.predicted_comm_share(), 0.0);
  EXPECT_LT(pc.predicted_comm_share(), 1.0);
}

TEST(PlanStudy, LayoutThatDoesNotDivideIsRefused) {
  // tp 2 x pp 2 on 6 ranks.
  const PointCheck pc = check_point(tiny(), 6, 2, test::cluster("local"));
  EXPECT_FALSE(pc.ok());
  EXPECT_TRUE(
      has(pc.problems, "layout: cannot derive parallel.dp: world size 6 is not divisible by tp x pp = 2 x 2"))
      << pc.problems.front();
  EXPECT_FALSE(pc.predicted);
}

TEST(PlanStudy, BatchThatDoesNotDivideIsRefusedWithTheTrainersMessage) {
  const PointCheck pc = check_point(tiny({"parallel.pp=1"}), 6, 2, test::cluster("local"));
  EXPECT_FALSE(pc.ok());
  EXPECT_TRUE(
      has(pc.problems,
          "batch: parallel.global_batch_size (16) must be a multiple of micro_batch_size x dp (4 x 3 = 12)"))
      << pc.problems.front();
}

TEST(PlanStudy, PointOverMemoryIsRefused) {
  config::ClusterConfig small = test::cluster("local");
  small.memory_gib = 1e-4;  // 105 KiB per rank
  const PointCheck pc = check_point(tiny({"parallel.pp=1"}), 4, 2, small);
  EXPECT_FALSE(pc.ok());
  EXPECT_TRUE(has(pc.problems, "memory: the planner predicts")) << pc.problems.front();
  EXPECT_TRUE(pc.predicted);  // the prediction says by how much
}

TEST(PlanStudy, ClusterWithoutTheJobsPeakIsRefused) {
  config::ClusterConfig c = test::cluster("h100_sxm_80gb");
  c.peak_tflops_fp32 = 0;  // the CPU job trains in fp32
  const PointCheck pc = check_point(tiny({"parallel.pp=1"}), 4, 2, c);
  EXPECT_TRUE(has(pc.problems, "has no peak_tflops_fp32"))
      << (pc.problems.empty() ? "" : pc.problems.front());
}

TEST(PlanStudy, TensorParallelAcrossNodesIsANoteNotARefusal) {
  const PointCheck pc = check_point(tiny({"parallel.pp=1"}), 4, 1, test::cluster("local"));
  EXPECT_TRUE(pc.ok());
  EXPECT_TRUE(has(pc.notes, "span nodes"));
}

TEST(PlanStudy, CpuRanksSharingANodeGetAShareOfIt) {
  // local.yaml: 2 slots (cores) per node; 8 ranks on one node share them, 4 ranks per core.
  const config::ClusterConfig local = test::cluster("local");
  const PointCheck pc = check_point(tiny({"parallel.pp=1"}), 8, 8, local);
  EXPECT_TRUE(pc.ok()) << (pc.problems.empty() ? "" : pc.problems.front());
  EXPECT_EQ(pc.nodes, 1);
  EXPECT_EQ(pc.request.cluster.gpus_per_node, 8);
  EXPECT_DOUBLE_EQ(pc.request.cluster.peak_tflops_fp32, local.peak_tflops_fp32 * 2 / 8);
  EXPECT_DOUBLE_EQ(pc.request.cluster.memory_gib, local.memory_gib * 2 / 8);
}

TEST(PlanStudy, MoreGpuRanksThanGpusPerNodeIsRefused) {
  config::JobConfig job = tiny({"parallel.pp=1"});
  const PointCheck pc = check_point(job, 16, 16, test::cluster("h100_sxm_80gb"));
  EXPECT_FALSE(pc.ok());
  EXPECT_TRUE(has(pc.problems, "only CPU ranks can share a slot"))
      << (pc.problems.empty() ? "" : pc.problems.front());
}

TEST(PlanStudy, DefaultClusterFollowsTheJob) {
  config::JobConfig job = tiny();
  EXPECT_EQ(default_cluster_for(job), "cpu_node");
  job.hardware.device = config::DeviceKind::cuda;
  EXPECT_EQ(default_cluster_for(job), "h100_sxm_80gb");
  job.hardware.cluster = "local";
  EXPECT_EQ(default_cluster_for(job), "local");
}

// ---- the report over a study's points ----

fs::path study_dir(const std::string& name) {
  const fs::path d = fs::path(testing::TempDir()) / "strata_study" / name;
  fs::remove_all(d);
  fs::create_directories(d / "runs");
  fs::create_directories(d / "logs");
  return d;
}

// A run of configs/pretrain_tiny.yaml (pp 1) at `ranks` on `nodes` nodes, as strata train and
// slurm/launch.sh leave it: `steps` of the 5 planned recorded; exit_code < 0: none in job.json.
fs::path make_run(const fs::path& study, const std::string& name, int nodes, int ranks, int steps,
                  int exit_code, const std::string& log) {
  const fs::path d = study / "runs" / name;
  fs::create_directories(d);
  std::ofstream(d / "config.yaml") << config::to_yaml(tiny({"parallel.pp=1", "train.steps=5"}));
  std::ofstream m(d / "metrics.jsonl");
  for (int s = 1; s <= steps; ++s)
    m << "{\"step\": " << s << ", \"loss\": 3.0, \"tokens_per_s\": " << 1024 / (0.1 * 4 / ranks)
      << ", \"step_ms\": " << 100.0 * 4 / ranks
      << ", \"tflops\": 0.01, \"mfu\": 0.1, \"pipeline_wait_ms\": 1, "
      << "\"dp_wait_ms\": " << 4.0 * 4 / ranks << "}\n";
  std::ofstream j(d / "job.json");
  j << "{\"job_id\": \"1\", \"nodes\": " << nodes << ", \"ranks\": " << ranks
    << ", \"ranks_per_node\": " << ranks / nodes << ", \"tag\": \"t\", \"scaling\": \"strong\", \"log\": \""
    << log << "\"";
  if (exit_code >= 0) j << ", \"exit_code\": " << exit_code;
  j << "}\n";
  return d;
}

TEST(PlanStudy, ReportHasTheFinishedRunsAndListsEveryOtherPoint) {
  const fs::path s = study_dir("mixed");
  const std::string log3 = (s / "logs" / "p3.out").string();
  std::ofstream(log3)
      << "strata-slurm: starting\nstrata: error (rank 0 of 6): parallel.global_batch_size (16) "
         "must be a multiple of micro_batch_size x dp (4 x 3 = 12)\nsrun: error: node1: task 0\n";
  make_run(s, "p1", 1, 2, 5, 0, "");
  make_run(s, "p2", 2, 4, 5, -1, "");  // no exit code yet, but every step: finished
  make_run(s, "p4", 4, 8, 3, 1, "");   // stopped at step 3 with status 1
  std::ofstream(s / "study.jsonl")
      << "{\"study\": \"t\", \"mode\": \"strong\", \"cluster\": \"local\"}\n"
      << "{\"point\": \"p1\", \"nodes\": 1, \"ranks\": 2, \"status\": \"submitted\", \"run_dir\": \""
      << (s / "runs" / "p1").string() << "\"}\n"
      << "{\"point\": \"p2\", \"nodes\": 2, \"ranks\": 4, \"status\": \"submitted\", \"run_dir\": \""
      << (s / "runs" / "p2").string() << "\"}\n"
      << "{\"point\": \"p3\", \"nodes\": 3, \"ranks\": 6, \"status\": \"submitted\", \"run_dir\": \""
      << (s / "runs" / "p3-never").string() << "\", \"log\": \"" << log3 << "\"}\n"
      << "{\"point\": \"p4\", \"nodes\": 4, \"ranks\": 8, \"status\": \"submitted\", \"run_dir\": \""
      << (s / "runs" / "p4").string() << "\"}\n"
      << "{\"point\": \"p5\", \"nodes\": 5, \"ranks\": 10, \"status\": \"refused\", \"reason\": \"batch: "
         "no\"}\n"
      << "{\"point\": \"p6\", \"nodes\": 64, \"ranks\": 128, \"status\": \"submit_failed\", \"reason\": "
         "\"sbatch: "
         "error: Node count specification invalid\"}\n";
  const ScalingReport rep = build_study_report(s.string(), {});
  ASSERT_EQ(rep.rows.size(), 2u);
  EXPECT_EQ(rep.rows[0].run.name, "p1");
  EXPECT_EQ(rep.rows[1].run.name, "p2");
  EXPECT_NEAR(rep.rows[1].efficiency, 1.0, 1e-9);  // twice the ranks, half the step time
  // Communication share: (1 + 8) ms of 200 ms at 2 ranks; (1 + 4) of 100 at 4.
  EXPECT_NEAR(rep.rows[0].run.comm_share, 0.045, 1e-9);
  EXPECT_NEAR(rep.rows[1].run.comm_share, 0.05, 1e-9);
  // Predictions from the study's cluster for each run's own layout.
  EXPECT_NE(rep.cluster.find("local.yaml"), std::string::npos);
  ASSERT_TRUE(rep.rows[0].predicted.valid && rep.rows[1].predicted.valid) << rep.rows[0].predicted.note;
  EXPECT_GT(rep.rows[0].predicted.step_ms, rep.rows[1].predicted.step_ms);
  EXPECT_DOUBLE_EQ(rep.rows[0].predicted_efficiency, 1.0);
  EXPECT_GT(rep.rows[1].predicted_speedup, 1.0);

  ASSERT_EQ(rep.failed.size(), 4u);
  EXPECT_EQ(rep.failed[0].name, "p3");
  EXPECT_EQ(rep.failed[0].status, "no run");
  EXPECT_NE(rep.failed[0].reason.find("global_batch_size (16) must be a multiple"), std::string::npos)
      << rep.failed[0].reason;
  EXPECT_EQ(rep.failed[1].name, "p4");
  EXPECT_EQ(rep.failed[1].status, "failed");
  EXPECT_NE(rep.failed[1].reason.find("status 1; stopped at step 3 of 5"), std::string::npos)
      << rep.failed[1].reason;
  EXPECT_EQ(rep.failed[2].status, "refused");
  EXPECT_EQ(rep.failed[2].reason, "batch: no");
  EXPECT_EQ(rep.failed[3].status, "submit failed");

  const std::string md = scaling_markdown(rep);
  EXPECT_NE(md.find("pred. step (ms)"), std::string::npos) << md;
  EXPECT_NE(md.find("### Points without a result (4)"), std::string::npos) << md;
  const std::string csv = scaling_csv(rep);
  EXPECT_NE(csv.find(",comm_share,pred_step_ms,pred_tokens_per_s,pred_mfu,pred_comm_share,pred_speedup,"
                     "pred_efficiency,pred_memory_gib"),
            std::string::npos)
      << csv;
  const std::string gp = scaling_gnuplot(rep, "s.csv", "s.png");
  EXPECT_NE(gp.find("using 3:21"), std::string::npos) << gp;         // predicted tokens/s against nodes
  EXPECT_NE(gp.find("using 3:(100*$25)"), std::string::npos) << gp;  // predicted efficiency
}

TEST(PlanStudy, NoFinishedRunIsAnErrorListingTheFailures) {
  const fs::path s = study_dir("none");
  std::ofstream(s / "study.jsonl")
      << "{\"point\": \"p5\", \"nodes\": 5, \"ranks\": 10, \"status\": \"refused\", "
         "\"reason\": \"batch: no\"}\n";
  try {
    build_study_report(s.string(), {});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no finished runs: p5: refused: batch: no"), std::string::npos)
        << e.what();
  }
}

TEST(PlanStudy, FirstErrorLinePrefersStratasOwn) {
  const fs::path s = study_dir("log");
  std::ofstream(s / "a.log") << "srun: error: node2: task 3: Exited with exit code 1\n"
                                "strata: error (rank 3 of 4): injected failure at step 3\n";
  EXPECT_EQ(first_error_line((s / "a.log").string()),
            "strata: error (rank 3 of 4): injected failure at step 3");
  std::ofstream(s / "b.log") << "all good\nslurmstepd: error: *** JOB 7 CANCELLED ***\n";
  EXPECT_EQ(first_error_line((s / "b.log").string()), "slurmstepd: error: *** JOB 7 CANCELLED ***");
  EXPECT_EQ(first_error_line((s / "missing.log").string()), "");
}

}  // namespace
}  // namespace strata::plan

// The planner's context parallelism (layout part cpN): names, memory (the engine's plan at
// seq_len / cp), time (1/cp of the compute, the ring's exchanges or Ulysses' all-to-alls) and the
// search over cp and its two modes.
#include <gtest/gtest.h>

#include <set>

#include "plan_test_util.hpp"
#include "strata/plan/search.hpp"

namespace strata::plan {
namespace {

PlanRequest cpu_request(int gpus, int max_cp) {
  PlanRequest r;
  r.workload = Workload::of(test::model("tiny_llama"), 0);
  r.cluster = test::cluster("local");
  r.gpus = gpus;
  r.global_batch = 8;
  r.tokens = 1e9;
  r.max_cp = max_cp;
  return r;
}

TEST(PlanContextParallel, LayoutNamesCarryCpAndDpFollowsFromIt) {
  const Layout l = parse_layout("tp1-pp1-cp4-mb1", 8, 8, config::Precision::fp32);
  EXPECT_EQ(l.cp, 4);
  EXPECT_EQ(l.dp, 2);
  EXPECT_EQ(l.gpus(), 8);
  EXPECT_EQ(to_string(l), "tp1-pp1-dp2-cp4-v1-mb1-z1-rnone");
  EXPECT_EQ(parse_layout(to_string(l), 8, 8, config::Precision::fp32).cp, 4);
  Layout one = l;
  one.cp = 1;
  EXPECT_EQ(to_string(one).find("cp"), std::string::npos);  // cp = 1: the name as before
}

TEST(PlanContextParallel, ActivationsShrinkWithCpAndTheWeightsDoNot) {
  const PlanRequest r = cpu_request(4, 4);
  Layout base = parse_layout("tp1-pp1-dp1-mb1-z0", 1, 8, config::Precision::fp32);
  Layout cp4 = base;
  cp4.cp = 4;
  const MemoryBreakdown m1 = predict_memory(r.workload, base, r.cluster),
                        m4 = predict_memory(r.workload, cp4, r.cluster);
  EXPECT_EQ(m4.weights, m1.weights);
  EXPECT_EQ(m4.gradients, m1.gradients);
  EXPECT_EQ(m4.optimizer, m1.optimizer);
  EXPECT_LT(m4.activations, m1.activations / 3);
  EXPECT_GT(m4.activations, 0.0);
  // Time: 1/cp of the GEMMs per rank, plus the ring's exchanges and the gradient sum over cp.
  const StepTime t1 = predict_step_time(r.workload, base, r.cluster, m1),
                 t4 = predict_step_time(r.workload, cp4, r.cluster, m4);
  EXPECT_NEAR(t4.gemm, t1.gemm / 4, 1e-9 * t1.gemm);
  EXPECT_NEAR(t4.attention, t1.attention / 4, 1e-9 * t1.attention);
  EXPECT_GT(t4.cp_comm, 0.0);
  EXPECT_GT(t4.cp_exposed, 0.0);
  EXPECT_LE(t4.cp_exposed, t4.cp_comm);
  EXPECT_EQ(t1.cp_comm, 0.0);
}

// Ulysses (part "ulysses", parallel.cp_mode: ulysses): named and parsed, only with cp > 1 and
// where cp divides the heads and KV heads of a TP rank (tiny_llama: 4 heads over 2 KV heads);
// its time is its all-to-alls, none hidden; its memory the engine's Ulysses plan.
TEST(PlanContextParallel, UlyssesIsNamedSplitsTheHeadsAndPaysItsAllToAlls) {
  const PlanRequest r = cpu_request(2, 2);
  const Layout u = parse_layout("tp1-pp1-cp2-mb1-z0-ulysses", 2, 8, config::Precision::fp32);
  EXPECT_TRUE(u.ulysses);
  EXPECT_EQ(to_string(u), "tp1-pp1-dp1-cp2-v1-mb1-z0-rnone-ulysses");
  EXPECT_TRUE(parse_layout(to_string(u), 2, 8, config::Precision::fp32).ulysses);
  EXPECT_THROW(parse_layout("tp1-pp1-ulysses", 2, 8, config::Precision::fp32), Error);
  EXPECT_EQ(layout_unsupported(r, u), "");
  Layout ring = u;
  ring.ulysses = false;
  const MemoryBreakdown mu = predict_memory(r.workload, u, r.cluster),
                        mr = predict_memory(r.workload, ring, r.cluster);
  EXPECT_EQ(mu.weights, mr.weights);
  EXPECT_NE(mu.activations, mr.activations);  // whole-sequence attention, the all-to-all buffers
  const StepTime tu = predict_step_time(r.workload, u, r.cluster, mu),
                 tr = predict_step_time(r.workload, ring, r.cluster, mr);
  EXPECT_NEAR(tu.attention, tr.attention, 1e-9 * tr.attention);  // the same attention work per rank
  EXPECT_GT(tu.cp_comm, 0.0);
  EXPECT_EQ(tu.cp_exposed, tu.cp_comm);  // blocking all-to-alls
  PlanRequest r4 = cpu_request(4, 4);
  Layout u4 = parse_layout("tp1-pp1-cp4-ulysses", 4, 8, config::Precision::fp32);
  EXPECT_NE(layout_unsupported(r4, u4).find("ulysses cp 4"), std::string::npos);  // 2 KV heads
  for (const Layout& l : enumerate_layouts(r4)) {
    if (l.ulysses) {
      EXPECT_EQ(l.cp, 2);
    }
  }
}

TEST(PlanContextParallel, SearchTriesCpUpToMaxCpOnCpusAndGpus) {
  auto cps = [](const std::vector<Layout>& ls) {
    std::set<int> s;
    for (const Layout& l : ls) s.insert(l.cp);
    return s;
  };
  PlanRequest r = cpu_request(8, 4);
  const std::vector<Layout> with = enumerate_layouts(r);
  EXPECT_EQ(cps(with), (std::set<int>{1, 2, 4}));
  for (const Layout& l : with) {
    EXPECT_EQ(l.gpus(), 8);
    EXPECT_EQ(r.workload.seq_len % (2 * l.cp), 0);
    EXPECT_EQ(layout_unsupported(r, l), "");
  }
  r.max_cp = 1;
  EXPECT_EQ(cps(enumerate_layouts(r)), (std::set<int>{1}));
  PlanRequest g = r;  // head size 64: the GPU's attention runs it
  g.workload = Workload::of(test::model("gpt2_124m"), 1024);
  g.cluster = test::cluster("h100_sxm_80gb");
  g.max_cp = 8;
  const std::vector<Layout> gpu = enumerate_layouts(g);  // the CUDA backend runs cp in both modes
  EXPECT_EQ(cps(gpu), (std::set<int>{1, 2, 4, 8}));      // ring up to 8; Ulysses where 12 heads split
  bool ulysses = false;
  for (const Layout& l : gpu) {
    EXPECT_EQ(layout_unsupported(g, l), "") << to_string(l);
    if (l.ulysses) {
      EXPECT_TRUE(l.cp == 2 || l.cp == 4) << to_string(l);
    }
    ulysses = ulysses || l.ulysses;
  }
  EXPECT_TRUE(ulysses);
  Layout l = parse_layout("tp1-pp1-cp2", 8, 8, config::Precision::bf16);
  EXPECT_EQ(layout_unsupported(g, l), "");
  l.ulysses = true;
  EXPECT_EQ(layout_unsupported(g, l), "");
}

}  // namespace
}  // namespace strata::plan

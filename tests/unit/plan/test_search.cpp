// Layout enumeration and ranking, layout names, and the messages for requests nothing satisfies.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "plan_test_util.hpp"
#include "strata/plan/search.hpp"

namespace strata::plan {
namespace {

PlanRequest request(const char* model, const char* cluster, int gpus, int batch) {
  PlanRequest r;
  r.workload = Workload::of(test::model(model), 0);
  r.cluster = test::cluster(cluster);
  r.gpus = gpus;
  r.global_batch = batch;
  r.tokens = 1e12;
  return r;
}

std::string error_of(const PlanRequest& r) {
  try {
    search_layouts(r);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(PlanSearch, EveryEnumeratedLayoutIsValid) {
  const PlanRequest r = request("llama2_70b", "h100_sxm_80gb", 512, 1024);
  const auto layouts = enumerate_layouts(r);
  ASSERT_FALSE(layouts.empty());
  int zero_bubble = 0;
  for (const Layout& l : layouts) {
    if (l.zb) {  // the zero-bubble schedule: a plain pipeline that keeps its activations
      ++zero_bubble;
      EXPECT_GT(l.pp, 1);
      EXPECT_EQ(l.vpp, 1);
      EXPECT_NE(l.recompute, Recompute::full);
    }
    EXPECT_EQ(l.gpus(), 512);
    EXPECT_EQ(l.global_batch(), 1024);
    EXPECT_EQ(8 % l.tp, 0);  // GPUs per node and KV heads
    EXPECT_EQ(80 % (l.pp * l.vpp), 0);
    if (l.vpp > 1) {
      EXPECT_EQ(l.micro_batches % l.pp, 0);
    }
    if (l.sequence_parallel) {
      EXPECT_GT(l.tp, 1);
    }
  }
  EXPECT_GT(zero_bubble, 0);
  Layout zb = *std::find_if(layouts.begin(), layouts.end(), [](const Layout& l) { return l.zb; });
  zb.recompute = Recompute::full;
  EXPECT_NE(layout_unsupported(r, zb).find("zero-bubble schedule (zb) runs without virtual stages, GPipe or "
                                           "full recomputation"),
            std::string::npos);
}

// The CPU backend runs zb_h1 with every ZeRO stage: the search tries ZeRO-2/3 under zb too, and
// their memory counts the gradients zb's B pass holds for W (the planner reads the engine's plan).
TEST(PlanSearch, ZeroBubbleIsSearchedWithZeroTwoAndThreeOnTheCpu) {
  const PlanRequest r = request("tiny_llama", "local", 8, 8);
  std::set<int> zero_under_zb;
  for (const Layout& l : enumerate_layouts(r))
    if (l.zb) zero_under_zb.insert(l.zero);
  EXPECT_EQ(zero_under_zb, (std::set<int>{0, 1, 2, 3}));
  for (const int zero : {2, 3}) {
    Layout zb =
        parse_layout("tp1-pp2-dp4-mb1-z" + std::to_string(zero) + "-zb", 8, 8, config::Precision::fp32);
    ASSERT_TRUE(zb.zb);
    EXPECT_EQ(layout_unsupported(r, zb), "");
    Layout plain = zb;
    plain.zb = false;
    EXPECT_GT(predict_memory(r.workload, zb, r.cluster).gradients,
              predict_memory(r.workload, plain, r.cluster).gradients);
  }
}

TEST(PlanSearch, BestLayoutFitsAndIsFastest) {
  const PlanResult res = search_layouts(request("llama2_70b", "h100_sxm_80gb", 512, 1024));
  ASSERT_FALSE(res.fitting.empty());
  EXPECT_GT(res.over_memory, 0);  // e.g. tp1 pp1: 70B x 18 bytes never fits
  for (std::size_t i = 0; i < res.fitting.size(); ++i) {
    EXPECT_LE(res.fitting[i].memory.total(), res.usable_bytes);
    if (i > 0) {
      EXPECT_LE(res.fitting[i - 1].time.total, res.fitting[i].time.total);
    }
  }
  // A 70B model on H100s wants tensor parallelism inside the node.
  EXPECT_GE(res.fitting.front().layout.tp, 4);
}

// Any micro-batch size and any virtual-stage count that divides the layers per stage can be
// expressed (Megatron-LM's published 2021 layouts use micro-batches of 16 and 3 virtual stages);
// one filter, layout_unsupported(), says why a layout cannot run.
TEST(PlanSearch, PublishedLayoutsCanBeExpressed) {
  PlanRequest r = request("gpt3_175b", "a100_sxm_80gb", 1024, 1536);
  const Layout v3 = parse_layout("tp8-pp8-v3-mb1-z0-rfull", 1024, 1536, config::Precision::bf16);
  EXPECT_EQ(layout_unsupported(r, v3), "");
  EXPECT_EQ(v3.dp, 16);
  PlanRequest small = request("gpt2_124m", "a100_sxm_80gb", 32, 512);
  const Layout mb16 = parse_layout("tp1-pp1-mb16-z0", 32, 512, config::Precision::bf16);
  EXPECT_EQ(layout_unsupported(small, mb16), "");
  EXPECT_EQ(mb16.micro_batches, 1);
  // The search enumerates every virtual-stage count dividing the layers per stage.
  bool saw_v3 = false;
  for (const Layout& l : enumerate_layouts(r)) {
    EXPECT_EQ(layout_unsupported(r, l), "") << to_string(l);
    saw_v3 = saw_v3 || (l.vpp == 3 && l.pp == 8);
  }
  EXPECT_TRUE(saw_v3);
  EXPECT_NE(layout_unsupported(r, parse_layout("tp8-pp8-v5-mb1", 1024, 1536, config::Precision::bf16))
                .find("must divide the 96 layers"),
            std::string::npos);
  EXPECT_NE(layout_unsupported(r, parse_layout("tp8-pp8-v2-mb16", 1024, 1536, config::Precision::bf16))
                .find("multiple of pp"),
            std::string::npos);  // 1536 / (16 x 16) = 6 micro-batches on 8 stages
  Layout flat = parse_layout("tp8-pp1-mb1", 1024, 1536, config::Precision::bf16);
  flat.vpp = 2;
  EXPECT_NE(layout_unsupported(r, flat).find("need a pipeline"), std::string::npos);
}

TEST(PlanSearch, TooFewGpusSaysHowManyAreNeeded) {
  const std::string msg = error_of(request("llama2_70b", "h100_sxm_80gb", 8, 1024));
  EXPECT_NE(msg.find("needs at least 16 H100 SXM 80GB for llama2_70b at ZeRO-1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("got 8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("raise --gpus"), std::string::npos) << msg;
  const std::string a100 = error_of(request("llama2_70b", "a100_sxm_40gb", 16, 1024));
  EXPECT_NE(a100.find("needs at least"), std::string::npos) << a100;
  EXPECT_NE(a100.find("got 16"), std::string::npos) << a100;
}

TEST(PlanSearch, BatchThatNoLayoutSplitsNamesTheFix) {
  // 512 GPUs: at most tp 8 x pp 32 (of 32 layers), so dp >= 2 and an odd batch never splits.
  const std::string msg = error_of(request("llama2_7b", "h100_sxm_80gb", 512, 3));
  EXPECT_NE(msg.find("global batch of 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("multiple of 512"), std::string::npos) << msg;
}

TEST(PlanSearch, MinGpusFindsTheSmallestFittingCount) {
  const PlanRequest r = request("gpt2_124m", "h100_sxm_80gb", 1, 8);
  EXPECT_EQ(min_gpus_to_fit(r), 1);
  Layout l;
  const int n = min_gpus_to_fit(request("llama2_70b", "h100_sxm_80gb", 1, 8), &l);
  EXPECT_EQ(n, 16);
  EXPECT_EQ(l.gpus(), 16);
}

TEST(PlanLayout, NamesRoundTrip) {
  Layout l;
  l.tp = 8, l.pp = 4, l.dp = 16, l.vpp = 2, l.micro_batch = 2, l.zero = 1, l.sequence_parallel = true;
  l.recompute = Recompute::selective;
  const std::string name = to_string(l);
  EXPECT_EQ(name, "tp8-pp4-dp16-v2-mb2-z1-sp-rsel");
  const Layout back = parse_layout(name, 512, 1024, config::Precision::bf16);
  EXPECT_EQ(to_string(back), name);
  EXPECT_EQ(back.micro_batches, 1024 / (2 * 16));
  // dp defaults to the rest of the GPUs.
  EXPECT_EQ(parse_layout("tp8-pp4", 512, 1024, config::Precision::bf16).dp, 16);
}

TEST(PlanLayout, BadNamesSayWhatIsAllowed) {
  auto msg = [](const std::string& text) {
    try {
      parse_layout(text, 512, 1024, config::Precision::bf16);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(msg("tp8-px4").find("'px4': unknown part"), std::string::npos);
  EXPECT_NE(msg("tp8-z4").find("ZeRO stage must be 0, 1, 2 or 3"), std::string::npos);
  EXPECT_NE(msg("tp3").find("does not divide the GPU count 512"), std::string::npos);
  EXPECT_NE(msg("tp8-pp4-dp8").find("but the job has 512 GPUs"), std::string::npos);
  EXPECT_NE(msg("tp8-mb3").find("not a multiple of mb x dp"), std::string::npos);
}

}  // namespace
}  // namespace strata::plan

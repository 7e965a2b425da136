// MFU against the per-rank peak (train/peak.hpp): never above 100%, a warning once when the
// peak is exceeded, and the share of a probe that a rank gets.
#include <gtest/gtest.h>

#include "strata/train/peak.hpp"

using namespace strata;

TEST(Peak, MfuIsTflopsOverThePeak) {
  train::PeakFlops p(0.2, "test", false);
  EXPECT_DOUBLE_EQ(p.mfu(0.05), 0.25);
  EXPECT_DOUBLE_EQ(p.mfu(0.2), 1.0);
  EXPECT_FALSE(p.exceeded());
}

TEST(Peak, MfuAboveOneIsNeverReportedAndStaysOff) {
  // A step above the peak proves the peak too low: MFU is 0 (not reported) from then on, also
  // for later steps that would fall below 1 again.
  train::PeakFlops p(0.1, "test", false);
  EXPECT_DOUBLE_EQ(p.mfu(0.05), 0.5);
  EXPECT_DOUBLE_EQ(p.mfu(0.15), 0.0);
  EXPECT_TRUE(p.exceeded());
  EXPECT_DOUBLE_EQ(p.mfu(0.05), 0.0);
}

TEST(Peak, UnknownPeakReportsNoMfu) {
  train::PeakFlops p;
  EXPECT_DOUBLE_EQ(p.mfu(1.0), 0.0);
}

TEST(Peak, WarningNamesTheSourceAndTheKeyOnce) {
  train::PeakFlops p(0.1, "measured on a busy host", true);
  testing::internal::CaptureStderr();
  p.mfu(0.3);
  p.mfu(0.3);
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("MFU would be 300%"), std::string::npos) << err;
  EXPECT_NE(err.find("measured on a busy host"), std::string::npos) << err;
  EXPECT_NE(err.find("hardware.peak_tflops"), std::string::npos) << err;
  EXPECT_EQ(err.find("MFU would be", err.find("MFU would be") + 1), std::string::npos)
      << "warned twice: " << err;
}

TEST(Peak, RankShareOfTheProbe) {
  // Unbound ranks float over the host: 8 ranks on 2 cores share a 2-core probe of 400 GFLOP/s.
  EXPECT_DOUBLE_EQ(train::rank_share_of_probe(0.4, 2, 2, 8), 0.05);
  // Bound ranks, one core each on a 128-core host: the probe ran on that core, which is theirs.
  EXPECT_DOUBLE_EQ(train::rank_share_of_probe(0.02, 1, 128, 8), 0.02);
  // 4 ranks bound to 8 cores each on 32 cores: the rank keeps the 8 the probe ran on.
  EXPECT_DOUBLE_EQ(train::rank_share_of_probe(0.16, 8, 32, 4), 0.16);
  // One rank alone on the host.
  EXPECT_DOUBLE_EQ(train::rank_share_of_probe(0.3, 2, 2, 1), 0.3);
}

TEST(Peak, HostKeyIsStable) {
  EXPECT_FALSE(train::host_key().empty());
  EXPECT_EQ(train::host_key(), train::host_key());
}

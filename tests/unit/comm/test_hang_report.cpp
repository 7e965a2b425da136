// The hang report's account of a group (describe_arrivals): who has not arrived at the stuck
// collective, who entered another one at that number, who is past it, who did not answer.
#include <gtest/gtest.h>

#include "strata/comm/mpi_communicator.hpp"

using namespace strata::comm;

namespace {
std::string name(int global_rank) { return "global rank " + std::to_string(global_rank) + " (xy)"; }
PeerProgress peer(int group_rank, std::uint64_t entered, CollectiveKind last, bool read = true) {
  return {group_rank, 10 + group_rank, read, entered, last};
}
bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }
}  // namespace

TEST(HangReport, NamesTheRanksBehindAndCountsThoseThatArrived) {
  // This is dp rank 1, stuck in all_reduce #5; ranks 0 and 3 are in it too; rank 2 is at #4.
  const std::vector<PeerProgress> peers = {
      peer(0, 5, CollectiveKind::all_reduce), peer(1, 5, CollectiveKind::all_reduce),
      peer(2, 4, CollectiveKind::broadcast), peer(3, 5, CollectiveKind::all_reduce)};
  const std::string s = describe_arrivals(CollectiveKind::all_reduce, 5, 5, "dp", 1, peers, name);
  EXPECT_TRUE(has(
      s, "not arrived: 1 of the 3 other ranks (dp rank 2 = global rank 12 (xy), last entered broadcast #4)"))
      << s;
  EXPECT_TRUE(has(s, "; arrived: 2")) << s;
  EXPECT_FALSE(has(s, "different")) << s;
}

TEST(HangReport, FlagsDifferentCollectivesRanksAheadAndSilentRanks) {
  const std::vector<PeerProgress> peers = {
      peer(0, 7, CollectiveKind::broadcast), peer(1, 7, CollectiveKind::all_reduce),
      peer(2, 9, CollectiveKind::barrier), peer(3, 0, CollectiveKind::none, false),
      peer(4, 0, CollectiveKind::none)};
  const std::string s = describe_arrivals(CollectiveKind::all_reduce, 7, 7, "tp", 1, peers, name);
  EXPECT_TRUE(
      has(s, "not arrived: 1 of the 4 other ranks (tp rank 4 = global rank 14 (xy), last entered none yet)"))
      << s;
  EXPECT_TRUE(
      has(s,
          "in a different collective at #7 (the ranks call collectives in different orders): tp rank 0 = "
          "global rank 10 (xy), entered broadcast as #7"))
      << s;
  EXPECT_TRUE(has(
      s,
      "past this rank's #7 (the sequences differ): tp rank 2 = global rank 12 (xy), already at barrier #9"))
      << s;
  EXPECT_TRUE(has(
      s, "no answer (busy outside MPI without asynchronous progress, or dead): tp rank 3 = global rank 13"))
      << s;
  EXPECT_TRUE(has(s, "arrived: 0")) << s;
}

TEST(HangReport, ALargeGroupNamesSixteenRanksAndCountsTheRest) {
  std::vector<PeerProgress> peers;
  for (int r = 0; r < 1000; ++r) peers.push_back(peer(r, r < 100 ? 2 : 3, CollectiveKind::all_gather));
  const std::string s = describe_arrivals(CollectiveKind::all_gather, 3, 3, "world", 500, peers, name);
  EXPECT_TRUE(has(s, "not arrived: 100 of the 999 other ranks (world rank 0 = ")) << s;
  EXPECT_TRUE(has(s, "world rank 15 = global rank 25 (xy), last entered all_gather #2; and 84 more)")) << s;
  EXPECT_TRUE(has(s, "arrived: 899")) << s;
}

TEST(HangReport, NonBlockingCollectivesInFlightAreNotMistakenForADifferentSequence) {
  // This rank waits on all_reduce #5 but has started #6 and #7 (overlapped gradient buckets);
  // a peer at #7 has arrived at #5, one at #8 is past this rank, one at #4 is behind.
  const std::vector<PeerProgress> peers = {
      peer(0, 7, CollectiveKind::all_reduce), peer(1, 7, CollectiveKind::all_reduce),
      peer(2, 8, CollectiveKind::all_reduce), peer(3, 4, CollectiveKind::all_reduce)};
  const std::string s = describe_arrivals(CollectiveKind::all_reduce, 5, 7, "dp", 1, peers, name);
  EXPECT_TRUE(has(s, "not arrived: 1 of the 3 other ranks (dp rank 3 = ")) << s;
  EXPECT_TRUE(has(s, "; arrived: 1")) << s;
  EXPECT_TRUE(has(s, "past this rank's #7 (the sequences differ): dp rank 2 = ")) << s;
}

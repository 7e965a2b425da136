#include <gtest/gtest.h>

#include <cmath>

#include "data_test_util.hpp"
#include "strata/data/dedup.hpp"

using namespace strata::data;
using testing_util::paragraph;

TEST(ExactDedup, LaterCopiesAreFlaggedAndTheFirstStays) {
  const std::vector<Hash128> h = {hash128("a"), hash128("b"), hash128("a"),
                                  hash128("c"), hash128("b"), hash128("a")};
  EXPECT_EQ(mark_exact_duplicates(h), (std::vector<std::uint8_t>{0, 0, 1, 0, 1, 1}));
}

TEST(ExactDedup, HashIsStableAndSensitiveToEveryByte) {
  EXPECT_EQ(hash128("hello world"), hash128("hello world"));
  EXPECT_NE(hash128("hello world"), hash128("hello worle"));
  EXPECT_NE(hash128(std::string("a\0b", 3)), hash128(std::string("a\0c", 3)));
  EXPECT_EQ(hash128("").hex().size(), 32u);
}

TEST(MinHash, SignatureEstimatesJaccardSimilarity) {
  const MinHasher h({.num_perm = 256, .shingle = 3, .threshold = 0.8});
  const std::string a = paragraph(1, 200);
  std::string b = a;
  b.replace(b.size() / 2, 40, "completely different words inserted here now");
  const std::string c = paragraph(2, 200);
  const auto sa = h.signature(a), sb = h.signature(b), sc = h.signature(c);
  EXPECT_GT(estimate_jaccard(sa.data(), sb.data(), 256), 0.75);
  EXPECT_LT(estimate_jaccard(sa.data(), sc.data(), 256), 0.3);
  EXPECT_EQ(estimate_jaccard(sa.data(), h.signature(a).data(), 256), 1.0);
}

TEST(MinHash, LshParametersPutTheSCurveNearTheThreshold) {
  for (double t : {0.5, 0.7, 0.8, 0.9}) {
    int b = 0, r = 0;
    optimal_lsh_params(t, 128, b, r);
    EXPECT_LE(b * r, 128);
    const double knee = std::pow(1.0 / b, 1.0 / r);
    EXPECT_NEAR(knee, t, 0.12) << "threshold " << t << ": b=" << b << " r=" << r;
  }
}

// The plain search (the definition: pow() at each midpoint of 200 panels, every (b, r)); the
// library caches s^r across b and must choose exactly the same split.
TEST(MinHash, LshParametersEqualThePlainSearch) {
  const auto integrate = [](auto f, double a, double b) {
    const double h = (b - a) / 200;
    double s = 0;
    for (int i = 0; i < 200; ++i) s += f(a + (i + 0.5) * h);
    return s * h;
  };
  for (const int P : {2, 16, 64, 128})
    for (const double t : {0.3, 0.5, 0.7, 0.8, 0.85, 0.9, 0.95}) {
      double best = 1e300;
      int want_b = 1, want_r = P;
      for (int b = 1; b <= P; ++b)
        for (int r = 1; b * r <= P; ++r) {
          auto p = [&](double s) { return 1 - std::pow(1 - std::pow(s, r), b); };
          const double err = integrate(p, 0.0, t) + integrate([&](double s) { return 1 - p(s); }, t, 1.0);
          if (err < best) best = err, want_b = b, want_r = r;
        }
      int b = 0, r = 0;
      optimal_lsh_params(t, P, b, r);
      EXPECT_EQ(b, want_b) << "threshold " << t << ", " << P << " permutations";
      EXPECT_EQ(r, want_r) << "threshold " << t << ", " << P << " permutations";
    }
}

TEST(NearDedup, PlantedNearDuplicatesAreRemovedAndDistinctDocumentsKept) {
  const MinHasher h({.num_perm = 128, .shingle = 5, .threshold = 0.8});
  std::vector<std::string> docs;
  for (int i = 0; i < 30; ++i) docs.push_back(paragraph(100 + i, 150));
  // Near copies: a changed final word, an extra attribution line.
  docs.push_back(docs[3] + " indeed");
  docs.push_back(docs[7] + "\n  -- Anonymous");
  docs.push_back(docs[12].substr(0, docs[12].size() - 12));
  std::vector<std::uint32_t> sigs;
  for (const auto& d : docs) {
    const auto s = h.signature(d);
    sigs.insert(sigs.end(), s.begin(), s.end());
  }
  const auto flags = mark_near_duplicates(sigs, h);
  for (int i = 0; i < 30; ++i) EXPECT_EQ(flags[std::size_t(i)], 0) << "distinct document " << i << " dropped";
  for (int i = 30; i < 33; ++i) EXPECT_EQ(flags[std::size_t(i)], 1) << "near copy " << i << " kept";
}

TEST(NearDedup, OnlyEarlierKeptDocumentsCount) {
  // A ~ B and B ~ C but A !~ C: B is dropped (like A), and C stays since its only near twin
  // (B) was not kept.
  const MinHasher h({.num_perm = 256, .shingle = 1, .threshold = 0.6});
  std::string a, b, c;
  for (int i = 0; i < 100; ++i) {
    std::string w = "w";  // built by append: GCC 12 warns falsely (-Wrestrict) on "w" + std::string
    w += std::to_string(i);
    w += ' ';
    if (i < 75) a += w;
    if (i >= 12 && i < 88) b += w;
    if (i >= 25) c += w;
  }
  std::vector<std::uint32_t> sigs;
  for (const auto& d : {a, b, c}) {
    const auto s = h.signature(d);
    sigs.insert(sigs.end(), s.begin(), s.end());
  }
  EXPECT_EQ(mark_near_duplicates(sigs, h), (std::vector<std::uint8_t>{0, 1, 0}));
}

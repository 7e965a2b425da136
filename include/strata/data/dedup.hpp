// Deduplication: exact (a 128-bit hash of the normalised text) and near (MinHash with LSH
// banding). Both decide in global document order: a document is dropped when it duplicates an
// EARLIER kept document, so the result depends only on the documents and their order, never
// on how they were split across ranks.
//
// MinHash (Broder 1997, "On the resemblance and containment of documents"): a document is the
// set of its word k-shingles (lower-cased words, k = shingle size); its signature holds, for
// each of P hash functions h_p, the minimum of h_p over the shingles. For two documents
// P(sig_a[p] == sig_b[p]) = Jaccard(a, b). LSH banding (Leskovec, Rajaraman, Ullman, "Mining of
// Massive Datasets", 3rd ed., sec. 3.4): the P rows are cut into b bands of r rows; two
// documents are candidates when some band is identical, with probability 1 - (1 - J^r)^b, an
// S-curve whose steepest point is near (1/b)^(1/r). b and r are chosen for the threshold (the
// split of P that minimises the false-positive plus false-negative area, as datasketch does),
// and each candidate pair is then confirmed by its signature estimate of J >= threshold.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "strata/data/hash.hpp"

namespace strata::data {

// flags[i] = 1 when hashes[i] equals some hashes[j], j < i. Order matters: the first copy stays.
std::vector<std::uint8_t> mark_exact_duplicates(std::span<const Hash128> hashes);

struct MinHashConfig {
  int num_perm = 128;      // P, signature length
  int shingle = 5;         // words per shingle
  double threshold = 0.8;  // Jaccard similarity at or above which a document is a near-duplicate
  std::uint64_t seed = 0x5eed;
};

class MinHasher {
 public:
  explicit MinHasher(const MinHashConfig& config);
  const MinHashConfig& config() const { return config_; }
  int bands() const { return bands_; }
  int rows() const { return rows_; }
  // The signature of `text` (config().num_perm values) into `out`.
  void signature(std::string_view text, std::uint32_t* out) const;
  std::vector<std::uint32_t> signature(std::string_view text) const;

 private:
  MinHashConfig config_;
  int bands_ = 0, rows_ = 0;
  std::vector<std::uint64_t> mul_, add_;
};

// Estimated Jaccard similarity: the fraction of equal signature entries.
double estimate_jaccard(const std::uint32_t* a, const std::uint32_t* b, int num_perm);

// Chooses (bands, rows) with bands * rows <= num_perm minimising the false-positive and
// false-negative areas of the LSH S-curve around `threshold`.
void optimal_lsh_params(double threshold, int num_perm, int& bands, int& rows);

// signatures: n documents x num_perm, in global order. flags[i] = 1 when document i is a
// near-duplicate (estimated J >= threshold, found through a shared LSH band) of an earlier
// document that was itself kept.
std::vector<std::uint8_t> mark_near_duplicates(std::span<const std::uint32_t> signatures,
                                               const MinHasher& hasher);

}  // namespace strata::data

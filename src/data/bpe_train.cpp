// BPE training (Sennrich et al. 2016, "Neural Machine Translation of Rare Words with
// Subword Units", section 3.2, on bytes as in GPT-2): count the pre-tokenised pieces of the
// corpus, then repeatedly merge the most frequent adjacent pair of tokens.
//
// Incremental counting: pair_count holds the count of every adjacent pair over all pieces
// (weighted by the piece's count) and pair_pieces the pieces a pair occurs in. Merging (a, b)
// into M only visits the pieces holding (a, b): around each occurrence x a b y, the counts of
// (x, a) and (b, y) drop and those of (x, M) and (M, y) rise. Every pair whose count rises
// gets a fresh heap entry; a popped entry whose count is stale is pushed back with its
// current count (or dropped at 0), so the max-heap always yields the true maximum.
// When a+b spells a token that already exists (ab+c and a+bc), the merge maps to that token,
// as in Hugging Face's trainer, and the vocabulary does not grow.
#include <algorithm>
#include <queue>
#include <unordered_map>

#include "strata/core/error.hpp"
#include "strata/data/bpe_tokenizer.hpp"

namespace strata::data {
namespace {

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (std::uint64_t(std::uint32_t(a)) << 32) | std::uint32_t(b);
}

}  // namespace

std::unique_ptr<BpeTokenizer> train_bpe(std::span<const std::string> texts, int vocab_size,
                                        std::vector<std::string> special_tokens, std::string name) {
  const int n_special = int(special_tokens.size());
  if (vocab_size < 256 + n_special)
    throw make_error("train_bpe: vocab_size ", vocab_size, " is below 256 byte tokens + ", n_special,
                     " special tokens");

  // Pieces and their counts.
  std::unordered_map<std::string, std::int64_t> piece_count;
  for (const std::string& text : texts)
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t e = pretoken_end(PreTokenizer::gpt2, text, i);
      ++piece_count[text.substr(i, e - i)];
      i = e;
    }
  std::vector<std::vector<std::int32_t>> pieces;
  std::vector<std::int64_t> counts;
  pieces.reserve(piece_count.size());
  for (const auto& [piece, count] : piece_count) {
    if (piece.size() < 2) continue;  // no pairs
    pieces.emplace_back(piece.begin(), piece.end());
    for (auto& id : pieces.back()) id = std::int32_t(static_cast<unsigned char>(id));
    counts.push_back(count);
  }
  piece_count.clear();

  std::unordered_map<std::uint64_t, std::int64_t> pair_count;
  std::unordered_map<std::uint64_t, std::vector<std::uint32_t>> pair_pieces;
  for (std::uint32_t w = 0; w < pieces.size(); ++w)
    for (std::size_t i = 0; i + 1 < pieces[w].size(); ++i) {
      const std::uint64_t k = pair_key(pieces[w][i], pieces[w][i + 1]);
      pair_count[k] += counts[w];
      auto& list = pair_pieces[k];
      if (list.empty() || list.back() != w) list.push_back(w);
    }

  // Max-heap on (count, smaller pair first).
  using Entry = std::pair<std::int64_t, std::uint64_t>;  // (count, ~key)
  std::priority_queue<Entry> heap;
  for (const auto& [k, c] : pair_count) heap.push({c, ~k});

  std::vector<std::string> tokens(256);
  for (int b = 0; b < 256; ++b) tokens[b] = std::string(1, char(b));
  std::unordered_map<std::string, std::int32_t> token_ids;
  for (int b = 0; b < 256; ++b) token_ids.emplace(tokens[b], b);
  std::vector<BpeTokenizer::Merge> merges;
  std::vector<std::uint32_t> visited(pieces.size(), 0);
  std::vector<std::uint64_t> touched;
  std::vector<std::int32_t> merged_piece;

  while (int(tokens.size()) + n_special < vocab_size && !heap.empty()) {
    const auto [count, inv] = heap.top();
    heap.pop();
    const std::uint64_t key = ~inv;
    const auto it = pair_count.find(key);
    const std::int64_t current = it == pair_count.end() ? 0 : it->second;
    if (current != count) {  // stale: counts only fall for existing pairs
      if (current > 0) heap.push({current, inv});
      continue;
    }
    if (count < 2) break;  // no pair occurs twice: more merges would only memorise
    const std::int32_t a = std::int32_t(key >> 32), b = std::int32_t(std::uint32_t(key));
    std::string joined = tokens[a] + tokens[b];
    const auto [tok, added] = token_ids.emplace(joined, std::int32_t(tokens.size()));
    const std::int32_t m = tok->second;
    if (added) tokens.push_back(std::move(joined));
    merges.push_back({a, b});
    const std::uint32_t stamp = std::uint32_t(merges.size());
    touched.clear();
    auto add = [&](std::int32_t x, std::int32_t y, std::int64_t delta, std::uint32_t w) {
      const std::uint64_t k = pair_key(x, y);
      pair_count[k] += delta;
      if (delta > 0) {
        auto& list = pair_pieces[k];
        if (list.empty() || list.back() != w) list.push_back(w);
        touched.push_back(k);
      }
    };
    const std::vector<std::uint32_t> holders = std::move(pair_pieces[key]);
    pair_pieces.erase(key);
    for (const std::uint32_t w : holders) {
      if (visited[w] == stamp) continue;
      visited[w] = stamp;
      std::vector<std::int32_t>& s = pieces[w];
      const std::int64_t c = counts[w];
      merged_piece.clear();
      for (std::size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
          if (!merged_piece.empty()) add(merged_piece.back(), a, -c, w), add(merged_piece.back(), m, c, w);
          if (i + 2 < s.size()) add(b, s[i + 2], -c, w), add(m, s[i + 2], c, w);
          merged_piece.push_back(m);
          i += 2;
        } else {
          merged_piece.push_back(s[i]);
          ++i;
        }
      }
      s.assign(merged_piece.begin(), merged_piece.end());
    }
    pair_count.erase(key);
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (const std::uint64_t k : touched)
      if (const std::int64_t c = pair_count[k]; c > 0) heap.push({c, ~k});
  }

  std::vector<BpeTokenizer::Special> specials;
  for (std::string& s : special_tokens)
    specials.push_back({std::move(s), std::int32_t(tokens.size() + specials.size())});
  return std::make_unique<BpeTokenizer>(std::move(name), std::move(tokens), std::move(merges),
                                        std::move(specials), BpeTokenizer::Options{});
}

}  // namespace strata::data

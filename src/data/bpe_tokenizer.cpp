// Byte-level BPE: construction from token bytes + merges, the merge loops, the per-thread
// piece cache, decode and the content hash. The file readers are in bpe_files.cpp, training
// in bpe_train.cpp.
#include "strata/data/bpe_tokenizer.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <queue>

#include "strata/core/error.hpp"
#include "strata/core/paths.hpp"
#include "strata/core/rng.hpp"
#include "strata/data/hash.hpp"

namespace strata::data {

// ---- GPT-2's byte <-> character map --------------------------------------------------------
// Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68
// bytes map to U+0100, U+0101, ... in byte order.
namespace {

struct ByteCharMap {
  std::array<std::uint32_t, 256> byte_to_cp{};
  std::array<std::int16_t, 324> cp_to_byte{};  // code points < 0x144
  ByteCharMap() {
    cp_to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      byte_to_cp[b] = printable ? std::uint32_t(b) : std::uint32_t(256 + n++);
      cp_to_byte[byte_to_cp[b]] = std::int16_t(b);
    }
  }
};
const ByteCharMap kByteChars;

void append_utf8(std::string& s, std::uint32_t cp) {
  if (cp < 0x80) {
    s.push_back(char(cp));
  } else {  // the map only reaches U+0143
    s.push_back(char(0xC0 | (cp >> 6)));
    s.push_back(char(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

std::string bytes_to_gpt2_chars(std::string_view bytes) {
  std::string s;
  s.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(s, kByteChars.byte_to_cp[b]);
  return s;
}

bool gpt2_chars_to_bytes(std::string_view chars, std::string& bytes) {
  bytes.clear();
  for (std::size_t i = 0; i < chars.size();) {
    const unsigned char b0 = static_cast<unsigned char>(chars[i]);
    std::uint32_t cp;
    if (b0 < 0x80) {
      cp = b0, i += 1;
    } else if ((b0 & 0xE0) == 0xC0 && i + 1 < chars.size()) {
      cp = ((b0 & 0x1Fu) << 6) | (static_cast<unsigned char>(chars[i + 1]) & 0x3Fu), i += 2;
    } else {
      return false;
    }
    if (cp >= kByteChars.cp_to_byte.size() || kByteChars.cp_to_byte[cp] < 0) return false;
    bytes.push_back(char(kByteChars.cp_to_byte[cp]));
  }
  return true;
}

// ---- the pair table: (left, right) -> (rank, merged) -------------------------------------
// Open addressing with linear probing over a power-of-two table; built once, then read-only.
// A slot holds its key and value side by side: one cache line per probe.
struct BpeTokenizer::PairTable {
  static constexpr std::uint64_t kEmpty = ~0ull;
  struct Slot {
    std::uint64_t key = kEmpty;
    std::uint64_t value = 0;  // rank << 32 | merged id
  };
  std::vector<Slot> slots;
  std::uint64_t mask = 0;

  explicit PairTable(std::size_t count) {
    std::size_t cap = 16;
    while (cap < count * 2) cap <<= 1;
    slots.assign(cap, Slot{});
    mask = cap - 1;
  }
  static std::uint64_t key(std::int32_t a, std::int32_t b) {
    return (std::uint64_t(std::uint32_t(a)) << 32) | std::uint32_t(b);
  }
  static std::uint64_t slot(std::uint64_t k) { return (k * 0x9E3779B97F4A7C15ull) >> 20; }
  // Insert unless present (the first, lowest rank, wins).
  void insert(std::int32_t a, std::int32_t b, std::uint32_t rank, std::int32_t merged) {
    const std::uint64_t k = key(a, b);
    for (std::uint64_t s = slot(k) & mask;; s = (s + 1) & mask) {
      Slot& e = slots[s];
      if (e.key == k) return;
      if (e.key == kEmpty) {
        e = {k, (std::uint64_t(rank) << 32) | std::uint32_t(merged)};
        return;
      }
    }
  }
  // rank << 32 | merged, or kEmpty.
  std::uint64_t find(std::int32_t a, std::int32_t b) const {
    const std::uint64_t k = key(a, b);
    for (std::uint64_t s = slot(k) & mask;; s = (s + 1) & mask) {
      const Slot& e = slots[s];
      if (e.key == k) return e.value;
      if (e.key == kEmpty) return kEmpty;
    }
  }
};

namespace {

std::atomic<std::uint64_t> next_instance{1};  // ids for the per-thread caches (never reused)

// ---- the per-thread piece cache -----------------------------------------------------------
// piece bytes -> ids, one table per (thread, tokenizer instance). Each thread keeps the
// caches of its last few tokenizers; a full cache is cleared, not evicted piecemeal.
// An entry is the piece's bytes (padded to whole 4-byte words) followed by its ids in one
// arena, and a 16-byte slot points at it: a hit costs the slot and one run of the arena.
class PieceCache {
 public:
  static constexpr std::size_t kMaxPiece = 64;          // longer pieces are not cached
  static constexpr std::size_t kMaxEntries = 1u << 17;  // ~ a few MiB per thread and tokenizer

  std::uint64_t owner = 0;

  void reset(std::uint64_t new_owner) {
    owner = new_owner;
    slots_.assign(1u << 12, Slot{});
    arena_.clear();
    count_ = 0;
  }
  // The cached ids of `piece` (1 < size <= kMaxPiece), or nullptr.
  const std::int32_t* find(std::string_view piece, std::uint64_t h, std::uint32_t& len) const {
    const std::uint64_t mask = slots_.size() - 1;
    for (std::uint64_t s = h & mask;; s = (s + 1) & mask) {
      const Slot& e = slots_[s];
      if (e.key_len == 0) return nullptr;
      if (e.hash == h && e.key_len == piece.size()) {
        const std::int32_t* entry = arena_.data() + e.offset;
        if (std::memcmp(entry, piece.data(), piece.size()) == 0) {
          len = e.value_len;
          return entry + words(piece.size());
        }
      }
    }
  }
  void insert(std::string_view piece, std::uint64_t h, const std::int32_t* ids, std::size_t n) {
    if (count_ >= kMaxEntries) reset(owner);
    if ((count_ + 1) * 2 > slots_.size()) grow();
    const std::size_t offset = arena_.size();
    arena_.resize(offset + words(piece.size()) + n);
    std::memcpy(arena_.data() + offset, piece.data(), piece.size());
    std::memcpy(arena_.data() + offset + words(piece.size()), ids, n * sizeof(std::int32_t));
    place(Slot{h, std::uint32_t(offset), std::uint16_t(piece.size()), std::uint16_t(n)});
    ++count_;
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t offset = 0;                  // of the entry in arena_
    std::uint16_t key_len = 0, value_len = 0;  // key_len 0: empty
  };
  static std::size_t words(std::size_t bytes) { return (bytes + 3) / 4; }
  void place(const Slot& e) {
    const std::uint64_t mask = slots_.size() - 1;
    std::uint64_t s = e.hash & mask;
    while (slots_[s].key_len != 0) s = (s + 1) & mask;
    slots_[s] = e;
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.size() * 2, Slot{});
    for (const Slot& e : old)
      if (e.key_len != 0) place(e);
  }
  std::vector<Slot> slots_;
  std::vector<std::int32_t> arena_;
  std::size_t count_ = 0;
};

PieceCache& thread_cache(std::uint64_t instance) {
  thread_local std::array<PieceCache, 4> caches;
  thread_local std::size_t victim = 0;
  for (PieceCache& c : caches)
    if (c.owner == instance) return c;
  PieceCache& c = caches[victim];
  victim = (victim + 1) % caches.size();
  c.reset(instance);
  return c;
}

std::string hex64(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// FNV-1a 64 fed piece by piece (core::fnv1a64 hashes one string).
struct Fnv {
  std::uint64_t h = 14695981039346656037ull;
  void bytes(std::string_view s) {
    for (char c : s) h = (h ^ static_cast<std::uint8_t>(c)) * 1099511628211ull;
  }
  void u64(std::uint64_t v) {
    for (int i = 0; i < 8; ++i) h = (h ^ ((v >> (8 * i)) & 0xFF)) * 1099511628211ull;
  }
  void str(std::string_view s) { u64(s.size()), bytes(s); }
};

}  // namespace

// ---- construction --------------------------------------------------------------------------
BpeTokenizer::BpeTokenizer(std::string name, std::vector<std::string> tokens, std::vector<Merge> merges,
                           std::vector<Special> specials, Options options)
    : name_(std::move(name)),
      tokens_(std::move(tokens)),
      merges_(std::move(merges)),
      specials_(std::move(specials)),
      options_(options),
      instance_(next_instance.fetch_add(1)) {
  for (const Special& s : specials_) {
    STRATA_CHECK(s.id >= 0, "tokenizer ", name_, ": special token '", s.text, "' has a negative id");
    if (std::size_t(s.id) >= tokens_.size()) tokens_.resize(std::size_t(s.id) + 1);
    if (tokens_[s.id].empty())
      tokens_[s.id] = s.text;
    else if (tokens_[s.id] != s.text)
      throw make_error("tokenizer ", name_, ": special token '", s.text, "' has id ", s.id,
                       ", which is the token '", tokens_[s.id], "'");
  }
  // The index: bytes -> id. Special tokens are left out: encode() never produces them.
  index_.reserve(tokens_.size());
  std::vector<bool> special(tokens_.size(), false);
  for (const Special& s : specials_) special[s.id] = true;
  for (std::size_t id = 0; id < tokens_.size(); ++id)
    if (!tokens_[id].empty() && !special[id]) index_.insert(tokens_[id], std::int32_t(id));

  for (int b = 0; b < 256; ++b) {
    const char c = char(b);
    byte_id_[b] = token_id(std::string_view(&c, 1));
    if (byte_id_[b] < 0)
      throw make_error("tokenizer ", name_, ": no token for the byte 0x", hex64(std::uint64_t(b)).substr(14),
                       " (byte-level BPE needs all 256)");
  }

  if (options_.rank_merges) {
    // tiktoken: every split a+b of a token t into two tokens is a pair of rank(t) = id(t).
    std::size_t count = 0;
    for (const auto& t : tokens_) count += t.size() > 1 ? t.size() - 1 : 0;
    pairs_ = std::make_unique<PairTable>(count);
    for (std::size_t id = 0; id < tokens_.size(); ++id) {
      const std::string_view t = tokens_[id];
      if (t.size() < 2 || special[id]) continue;
      for (std::size_t k = 1; k < t.size(); ++k) {
        const std::int32_t a = token_id(t.substr(0, k)), b = token_id(t.substr(k));
        if (a >= 0 && b >= 0) pairs_->insert(a, b, std::uint32_t(id), std::int32_t(id));
      }
    }
  } else {
    pairs_ = std::make_unique<PairTable>(merges_.size());
    std::string joined;
    for (std::size_t rank = 0; rank < merges_.size(); ++rank) {
      const Merge& m = merges_[rank];
      const auto valid = [&](std::int32_t id) {
        return id >= 0 && std::size_t(id) < tokens_.size() && !tokens_[id].empty();
      };
      STRATA_CHECK(valid(m.left) && valid(m.right), "tokenizer ", name_, ": merge ", rank,
                   " names an unknown token id");
      joined.assign(tokens_[m.left]).append(tokens_[m.right]);
      const std::int32_t merged = token_id(joined);
      if (merged < 0)
        throw make_error("tokenizer ", name_, ": merge ", rank, " ('", bytes_to_gpt2_chars(tokens_[m.left]),
                         "' + '", bytes_to_gpt2_chars(tokens_[m.right]),
                         "') makes a token that is not in the vocabulary");
      pairs_->insert(m.left, m.right, std::uint32_t(rank), merged);
    }
  }

  // The pairs of two byte tokens (every piece's first merges) in a direct 256 x 256 table:
  // the same values the pair table gives them, without its probes.
  byte_pairs_.assign(1u << 16, PairTable::kEmpty);
  {
    std::vector<std::int16_t> byte_of(tokens_.size(), -1);
    for (int b = 0; b < 256; ++b) byte_of[std::size_t(byte_id_[b])] = std::int16_t(b);
    for (const PairTable::Slot& e : pairs_->slots) {
      if (e.key == PairTable::kEmpty) continue;
      const auto a = std::size_t(e.key >> 32), b = std::size_t(std::uint32_t(e.key));
      if (a < byte_of.size() && b < byte_of.size() && byte_of[a] >= 0 && byte_of[b] >= 0)
        byte_pairs_[std::size_t(byte_of[a]) << 8 | std::size_t(byte_of[b])] = e.value;
    }
  }

  for (const char* eos : {"<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>"}) {
    for (const Special& s : specials_)
      if (s.text == eos) eos_id_ = s.id;
    if (eos_id_ >= 0) break;
  }
  if (eos_id_ < 0 && !specials_.empty()) eos_id_ = specials_.front().id;

  Fnv f;
  f.str("strata-bpe-v1");
  f.str(pretokenizer_name(options_.pattern));
  f.u64(std::uint64_t(options_.rank_merges) | std::uint64_t(options_.whole_piece_lookup) << 1 |
        std::uint64_t(options_.add_prefix_space) << 2);
  f.u64(tokens_.size());
  for (const auto& t : tokens_) f.str(t);
  f.u64(specials_.size());
  for (const Special& s : specials_) f.str(s.text), f.u64(std::uint64_t(s.id));
  f.u64(merges_.size());
  for (const Merge& m : merges_) f.u64(std::uint64_t(std::uint32_t(m.left)) << 32 | std::uint32_t(m.right));
  hash_ = hex64(f.h);
}

BpeTokenizer::~BpeTokenizer() = default;

std::int32_t BpeTokenizer::token_id(std::string_view bytes) const { return index_.find(bytes); }

// ---- the merge loops -----------------------------------------------------------------------
// Short pieces: parts[] and the rank of each adjacent pair in flat arrays; each step merges
// the leftmost lowest-ranked pair and re-ranks its two neighbours. O(n^2), fast for n < ~100.
void BpeTokenizer::bpe_small(const unsigned char* p, std::size_t n, std::vector<std::int32_t>& out) const {
  constexpr std::uint32_t kNone = ~0u;
  std::int32_t parts[256];
  std::uint32_t ranks[256];
  std::int32_t merged[256];
  for (std::size_t i = 0; i < n; ++i) parts[i] = byte_id_[p[i]];
  auto set_rank = [&](std::size_t i, std::uint64_t v) {
    ranks[i] = v == PairTable::kEmpty ? kNone : std::uint32_t(v >> 32);
    merged[i] = std::int32_t(std::uint32_t(v));
  };
  auto rank_pair = [&](std::size_t i) { set_rank(i, pairs_->find(parts[i], parts[i + 1])); };
  for (std::size_t i = 0; i + 1 < n; ++i) set_rank(i, byte_pairs_[std::size_t(p[i]) << 8 | p[i + 1]]);
  while (n > 1) {
    std::size_t best = 0;
    for (std::size_t i = 1; i + 1 < n; ++i)
      if (ranks[i] < ranks[best]) best = i;
    if (ranks[best] == kNone) break;
    // parts[best+2..n) and the pairs right of them shift left by one.
    parts[best] = merged[best];
    std::memmove(parts + best + 1, parts + best + 2, (n - best - 2) * sizeof parts[0]);
    if (n >= best + 3) {
      std::memmove(ranks + best + 1, ranks + best + 2, (n - best - 3) * sizeof ranks[0]);
      std::memmove(merged + best + 1, merged + best + 2, (n - best - 3) * sizeof merged[0]);
    }
    --n;
    if (best + 1 < n) rank_pair(best);
    if (best > 0) rank_pair(best - 1);
  }
  out.insert(out.end(), parts, parts + n);
}

// Long pieces: a doubly linked list of parts and a min-heap of (rank, position) candidates;
// stale candidates (a neighbour changed) are skipped when popped. O(n log n).
void BpeTokenizer::bpe_heap(const unsigned char* p, std::size_t n, std::vector<std::int32_t>& out) const {
  struct Cand {
    std::uint32_t rank;
    std::uint32_t pos;
    std::int32_t left, right, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::vector<std::int32_t> id(n);
  std::vector<std::uint32_t> next(n), prev(n);
  constexpr std::uint32_t kEnd = ~0u;
  for (std::size_t i = 0; i < n; ++i) {
    id[i] = byte_id_[p[i]];
    next[i] = i + 1 < n ? std::uint32_t(i + 1) : kEnd;
    prev[i] = i > 0 ? std::uint32_t(i - 1) : kEnd;
  }
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](std::uint32_t i) {
    if (i == kEnd || next[i] == kEnd) return;
    const std::uint64_t v = pairs_->find(id[i], id[next[i]]);
    if (v != PairTable::kEmpty)
      heap.push({std::uint32_t(v >> 32), i, id[i], id[next[i]], std::int32_t(std::uint32_t(v))});
  };
  for (std::uint32_t i = 0; i + 1 < n; ++i) push(i);
  std::vector<bool> dead(n, false);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (dead[c.pos] || id[c.pos] != c.left || next[c.pos] == kEnd || id[next[c.pos]] != c.right) continue;
    const std::uint32_t r = next[c.pos];
    id[c.pos] = c.merged;
    dead[r] = true;
    next[c.pos] = next[r];
    if (next[r] != kEnd) prev[next[r]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (std::uint32_t i = 0; i != kEnd; i = next[i]) out.push_back(id[i]);
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<std::int32_t>& out, bool heap) const {
  if (piece.empty()) return;
  const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
  if (heap || piece.size() > 256)
    bpe_heap(p, piece.size(), out);
  else
    bpe_small(p, piece.size(), out);
}

void BpeTokenizer::encode_uncached(std::string_view piece, std::vector<std::int32_t>& out) const {
  if (options_.whole_piece_lookup) {
    if (const std::int32_t id = token_id(piece); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
  if (piece.size() <= 128)
    bpe_small(p, piece.size(), out);
  else
    bpe_heap(p, piece.size(), out);
}

// ---- encode / decode -----------------------------------------------------------------------
void BpeTokenizer::encode(std::string_view text, std::vector<std::int32_t>& out) const {
  std::string prefixed;
  if (options_.add_prefix_space && !text.empty() && text.front() != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  out.reserve(out.size() + text.size() / 4);
  PieceCache& cache = thread_cache(instance_);
  const PreTokenizer kind = options_.pattern;
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t e = pretoken_end(kind, text, i);
    const std::string_view piece = text.substr(i, e - i);
    i = e;
    if (piece.size() == 1) {
      out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
      continue;
    }
    if (piece.size() > PieceCache::kMaxPiece) {
      encode_uncached(piece, out);
      continue;
    }
    const std::uint64_t h = table_hash(piece);
    std::uint32_t len = 0;
    if (const std::int32_t* ids = cache.find(piece, h, len)) {
      out.insert(out.end(), ids, ids + len);
      continue;
    }
    const std::size_t start = out.size();
    encode_uncached(piece, out);
    cache.insert(piece, h, out.data() + start, out.size() - start);
  }
}

std::string BpeTokenizer::decode(std::span<const std::int32_t> ids) const {
  std::string s;
  s.reserve(ids.size() * 4);
  for (std::int32_t id : ids)
    if (id >= 0 && std::size_t(id) < tokens_.size()) s += tokens_[id];
  return s;
}

std::string default_tokenizer_dir() {
  if (const char* env = std::getenv("STRATA_TOKENIZER_DIR"); env && *env) return env;
  namespace fs = std::filesystem;
  // An installed tree keeps them in share/strata/tokenizers; a source tree (and the build
  // folders inside it, or linked to it) in .cache/tokenizers, where fetch-tokenizers.sh puts them.
  std::error_code ec;
  for (const fs::path& root : resource_roots())
    for (const char* sub : {"tokenizers", ".cache/tokenizers"})
      if (const fs::path p = root / sub; fs::is_directory(p, ec)) return p.string();
  return (fs::current_path() / ".cache" / "tokenizers").string();
}

}  // namespace strata::data

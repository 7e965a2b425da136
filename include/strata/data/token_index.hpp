// Token bytes -> id: an open-addressing table (linear probing, load <= 1/2) over views of
// strings that outlive it (a tokenizer's vocabulary; keys longer than 16 bytes are kept by pointer). Built
// once, then read-only, so reads are thread-safe. It replaces std::unordered_map<std::string_view, int>,
// whose node per entry made loading GPT-2's 50,257 tokens and checking its 50,000 merges a visible share of
// `prepare`.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

#include "strata/data/hash.hpp"

namespace strata::data {

class TokenIndex {
 public:
  explicit TokenIndex(std::size_t expected = 0) { reserve(expected); }

  // Capacity for n keys without rehashing.
  void reserve(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    if (cap > slots_.size()) rehash(cap);
  }
  // Adds key -> id unless the key is present; false (and the first id kept) when it is.
  bool insert(std::string_view key, std::int32_t id) {
    if (2 * (count_ + 1) > slots_.size()) rehash(slots_.empty() ? 16 : 2 * slots_.size());
    const std::uint64_t h = table_hash(key);
    for (std::size_t i = std::size_t(h) & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s.set(h, key, id);
        ++count_;
        return true;
      }
      if (s.hash == h && equal(s, key)) return false;
    }
  }
  // The id of `key`, or -1.
  std::int32_t find(std::string_view key) const {
    if (slots_.empty()) return -1;
    const std::uint64_t h = table_hash(key);
    for (std::size_t i = std::size_t(h) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.id < 0) return -1;
      if (s.hash == h && equal(s, key)) return s.id;
    }
  }
  std::size_t size() const { return count_; }

 private:
  // 32 bytes: keys of up to 16 bytes are stored in the slot (one cache line per probe, no
  // pointer to follow), longer ones by pointer.
  static constexpr std::size_t kInline = 8;
  struct Slot {
    std::uint64_t hash = 0;
    std::uint32_t len = 0;
    std::int32_t id = -1;      // -1: empty
    char bytes[kInline] = {};  // the key, or (longer keys) a pointer to it

    void set(std::uint64_t h, std::string_view key, std::int32_t value) {
      hash = h, len = std::uint32_t(key.size()), id = value;
      if (key.size() <= kInline) {
        if (!key.empty()) std::memcpy(bytes, key.data(), key.size());
      } else {
        const char* p = key.data();
        std::memcpy(bytes, &p, sizeof p);
      }
    }
  };
  static bool equal(const Slot& s, std::string_view key) {
    if (s.len != key.size()) return false;
    if (key.size() <= kInline) return key.empty() || std::memcmp(s.bytes, key.data(), key.size()) == 0;
    const char* p;
    std::memcpy(&p, s.bytes, sizeof p);
    return std::memcmp(p, key.data(), key.size()) == 0;
  }
  void rehash(std::size_t cap) {
    std::vector<Slot> old(cap);
    old.swap(slots_);
    mask_ = cap - 1;
    for (const Slot& s : old)
      if (s.id >= 0) {
        std::size_t i = std::size_t(s.hash) & mask_;
        while (slots_[i].id >= 0) i = (i + 1) & mask_;
        slots_[i] = s;
      }
  }
  std::vector<Slot> slots_;
  std::size_t mask_ = 0, count_ = 0;
};

}  // namespace strata::data

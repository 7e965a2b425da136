// `strata data inspect FILE.h5`: a dataset's attributes, counts, document lengths, prepare
// statistics, the most frequent tokens and a decoded sample.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.hpp"
#include "strata/core/error.hpp"
#include "strata/data/format.hpp"
#include "strata/data/tokenizer.hpp"

namespace strata::cli {

namespace {

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.push_back(char(c));
    }
  }
  return out;
}

int inspect(const std::string& path, const std::string& tokenizer_spec, int sample_tokens, bool digest) {
  const data::TokenDataset ds(path);
  const data::DatasetInfo& info = ds.info();
  std::printf("%s\n", path.c_str());
  std::printf("  format_version   %d\n", info.format_version);
  std::printf("  tokenizer        %s (hash %s)\n", info.tokenizer_name.c_str(), info.tokenizer_hash.c_str());
  std::printf("  vocab_size       %d (tokens stored as uint%d)\n", info.vocab_size, info.token_bytes * 8);
  std::printf("  eos_id           %d\n", info.eos_id);
  std::printf("  source           %s\n", info.source.c_str());
  std::printf("  documents        %llu\n", static_cast<unsigned long long>(info.num_documents));
  std::printf("  tokens           %llu\n", static_cast<unsigned long long>(info.num_tokens));
  const auto& off = ds.doc_offsets();
  if (info.num_documents > 0) {
    std::uint64_t lo = ~0ull, hi = 0;
    for (std::size_t i = 0; i + 1 < off.size(); ++i) {
      lo = std::min(lo, off[i + 1] - off[i]);
      hi = std::max(hi, off[i + 1] - off[i]);
    }
    std::printf("  document length  min %llu, mean %.1f, max %llu tokens\n",
                static_cast<unsigned long long>(lo), double(info.num_tokens) / double(info.num_documents),
                static_cast<unsigned long long>(hi));
  }
  const nlohmann::json stats = nlohmann::json::parse(info.statistics, nullptr, false);
  if (!stats.is_discarded() && stats.is_object() && !stats.empty()) {
    std::printf("  statistics (from prepare; non-zero counters):\n");
    for (auto it = stats.begin(); it != stats.end(); ++it)
      if (!(it->is_number() && it->get<double>() == 0))
        std::printf("    %-32s %s\n", it.key().c_str(), it->dump().c_str());
  }

  // The tokenizer for decoding: the one named, else the dataset's own when strata knows it.
  std::unique_ptr<data::Tokenizer> tok;
  try {
    tok = data::load_tokenizer(tokenizer_spec.empty() ? info.tokenizer_name : tokenizer_spec);
    if (tok->content_hash() != info.tokenizer_hash)
      std::printf("  note: tokenizer '%s' has hash %s, not the dataset's; decoding may be wrong\n",
                  tok->name().c_str(), tok->content_hash().c_str());
  } catch (const Error& e) {
    std::printf("  (no decoding: %s)\n", e.what());
  }
  auto decode = [&](std::int32_t id) {
    return tok ? printable(tok->decode(std::span<const std::int32_t>(&id, 1))) : std::string();
  };

  // Token histogram over the whole dataset, read in blocks.
  std::vector<std::uint64_t> counts(std::size_t(info.vocab_size));
  std::vector<std::int32_t> buf;
  const std::uint64_t block = 1 << 20;
  for (std::uint64_t s = 0; s < info.num_tokens; s += block) {
    const std::uint64_t n = std::min(block, info.num_tokens - s);
    buf.resize(n);
    ds.read(s, n, buf.data());
    for (std::int32_t t : buf) {
      if (t < 0 || t >= info.vocab_size)
        throw make_error(path, ": token id ", t, " near token ", s, " is outside the vocabulary of ",
                         info.vocab_size);
      ++counts[std::size_t(t)];
    }
  }
  std::vector<int> order(counts.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = int(i);
  const std::size_t top = std::min<std::size_t>(15, order.size());
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(top), order.end(), [&](int a, int b) {
    return counts[std::size_t(a)] != counts[std::size_t(b)] ? counts[std::size_t(a)] > counts[std::size_t(b)]
                                                            : a < b;
  });
  std::size_t used = 0;
  for (auto c : counts) used += c > 0;
  std::printf("  token histogram  %zu of %d ids used; most frequent:\n", used, info.vocab_size);
  for (std::size_t i = 0; i < top && counts[std::size_t(order[i])] > 0; ++i) {
    const int id = order[i];
    std::printf("    %8d %10llu  %6.2f%%  '%s'\n", id,
                static_cast<unsigned long long>(counts[std::size_t(id)]),
                100.0 * double(counts[std::size_t(id)]) / double(std::max<std::uint64_t>(1, info.num_tokens)),
                id == info.eos_id ? "<EOS>" : decode(id).c_str());
  }
  // A decoded sample: the start of the first document.
  if (info.num_documents > 0 && sample_tokens > 0) {
    const std::uint64_t n = std::min<std::uint64_t>(std::uint64_t(sample_tokens), off[1] - off[0]);
    buf.resize(n);
    ds.read(0, n, buf.data());
    std::printf("  sample (document 0, first %llu tokens):\n", static_cast<unsigned long long>(n));
    if (tok) {
      std::printf("    %s\n", printable(tok->decode(buf)).c_str());
    } else {
      std::printf("   ");
      for (auto t : buf) std::printf(" %d", t);
      std::printf("\n");
    }
  }
  if (digest) std::printf("  content digest   %s\n", data::content_digest(ds).c_str());
  return 0;
}

}  // namespace

Action add_data_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("data", "Token datasets: strata data inspect FILE.h5");
  cmd->require_subcommand(1);
  auto* ins =
      cmd->add_subcommand("inspect", "Print a dataset's attributes, counts, token histogram and a sample");
  auto path = std::make_shared<std::string>();
  auto tokenizer = std::make_shared<std::string>();
  auto sample = std::make_shared<int>(64);
  auto digest = std::make_shared<bool>(false);
  ins->add_option("file", *path, "Dataset (.h5) written by strata prepare")->required();
  ins->add_option("--tokenizer", *tokenizer, "Decode with this tokenizer spec (default: the dataset's)");
  ins->add_option("--sample", *sample, "Tokens of the first document to decode")->capture_default_str();
  ins->add_flag("--digest", *digest,
                "Print a digest of /tokens and /doc_offsets (equal digests: equal data)");
  return [path, tokenizer, sample, digest] { return inspect(*path, *tokenizer, *sample, *digest); };
}

}  // namespace strata::cli

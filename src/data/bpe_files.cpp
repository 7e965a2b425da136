// Reading and writing byte-level BPE files: GPT-2's vocab.json + merges.txt, Hugging Face
// tokenizer.json, tiktoken rank files. Every error names the file and what is wrong in it.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "strata/core/error.hpp"
#include "strata/data/bpe_tokenizer.hpp"
#include "strata/data/json_scan.hpp"
#include "strata/data/token_index.hpp"

namespace strata::data {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw make_error("tokenizer file '", path, "': cannot open (",
                     fs::exists(path) ? "unreadable" : "missing", ")");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Json read_json(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    throw make_error("tokenizer file '", path, "': bad JSON: ", e.what());
  }
}

std::string token_bytes_of(const std::string& path, const std::string& chars) {
  std::string bytes;
  if (!gpt2_chars_to_bytes(chars, bytes))
    throw make_error("tokenizer file '", path, "': token '", chars,
                     "' is not spelled in GPT-2's byte-level alphabet (not a byte-level BPE vocabulary)");
  return bytes;
}

// vocab (token spelled in GPT-2 characters -> id) into tokens[id] = bytes. Added tokens
// (`verbatim`: <|endoftext|>, ...) are spelled as they are and skipped here.
std::vector<std::string> vocab_tokens(const std::string& path, const Json& vocab,
                                      const std::vector<std::string>& verbatim = {}) {
  if (!vocab.is_object())
    throw make_error("tokenizer file '", path, "': the vocabulary is not a JSON object");
  std::vector<std::string> tokens;
  std::vector<bool> used;
  for (const auto& [chars, value] : vocab.items()) {
    if (!value.is_number_integer() || value.get<std::int64_t>() < 0 || value.get<std::int64_t>() > (1 << 30))
      throw make_error("tokenizer file '", path, "': token '", chars, "' has id ", value.dump(),
                       " (expected an id >= 0)");
    const std::size_t id = value.get<std::size_t>();
    if (id >= tokens.size()) tokens.resize(id + 1), used.resize(id + 1, false);
    if (used[id]) throw make_error("tokenizer file '", path, "': id ", id, " is given to two tokens");
    used[id] = true;
    if (std::find(verbatim.begin(), verbatim.end(), chars) != verbatim.end()) continue;
    tokens[id] = token_bytes_of(path, chars);
  }
  return tokens;
}

// One merge as written: its two tokens in GPT-2 characters and where it stands (a line of
// merges.txt, or an index into tokenizer.json's list), for error messages.
struct MergeText {
  std::string_view a, b;
  std::size_t line;
};

// Merges (tokens spelled in GPT-2 characters) -> pairs of ids; `index` maps token bytes to ids.
std::vector<BpeTokenizer::Merge> parse_merges(const std::string& path, const std::vector<MergeText>& lines,
                                              const std::vector<std::string>& tokens,
                                              const TokenIndex& index) {
  std::vector<BpeTokenizer::Merge> merges;
  merges.reserve(lines.size());
  std::string bytes, joined;
  for (const MergeText& m : lines) {
    const auto id_of = [&](std::string_view chars) {
      const std::int32_t id = gpt2_chars_to_bytes(chars, bytes) ? index.find(bytes) : -1;
      if (id < 0)
        throw make_error("tokenizer file '", path, "': merge ", m.line, " ('", m.a, " ", m.b,
                         "') names the unknown token '", chars, "'");
      return id;
    };
    const std::int32_t a = id_of(m.a), b = id_of(m.b);
    joined.assign(tokens[a]).append(tokens[b]);
    if (index.find(joined) < 0)
      throw make_error("tokenizer file '", path, "': merge ", m.line, " ('", m.a, " ", m.b, "') makes '", m.a,
                       m.b, "', which is not in the vocabulary");
    merges.push_back({a, b});
  }
  return merges;
}

// The index of a vocabulary's tokens (empty ones skipped); false when two ids share bytes.
bool index_tokens(const std::vector<std::string>& tokens, TokenIndex& index) {
  index.reserve(tokens.size());
  for (std::size_t id = 0; id < tokens.size(); ++id)
    if (!tokens[id].empty() && !index.insert(tokens[id], std::int32_t(id))) return false;
  return true;
}

bool split_merge(std::string_view s, std::string_view& a, std::string_view& b) {
  const std::size_t sp = s.find(' ');
  if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() || s.find(' ', sp + 1) != std::string::npos)
    return false;
  a = s.substr(0, sp);
  b = s.substr(sp + 1);
  return true;
}

// GPT-2's vocab.json read by the strict scanner (json_scan.hpp) straight into token bytes;
// false when the file needs the general path (nlohmann, whose messages name what is wrong):
// anything outside the scanner's subset, a token outside GPT-2's alphabet, an id given twice,
// or two keys with the same bytes (a duplicated key, of which nlohmann keeps the last).
bool fast_vocab_tokens(const std::string& text, std::vector<std::string>& tokens, TokenIndex& index) {
  tokens.clear();
  std::vector<bool> used;
  std::string bytes;
  const JsonScan r = json_flat_int_object(text, [&](std::string_view chars, std::uint32_t id) {
    if (id > (1u << 30) || !gpt2_chars_to_bytes(chars, bytes)) return false;  // (the general path's limit)
    if (id >= tokens.size()) tokens.resize(std::size_t(id) + 1), used.resize(std::size_t(id) + 1, false);
    if (used[id]) return false;
    used[id] = true;
    tokens[id] = bytes;
    return true;
  });
  return r == JsonScan::found && index_tokens(tokens, index);
}

std::vector<BpeTokenizer::Special> specials_in_vocab(const std::vector<std::string>& tokens) {
  std::vector<BpeTokenizer::Special> specials;
  for (std::size_t id = 0; id < tokens.size(); ++id)
    if (tokens[id] == "<|endoftext|>") specials.push_back({tokens[id], std::int32_t(id)});
  return specials;
}

int base64_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

bool base64_decode(std::string_view in, std::string& out) {
  out.clear();
  std::uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    if (c == '=') break;
    const int v = base64_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | std::uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(char((acc >> bits) & 0xFF));
    }
  }
  return !out.empty();
}

}  // namespace

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_gpt2_files(const std::string& vocab_json,
                                                            const std::string& merges_txt, std::string name) {
  std::vector<std::string> tokens;
  TokenIndex index;
  if (!fast_vocab_tokens(read_file(vocab_json), tokens, index)) {
    tokens = vocab_tokens(vocab_json, read_json(vocab_json));
    index = TokenIndex();
    index_tokens(tokens, index);
  }
  const std::string text = read_file(merges_txt);
  std::vector<MergeText> lines;
  lines.reserve(text.size() / 8);
  std::string_view a, b;
  std::size_t n = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++n;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (n == 1 && line.starts_with("#version"))) continue;
    if (!split_merge(line, a, b))
      throw make_error("tokenizer file '", merges_txt, "': line ", n, " is not a merge 'a b': '", line, "'");
    lines.push_back({a, b, n});
  }
  std::vector<Merge> merges = parse_merges(merges_txt, lines, tokens, index);
  std::vector<Special> specials = specials_in_vocab(tokens);
  return std::make_unique<BpeTokenizer>(std::move(name), std::move(tokens), std::move(merges),
                                        std::move(specials), Options{});
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::string& path) {
  const Json j = read_json(path);
  const auto fail = [&](auto&&... what) -> Error {
    return make_error("tokenizer file '", path, "': ", what...);
  };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) throw fail("no \"model\" object");
  const Json& model = j["model"];
  const std::string type = model.value("type", std::string("BPE"));
  if (type != "BPE") throw fail("model type '", type, "' is not supported (only byte-level BPE)");
  if (model.value("byte_fallback", false))
    throw fail(
        "a BPE with byte_fallback (SentencePiece-style, e.g. LLaMA-2) is not byte-level; use its .model "
        "file");
  if (j.contains("normalizer") && !j["normalizer"].is_null())
    throw fail("normalizer '", j["normalizer"].value("type", std::string("?")), "' is not supported");
  if (!model.contains("vocab")) throw fail("model has no \"vocab\"");
  if (!model.contains("merges") || !model["merges"].is_array()) throw fail("model has no \"merges\" array");

  // The pre-tokeniser: ByteLevel (GPT-2 regex), or Sequence[Split(regex of a known pattern), ByteLevel].
  Options options;
  const Json pre = j.value("pre_tokenizer", Json());
  const auto byte_level = [&](const Json& p, bool need_regex) {
    if (need_regex && !p.value("use_regex", true))
      throw fail("ByteLevel pre_tokenizer without use_regex is not supported");
    options.add_prefix_space = p.value("add_prefix_space", false);
  };
  if (pre.is_object() && pre.value("type", std::string()) == "ByteLevel") {
    byte_level(pre, true);
  } else if (pre.is_object() && pre.value("type", std::string()) == "Sequence" &&
             pre.contains("pretokenizers") && pre["pretokenizers"].size() == 2 &&
             pre["pretokenizers"][0].value("type", std::string()) == "Split" &&
             pre["pretokenizers"][1].value("type", std::string()) == "ByteLevel") {
    const Json& split = pre["pretokenizers"][0];
    const std::string regex =
        split.contains("pattern") ? split["pattern"].value("Regex", std::string()) : std::string();
    bool known = false;
    for (PreTokenizer k : {PreTokenizer::gpt2, PreTokenizer::cl100k, PreTokenizer::o200k})
      if (regex == pretokenizer_regex(k)) options.pattern = k, known = true;
    if (!known)
      throw fail("Split pre_tokenizer regex is not one of the known patterns (gpt2, cl100k, o200k): ", regex);
    if (pre["pretokenizers"][1].value("use_regex", false))
      throw fail("ByteLevel after Split must have use_regex false");
    byte_level(pre["pretokenizers"][1], false);
  } else {
    throw fail("pre_tokenizer ", pre.dump(), " is not supported (ByteLevel, or Split + ByteLevel)");
  }
  options.whole_piece_lookup = model.value("ignore_merges", false);

  std::vector<std::string> added_contents;
  for (const Json& t : j.value("added_tokens", Json::array()))
    if (t.is_object() && t.contains("content") && t["content"].is_string())
      added_contents.push_back(t["content"]);
  std::vector<std::string> tokens = vocab_tokens(path, model["vocab"], added_contents);
  std::vector<MergeText> lines;
  std::string_view a, b;
  for (std::size_t i = 0; i < model["merges"].size(); ++i) {
    const Json& m = model["merges"][i];
    if (m.is_string() && split_merge(m.get_ref<const std::string&>(), a, b)) {
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      a = m[0].get_ref<const std::string&>(), b = m[1].get_ref<const std::string&>();
    } else {
      throw fail("merge ", i, " is neither \"a b\" nor [\"a\", \"b\"]: ", m.dump());
    }
    lines.push_back({a, b, i});
  }
  TokenIndex index;
  index_tokens(tokens, index);
  std::vector<Merge> merges = parse_merges(path, lines, tokens, index);

  std::vector<Special> specials;
  for (const Json& t : j.value("added_tokens", Json::array())) {
    if (!t.contains("id") || !t.contains("content") || !t["id"].is_number_integer())
      throw fail("an added token lacks \"id\" or \"content\": ", t.dump());
    const std::int32_t id = t["id"].get<std::int32_t>();
    const std::string content = t["content"].get<std::string>();
    if (id < 0) throw fail("added token '", content, "' has a negative id");
    if (std::size_t(id) < tokens.size() && !tokens[id].empty())
      throw fail("added token '", content, "' has id ", id, ", which the vocabulary gives to another token");
    specials.push_back({content, id});
  }
  fs::path p(path);
  std::string name = p.stem().string();
  if (name == "tokenizer" && p.has_parent_path() && !p.parent_path().filename().empty())
    name = p.parent_path().filename().string();
  return std::make_unique<BpeTokenizer>(std::move(name), std::move(tokens), std::move(merges),
                                        std::move(specials), options);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tiktoken(const std::string& path) {
  const std::string stem = fs::path(path).stem().string();
  Options options;
  options.rank_merges = true;
  options.whole_piece_lookup = true;  // as tiktoken's encoder does
  std::vector<Special> specials;
  if (stem == "r50k_base") {
    specials = {{"<|endoftext|>", 50256}};
  } else if (stem == "p50k_base") {
    specials = {{"<|endoftext|>", 50256}};
  } else if (stem == "cl100k_base") {
    options.pattern = PreTokenizer::cl100k;
    specials = {{"<|endoftext|>", 100257},
                {"<|fim_prefix|>", 100258},
                {"<|fim_middle|>", 100259},
                {"<|fim_suffix|>", 100260},
                {"<|endofprompt|>", 100276}};
  } else if (stem == "o200k_base") {
    options.pattern = PreTokenizer::o200k;
    specials = {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}};
  } else {
    throw make_error("tokenizer file '", path, "': unknown tiktoken encoding '", stem,
                     "' (the file name picks the pattern: r50k_base, p50k_base, cl100k_base, o200k_base)");
  }
  const std::string text = read_file(path);
  std::vector<std::string> tokens;
  std::istringstream in(text);
  std::string line, bytes;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const std::size_t sp = line.find(' ');
    char* end = nullptr;
    const long rank = sp == std::string::npos ? -1 : std::strtol(line.c_str() + sp + 1, &end, 10);
    if (rank < 0 || rank > (1 << 30) || (end && *end) ||
        !base64_decode(std::string_view(line).substr(0, sp), bytes))
      throw make_error("tokenizer file '", path, "': line ", n, " is not '<base64 token> <rank>': '", line,
                       "'");
    if (std::size_t(rank) >= tokens.size()) tokens.resize(std::size_t(rank) + 1);
    if (!tokens[rank].empty())
      throw make_error("tokenizer file '", path, "': line ", n, ": rank ", rank, " given twice");
    tokens[rank] = bytes;
  }
  if (tokens.empty()) throw make_error("tokenizer file '", path, "': no tokens");
  return std::make_unique<BpeTokenizer>(stem, std::move(tokens), std::vector<Merge>{}, std::move(specials),
                                        options);
}

void BpeTokenizer::save_tokenizer_json(const std::string& path) const {
  if (options_.rank_merges)
    throw make_error("tokenizer ", name_, ": cannot write tokenizer.json '", path,
                     "': a tiktoken rank file has no merge list");
  using OJson = nlohmann::json;  // (ordered_json finds keys by linear search: seconds for 50k tokens)
  std::vector<bool> special(tokens_.size(), false);
  OJson added = OJson::array();
  for (const Special& s : specials_) {
    special[s.id] = true;
    added.push_back({{"id", s.id},
                     {"content", s.text},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}});
  }
  OJson vocab = OJson::object();
  for (std::size_t id = 0; id < tokens_.size(); ++id)
    if (!tokens_[id].empty()) vocab[special[id] ? tokens_[id] : bytes_to_gpt2_chars(tokens_[id])] = id;
  OJson merges = OJson::array();
  for (const Merge& m : merges_)
    merges.push_back(bytes_to_gpt2_chars(tokens_[m.left]) + " " + bytes_to_gpt2_chars(tokens_[m.right]));
  const OJson byte_level = {{"type", "ByteLevel"},
                            {"add_prefix_space", options_.add_prefix_space},
                            {"trim_offsets", true},
                            {"use_regex", options_.pattern == PreTokenizer::gpt2}};
  OJson pre = byte_level;
  if (options_.pattern != PreTokenizer::gpt2)
    pre = {{"type", "Sequence"},
           {"pretokenizers",
            {{{"type", "Split"},
              {"pattern", {{"Regex", pretokenizer_regex(options_.pattern)}}},
              {"behavior", "Isolated"},
              {"invert", false}},
             byte_level}}};
  const OJson j = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre},
      {"post_processor",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}}},
      {"decoder",
       {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", options_.whole_piece_lookup},
        {"vocab", vocab},
        {"merges", merges}}}};
  const fs::path tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) throw make_error("tokenizer.json '", path, "': cannot write");
    out << j.dump(2) << '\n';
    if (!out) throw make_error("tokenizer.json '", path, "': write failed");
  }
  fs::rename(tmp, path);
}

}  // namespace strata::data

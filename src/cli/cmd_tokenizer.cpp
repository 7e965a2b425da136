// `strata tokenizer train|encode|info`: train a byte-level BPE tokenizer on text files and
// write Hugging Face tokenizer.json; encode a string with any tokenizer spec; describe one.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.hpp"
#include "strata/core/error.hpp"
#include "strata/data/bpe_tokenizer.hpp"
#include "strata/data/tokenizer.hpp"

namespace strata::cli {
namespace {

struct TokenizerOptions {
  std::vector<std::string> inputs;
  int vocab_size = 0;
  std::string output = "tokenizer.json";
  std::vector<std::string> specials = {"<|endoftext|>"};
  std::string spec = "gpt2";
  std::string text;
  bool show_pieces = false;
};

// Plain text files are one text each; .jsonl files give one text per line's "text" field.
std::vector<std::string> read_corpus(const std::vector<std::string>& paths) {
  std::vector<std::string> texts;
  for (const auto& path : paths) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw make_error("tokenizer train: cannot read '", path, "'");
    if (path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0) {
      std::string line;
      for (std::size_t n = 1; std::getline(in, line); ++n) {
        if (line.empty()) continue;
        try {
          texts.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
        } catch (const nlohmann::json::exception& e) {
          throw make_error("tokenizer train: '", path, "' line ", n, ": ", e.what());
        }
      }
    } else {
      std::ostringstream ss;
      ss << in.rdbuf();
      texts.push_back(ss.str());
    }
  }
  return texts;
}

int run_train(const TokenizerOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<std::string> texts = read_corpus(o.inputs);
  std::size_t bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  const auto tok = data::train_bpe(texts, o.vocab_size, o.specials);
  tok->save_tokenizer_json(o.output);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "trained byte-level BPE on %zu texts (%.1f MB) in %.1f s: vocab %d (%zu merges), eos %d, hash %s\n",
      texts.size(), double(bytes) / 1e6, s, tok->vocab_size(), tok->merges().size(), tok->eos_id(),
      tok->content_hash().c_str());
  std::printf("wrote %s\n", o.output.c_str());
  return 0;
}

int run_encode(const TokenizerOptions& o) {
  const auto tok = data::load_tokenizer(o.spec);
  const auto ids = tok->encode(o.text);
  if (!o.show_pieces) {
    std::printf("%s\n", nlohmann::json(ids).dump().c_str());
    return 0;
  }
  for (const auto id : ids) {
    const std::int32_t one[1] = {id};
    std::printf("%8d  %s\n", id,
                nlohmann::json(tok->decode(one))
                    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                    .c_str());
  }
  return 0;
}

int run_info(const TokenizerOptions& o) {
  const auto tok = data::load_tokenizer(o.spec);
  std::printf("name %s\nvocab_size %d\neos_id %d\ncontent_hash %s\n", tok->name().c_str(), tok->vocab_size(),
              tok->eos_id(), tok->content_hash().c_str());
  return 0;
}

}  // namespace

Action add_tokenizer_command(CLI::App& app) {
  auto o = std::make_shared<TokenizerOptions>();
  auto* cmd = app.add_subcommand("tokenizer", "Train a BPE tokenizer, encode text, describe a tokenizer");
  cmd->require_subcommand(1);

  auto* train = cmd->add_subcommand("train", "Train byte-level BPE (GPT-2 pre-tokeniser) -> tokenizer.json");
  train->add_option("--input", o->inputs, "Text files (.jsonl: the \"text\" field of each line)")
      ->required()
      ->check(CLI::ExistingFile);
  train
      ->add_option("--vocab-size", o->vocab_size,
                   "Vocabulary size, including 256 bytes and the special tokens")
      ->required()
      ->check(CLI::Range(257, 1 << 24));
  train->add_option("--output", o->output, "tokenizer.json to write")->capture_default_str();
  train->add_option("--special", o->specials, "Special tokens (the first, or <|endoftext|>, is EOS)")
      ->capture_default_str();

  const std::string spec_help =
      "bytes, gpt2, r50k_base, p50k_base, cl100k_base, o200k_base, or a path "
      "(tokenizer.json, *.tiktoken, *.model, a folder with vocab.json + merges.txt)";
  auto* encode = cmd->add_subcommand("encode", "Print the token ids of a text");
  encode->add_option("--tokenizer", o->spec, spec_help)->capture_default_str();
  encode->add_option("--text", o->text, "Text to encode")->required();
  encode->add_flag("--pieces", o->show_pieces, "One line per token: id and its text");

  auto* info =
      cmd->add_subcommand("info", "Print a tokenizer's name, vocabulary size, EOS id and content hash");
  info->add_option("--tokenizer", o->spec, spec_help)->capture_default_str();

  return [o, train, encode] {
    if (train->parsed()) return run_train(*o);
    if (encode->parsed()) return run_encode(*o);
    return run_info(*o);
  };
}

}  // namespace strata::cli

// Cloze probes: multiple-choice facts in a JSONL file, one object per line,
//   {"prompt": "In the beginning God created the", "answer": "heaven",
//    "choices": ["heaven", "sea", "world", "light"]}
// (blank lines and lines starting with # are skipped). A causal model scores each choice by
// its log-likelihood as a continuation of the prompt, a masked LM by filling the blank after
// the prompt (model/scoring.hpp); the probe is correct when the answer scores highest. The continuation text
// is the choice with one space before it, unless the prompt ends in whitespace or is empty, so "... created
// the" + " heaven" is tokenised as the corpus has it; prompt and continuation are tokenised separately.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "strata/core/error.hpp"
#include "strata/data/tokenizer.hpp"
#include "strata/model/scoring.hpp"

namespace strata::train {

struct Probe {
  std::string prompt, answer;
  std::vector<std::string> choices;  // the answer is one of them
  int answer_index = 0;
  int line = 0;  // 1-based line in the file
};

// Reads and checks a probe file; errors name the file, the line and the field.
std::vector<Probe> load_probes(const std::string& path);
// The same from text (tests); `origin` names it in messages.
std::vector<Probe> parse_probes(const std::string& text, const std::string& origin);

// The text scored after the prompt for `choice`.
std::string continuation_text(const std::string& prompt, const std::string& choice);

struct ProbeScore {
  std::vector<double> log_likelihood;  // per choice
  int predicted = 0;
  bool correct = false;
};
struct ProbeReport {
  std::vector<ProbeScore> scores;  // per probe
  int correct = 0;
  double accuracy() const { return scores.empty() ? 0.0 : double(correct) / double(scores.size()); }
};

// Scores every probe: with a causal model (mask_id < 0) by the log-likelihood of each choice as
// the prompt's continuation; with a masked LM (mask_id = its [MASK] id) by filling the blank
// after the prompt with as many [MASK] tokens as the choice has and summing the choice's
// log-probabilities there (model/scoring.hpp). Collective over the decoder's TP group. Throws,
// naming the probe's line, when a prompt and choice do not fit the decoder's cache.
// Dec: a model::Decoder<B> or a model::DecoderModel.
template <class Dec>
ProbeReport score_probes(Dec& decoder, const data::Tokenizer& tokenizer, const std::vector<Probe>& probes,
                         const std::string& origin, std::int32_t mask_id = -1) {
  ProbeReport report;
  for (const Probe& p : probes) {
    const std::string at = origin + ":" + std::to_string(p.line) + ": ";
    const std::vector<std::int32_t> context = tokenizer.encode(p.prompt);
    if (context.empty()) throw make_error(at, "the prompt encodes to no tokens");
    std::vector<std::vector<std::int32_t>> choices;
    for (const std::string& c : p.choices) {
      choices.push_back(tokenizer.encode(continuation_text(p.prompt, c)));
      if (context.size() + choices.back().size() > std::size_t(decoder.max_len()))
        throw make_error(at, "prompt and choice \"", c, "\" are ", context.size() + choices.back().size(),
                         " tokens, more than the model's ", decoder.max_len(), " positions");
    }
    ProbeScore s;
    s.log_likelihood = mask_id < 0 ? model::choice_log_likelihoods(decoder, context, choices)
                                   : model::masked_choice_log_likelihoods(decoder, context, choices, mask_id);
    s.predicted = model::best_choice(s.log_likelihood);
    s.correct = s.predicted == p.answer_index;
    report.correct += s.correct;
    report.scores.push_back(std::move(s));
  }
  return report;
}

}  // namespace strata::train

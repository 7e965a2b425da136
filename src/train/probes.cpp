// Cloze probe files and their scoring; see probes.hpp.
#include "strata/train/probes.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "strata/core/error.hpp"
#include "strata/model/scoring.hpp"

namespace strata::train {

std::vector<Probe> parse_probes(const std::string& text, const std::string& origin) {
  std::vector<Probe> probes;
  std::istringstream in(text);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::string at = origin + ":" + std::to_string(n) + ": ";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw make_error(at, "not valid JSON (", e.what(), ")");
    }
    if (!j.is_object()) throw make_error(at, "expected a JSON object {\"prompt\", \"answer\", \"choices\"}");
    auto text_field = [&](const char* key) {
      if (!j.contains(key) || !j[key].is_string()) throw make_error(at, "\"", key, "\" must be a string");
      return j[key].get<std::string>();
    };
    Probe p;
    p.line = n;
    p.prompt = text_field("prompt");
    p.answer = text_field("answer");
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].size() < 2)
      throw make_error(at, "\"choices\" must be an array of at least two strings");
    for (const auto& c : j["choices"]) {
      if (!c.is_string() || c.get<std::string>().empty())
        throw make_error(at, "\"choices\" must hold non-empty strings");
      p.choices.push_back(c.get<std::string>());
    }
    const auto it = std::find(p.choices.begin(), p.choices.end(), p.answer);
    if (it == p.choices.end())
      throw make_error(at, "the answer \"", p.answer, "\" is not one of the choices");
    if (std::count(p.choices.begin(), p.choices.end(), p.answer) > 1)
      throw make_error(at, "the answer \"", p.answer, "\" appears more than once in the choices");
    p.answer_index = int(it - p.choices.begin());
    for (const auto& [key, value] : j.items())
      if (key != "prompt" && key != "answer" && key != "choices")
        throw make_error(at, "unknown key \"", key, "\" (expected prompt, answer, choices)");
    probes.push_back(std::move(p));
  }
  if (probes.empty()) throw make_error(origin, ": no probes (one JSON object per line)");
  return probes;
}

std::vector<Probe> load_probes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw make_error("cannot read probe file '", path, "'");
  std::ostringstream text;
  text << f.rdbuf();
  return parse_probes(text.str(), path);
}

std::string continuation_text(const std::string& prompt, const std::string& choice) {
  const bool space = !prompt.empty() && !std::isspace(static_cast<unsigned char>(prompt.back()));
  return (space ? " " : "") + choice;
}

}  // namespace strata::train

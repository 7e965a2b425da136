#include "strata/plan/layout.hpp"

#include <charconv>
#include <sstream>
#include <vector>

#include "strata/core/error.hpp"

namespace strata::plan {

std::string to_string(const Layout& l) {
  std::ostringstream os;
  os << "tp" << l.tp << "-pp" << l.pp << "-dp" << l.dp << (l.cp > 1 ? "-cp" + std::to_string(l.cp) : "")
     << "-v" << l.vpp << "-mb" << l.micro_batch << "-z" << l.zero << (l.sequence_parallel ? "-sp" : "")
     << "-r" << (l.recompute == Recompute::selective ? "sel" : to_string(l.recompute))
     << (l.gpipe ? "-gpipe" : "") << (l.zb ? "-zb" : "") << (l.ulysses && l.cp > 1 ? "-ulysses" : "");
  return os.str();
}

config::PipelineSchedule schedule_of(const Layout& l) {
  return l.vpp > 1 ? config::PipelineSchedule::interleaved_1f1b
         : l.gpipe ? config::PipelineSchedule::gpipe
         : l.zb    ? config::PipelineSchedule::zb_h1
                   : config::PipelineSchedule::one_f_one_b;
}

Layout parse_layout(const std::string& text, int gpus, int global_batch, config::Precision precision) {
  Layout l;
  l.precision = precision;
  int dp = 0;
  const auto bad = [&](const std::string& part, const std::string& why) {
    return make_error("layout '", text, "': ", part.empty() ? "" : "'" + part + "': ", why,
                      " (form: tp8-pp4-dp16-v2-mb1-z1-sp-rfull; parts tpN ppN dpN cpN vN mbN zN sp "
                      "rnone|rsel|rfull gpipe zb ulysses, separated by '-')");
  };
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, '-')) {
    if (part.empty()) throw bad(part, "empty part");
    if (part == "sp") {
      l.sequence_parallel = true;
      continue;
    }
    if (part == "gpipe") {
      l.gpipe = true;
      continue;
    }
    if (part == "zb") {
      l.zb = true;
      continue;
    }
    if (part == "ulysses") {
      l.ulysses = true;
      continue;
    }
    if (part == "rnone" || part == "rsel" || part == "rselective" || part == "rfull") {
      l.recompute = part == "rnone"   ? Recompute::none
                    : part == "rfull" ? Recompute::full
                                      : Recompute::selective;
      continue;
    }
    std::size_t digits = part.find_first_of("0123456789");
    if (digits == std::string::npos || digits == 0) throw bad(part, "unknown part");
    const std::string key = part.substr(0, digits);
    int value = 0;
    const auto [end, ec] = std::from_chars(part.data() + digits, part.data() + part.size(), value);
    if (ec != std::errc() || end != part.data() + part.size())
      throw bad(part, "expected a whole number after '" + key + "'");
    if (value <= 0 && key != "z") throw bad(part, "sizes must be > 0");
    if (key == "tp")
      l.tp = value;
    else if (key == "pp")
      l.pp = value;
    else if (key == "dp")
      dp = value;
    else if (key == "cp")
      l.cp = value;
    else if (key == "v")
      l.vpp = value;
    else if (key == "mb")
      l.micro_batch = value;
    else if (key == "z") {
      if (value > 3) throw bad(part, "ZeRO stage must be 0, 1, 2 or 3");
      l.zero = value;
    } else {
      throw bad(part, "unknown part");
    }
  }
  if (dp == 0) {
    if (gpus % (l.tp * l.pp * l.cp) != 0)
      throw bad("", "tp x pp x cp = " + std::to_string(l.tp * l.pp * l.cp) +
                        " does not divide the GPU count " + std::to_string(gpus));
    dp = gpus / (l.tp * l.pp * l.cp);
  }
  l.dp = dp;
  if (l.gpus() != gpus)
    throw bad("", "tp x pp x dp x cp = " + std::to_string(l.gpus()) + " but the job has " +
                      std::to_string(gpus) + " GPUs");
  if (l.sequence_parallel && l.tp == 1) l.sequence_parallel = false;  // nothing to split
  if (l.ulysses && l.cp == 1)
    throw bad("ulysses", "the Ulysses mode is one of context parallelism: needs cpN with N > 1");
  if (global_batch % (l.micro_batch * l.dp) != 0)
    throw bad("", "the global batch " + std::to_string(global_batch) +
                      " is not a multiple of mb x dp = " + std::to_string(l.micro_batch * l.dp));
  l.micro_batches = global_batch / (l.micro_batch * l.dp);
  return l;
}

}  // namespace strata::plan

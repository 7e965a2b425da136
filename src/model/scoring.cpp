// Cloze choice: the best score (scoring.hpp has the templates).
#include "strata/model/scoring.hpp"

namespace strata::model {

int best_choice(const std::vector<double>& scores) {
  STRATA_CHECK(!scores.empty(), "best_choice of no scores");
  return int(std::max_element(scores.begin(), scores.end()) - scores.begin());
}

}  // namespace strata::model

#include "strata/plan/table.hpp"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "strata/core/error.hpp"

namespace strata::plan {

void Table::add_row(std::vector<std::string> cells) {
  STRATA_CHECK(cells.size() == headers_.size(), "table row of ", cells.size(), " cells, want ",
               headers_.size());
  rows_.push_back(std::move(cells));
}

std::string fmt(const char* format, double value) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, value);
  return buf;
}

namespace {
std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}
}  // namespace

std::string Table::render(TableFormat format) const {
  std::ostringstream os;
  if (format == TableFormat::csv) {
    auto line = [&](const std::vector<std::string>& cells) {
      for (std::size_t i = 0; i < cells.size(); ++i) os << (i ? "," : "") << csv_cell(cells[i]);
      os << '\n';
    };
    line(headers_);
    for (const auto& r : rows_) line(r);
    return os.str();
  }
  std::vector<std::size_t> width(headers_.size());
  for (std::size_t i = 0; i < headers_.size(); ++i) {
    width[i] = headers_[i].size();
    for (const auto& r : rows_) width[i] = std::max(width[i], r[i].size());
  }
  const bool md = format == TableFormat::markdown;
  auto line = [&](const std::vector<std::string>& cells) {
    if (md) os << "| ";
    for (std::size_t i = 0; i < cells.size(); ++i) {
      os << cells[i];
      if (md || i + 1 < cells.size()) os << std::string(width[i] - cells[i].size(), ' ');
      if (i + 1 < cells.size()) os << (md ? " | " : "  ");
    }
    os << (md ? " |\n" : "\n");
  };
  line(headers_);
  if (md) {
    os << "|";
    for (std::size_t w : width) os << std::string(w + 2, '-') << "|";
    os << '\n';
  } else {
    std::size_t total = 0;
    for (std::size_t w : width) total += w + 2;
    os << std::string(total - 2, '-') << '\n';
  }
  for (const auto& r : rows_) line(r);
  return os.str();
}

}  // namespace strata::plan

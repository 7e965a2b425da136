// A small table of strings rendered as aligned text, Markdown or CSV (the planner's and the
// budget command's output formats).
#pragma once
#include <string>
#include <vector>

namespace strata::plan {

enum class TableFormat { text, markdown, csv };

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void add_row(std::vector<std::string> cells);  // as many cells as headers
  std::string render(TableFormat format) const;
  const std::vector<std::vector<std::string>>& rows() const { return rows_; }

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

// printf-style formatting of one number ("%.1f") into a std::string.
std::string fmt(const char* format, double value);

}  // namespace strata::plan

// resource_roots(): see paths.hpp.
#include "strata/core/paths.hpp"

#include <cstdlib>
#include <system_error>

namespace strata {

namespace fs = std::filesystem;

fs::path executable_path() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe;
}

std::vector<fs::path> resource_roots() {
  std::vector<fs::path> roots;
  std::error_code ec;
  auto add = [&](const fs::path& p) {
    if (!p.empty() && fs::is_directory(p, ec)) roots.push_back(p.lexically_normal());
  };
  if (const char* home = std::getenv("STRATA_HOME"); home && *home) add(home);
  const fs::path exe = executable_path();
  if (!exe.empty()) {
    const fs::path dir = exe.parent_path();
    if (dir.filename() == "bin") add(dir.parent_path() / "share" / "strata");
    fs::path d = dir;
    for (int up = 0; up <= 3 && !d.empty(); ++up) {
      add(d);
      if (d == d.root_path()) break;
      d = d.parent_path();
    }
  }
  return roots;
}

}  // namespace strata

#include "strata/core/memory_plan.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iomanip>
#include <sstream>

namespace strata {

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  std::ostringstream os;
  os << std::fixed << std::setprecision(u == 0 ? 0 : 2) << bytes << ' ' << units[u];
  return os.str();
}

std::size_t MemoryPlan::add(std::string name, Shape shape, DType dtype, std::string lifetime) {
  STRATA_CHECK(!arena_, "MemoryPlan '", owner_, "': add('", name, "') after allocate()");
  Entry e{std::move(name), std::move(shape), dtype, std::move(lifetime)};
  e.nbytes = static_cast<std::size_t>(shape_numel(e.shape)) * dtype_size(dtype);
  e.offset = total_;
  total_ += (e.nbytes + 63) / 64 * 64;  // keep every buffer 64-byte aligned
  entries_.push_back(std::move(e));
  return entries_.size() - 1;
}

void MemoryPlan::allocate() {
  STRATA_CHECK(!arena_, "MemoryPlan '", owner_, "' allocated twice");
  const std::size_t bytes = std::max<std::size_t>(total_, 64);
  void* p = std::aligned_alloc(64, bytes);
  if (!p)
    throw make_error("MemoryPlan '", owner_, "': out of memory allocating ", format_bytes(double(bytes)));
  std::memset(p, 0, bytes);
  arena_ = std::shared_ptr<void>(p, std::free);
  device_ = Device::cpu;
}

void MemoryPlan::allocate_with(std::shared_ptr<void> arena, Device device) {
  STRATA_CHECK(!arena_, "MemoryPlan '", owner_, "' allocated twice");
  STRATA_CHECK(arena, "MemoryPlan '", owner_, "': allocate_with() got a null arena");
  STRATA_CHECK(reinterpret_cast<std::uintptr_t>(arena.get()) % 64 == 0, "MemoryPlan '", owner_,
               "': allocate_with() needs a 64-byte aligned arena");
  arena_ = std::move(arena);
  device_ = device;
}

Tensor MemoryPlan::tensor(std::size_t index) const {
  STRATA_CHECK(arena_, "MemoryPlan '", owner_, "' used before allocate()");
  const Entry& e = entries_.at(index);
  return Tensor::view(static_cast<char*>(arena_.get()) + e.offset, e.shape, e.dtype, device_);
}

Tensor MemoryPlan::tensor(const std::string& name) const {
  for (std::size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].name == name) return tensor(i);
  throw make_error("MemoryPlan '", owner_, "': no buffer named '", name, "'");
}

void MemoryPlan::print(std::ostream& os, std::size_t max_rows) const {
  std::vector<const Entry*> rows;
  for (const auto& e : entries_) rows.push_back(&e);
  std::stable_sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->nbytes > b->nbytes; });
  os << "memory plan '" << owner_ << "': " << entries_.size() << " buffers, " << format_bytes(double(total_))
     << " in one allocation\n";
  std::size_t shown = 0;
  for (const Entry* e : rows) {
    if (max_rows && shown == max_rows) {
      os << "  ... " << rows.size() - shown << " smaller buffers\n";
      break;
    }
    os << "  " << std::left << std::setw(36) << e->name << std::setw(22) << shape_string(e->shape)
       << std::setw(5) << dtype_name(e->dtype) << std::setw(11) << e->lifetime << std::right << std::setw(12)
       << format_bytes(double(e->nbytes)) << '\n';
    ++shown;
  }
}

}  // namespace strata

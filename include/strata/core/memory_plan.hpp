// MemoryPlan: every buffer a component needs, planned before anything is allocated
// (llm.c's habit): a table of (name, shape, dtype, lifetime), then one large 64-byte
// aligned allocation carved into views. The table and the total are printable, so the
// trainer shows the memory it will use before the first step.
#pragma once
#include <cstddef>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "strata/core/tensor.hpp"

namespace strata {

class MemoryPlan {
 public:
  struct Entry {
    std::string name;
    Shape shape;
    DType dtype;
    std::string lifetime;  // e.g. "step", "persistent", "layer"
    std::size_t offset = 0;
    std::size_t nbytes = 0;
  };

  explicit MemoryPlan(std::string owner) : owner_(std::move(owner)) {}

  // Reserve a buffer; returns its index. Only valid before allocate().
  std::size_t add(std::string name, Shape shape, DType dtype, std::string lifetime);
  // One allocation for every entry (zero-filled), in host memory.
  void allocate();
  // Use an arena someone else allocated: at least max(total_bytes(), 64) bytes, 64-byte
  // aligned, zero-filled, freed by `arena`'s deleter. The views tensor() returns carry
  // `device` (kernels::cuda::allocate_on_device passes cudaMalloc'ed memory and Device::cuda).
  void allocate_with(std::shared_ptr<void> arena, Device device);
  bool allocated() const { return arena_ != nullptr; }
  Device device() const { return device_; }
  const std::string& owner() const { return owner_; }

  Tensor tensor(std::size_t index) const;
  Tensor tensor(const std::string& name) const;
  template <class T>
  T* data(std::size_t index) const {
    return tensor(index).data<T>();
  }

  std::size_t total_bytes() const { return total_; }
  const std::vector<Entry>& entries() const { return entries_; }
  // The table, largest first, with a total line; `max_rows` limits it (0: all rows).
  void print(std::ostream& os, std::size_t max_rows = 0) const;

 private:
  std::string owner_;
  std::vector<Entry> entries_;
  std::size_t total_ = 0;
  std::shared_ptr<void> arena_;
  Device device_ = Device::cpu;
};

std::string format_bytes(double bytes);

}  // namespace strata

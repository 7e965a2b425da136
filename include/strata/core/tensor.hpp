// Tensor: a shape, a dtype, a device and a pointer into storage. Storage is either owned
// (a shared buffer, freed with the last Tensor that refers to it) or borrowed (a view into
// an arena carved by MemoryPlan). Kernels take raw pointers and sizes; Tensor is how the
// model and the trainer name, size and hand out those pointers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "strata/core/error.hpp"

namespace strata {

enum class DType { f32, f64, bf16, i32, u16, u32, u64 };
enum class Device { cpu, cuda };

std::size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);
const char* device_name(Device device);
template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<std::int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<std::uint16_t>() {
  return DType::u16;
}
template <>
constexpr DType dtype_of<std::uint32_t>() {
  return DType::u32;
}
template <>
constexpr DType dtype_of<std::uint64_t>() {
  return DType::u64;
}

using Shape = std::vector<std::int64_t>;
std::int64_t shape_numel(const Shape& shape);
std::string shape_string(const Shape& shape);

class Tensor {
 public:
  Tensor() = default;
  // Owning: a zero-filled, 64-byte aligned buffer on the CPU.
  static Tensor zeros(Shape shape, DType dtype);
  // Borrowing: a view over memory someone else owns (an arena, a caller's buffer).
  static Tensor view(void* data, Shape shape, DType dtype, Device device = Device::cpu);

  const Shape& shape() const { return shape_; }
  std::int64_t dim(int i) const { return shape_.at(static_cast<std::size_t>(i)); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  std::int64_t numel() const { return shape_numel(shape_); }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool defined() const { return data_ != nullptr; }

  // Typed access; checks that T matches the dtype.
  template <class T>
  T* data() const {
    STRATA_CHECK(dtype_of<T>() == dtype_, "tensor of dtype ", dtype_name(dtype_), " accessed as ",
                 dtype_name(dtype_of<T>()));
    return static_cast<T*>(data_);
  }
  void* raw() const { return data_; }

 private:
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;  // null for views
};

}  // namespace strata

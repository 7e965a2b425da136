// Small RAII and error helpers over HDF5's C API, shared by the token datasets (data) and the
// checkpoints (ckpt). Every HDF5 call in the process must hold hdf5_mutex() (through h5::Lock).
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>

namespace strata::h5 {

// Debian's parallel HDF5 is built without its thread-safe option, so calls from different
// threads (the loader thread of each source, a validation pass, a checkpoint save) must not
// overlap. This lock is the one process-wide state here, and it mirrors the library's own: one
// HDF5 per process.
std::mutex& hdf5_mutex();

// A hold of hdf5_mutex() (use it rather than locking the mutex directly): it counts the threads
// waiting for the mutex, so that a long holder — the background checkpoint writer, between the
// datasets it writes — can yield() to them. A loader thread then waits at most one HDF5 call of
// the writer's (one dataset) instead of the whole save. Nobody may wait for another thread
// while holding it (every holder's calls finish on their own), so a hand-off cannot deadlock.
class Lock {
 public:
  Lock();
  ~Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;
  // When another thread waits for the mutex: release it, let the waiters take it (up to a
  // second), and wait for it again. Only between HDF5 calls; handles stay open across it.
  void yield();
  // Release and take back explicitly (e.g. around a sleep between HDF5 calls). Every handle
  // must be closed with the mutex held, so take it back before handles go out of scope.
  void unlock() { lock_.unlock(); }
  void lock() { acquire(); }

 private:
  void acquire();
  std::unique_lock<std::mutex> lock_;
};

// The innermost message on HDF5's error stack ("truncated file: eof = 1234, ..."), or "".
std::string hdf5_error_text();

// Silence HDF5's automatic error printing; our errors carry the message instead.
void quiet_hdf5();

// An hid_t closed by its matching H5*close.
class Id {
 public:
  using Closer = herr_t (*)(hid_t);
  Id() = default;
  Id(hid_t id, Closer close) : id_(id), close_(close) {}
  Id(Id&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), close_(o.close_) {}
  Id& operator=(Id&& o) noexcept {
    reset();
    id_ = std::exchange(o.id_, H5I_INVALID_HID);
    close_ = o.close_;
    return *this;
  }
  ~Id() { reset(); }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = H5I_INVALID_HID;
  }
  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer close_ = nullptr;
};

// Checks an HDF5 return value; the error names the file and the operation.
hid_t check(hid_t id, const std::string& path, const char* what);

// ---- attributes (scalar strings and numbers) ----
void write_attr_string(hid_t loc, const char* name, const std::string& value, const std::string& path);
void write_attr_raw(hid_t loc, const char* name, const void* value, hid_t mem_type, hid_t file_type,
                    const std::string& path);
template <class T>
void write_attr_number(hid_t loc, const char* name, T value, hid_t mem_type, hid_t file_type,
                       const std::string& path) {
  write_attr_raw(loc, name, &value, mem_type, file_type, path);
}
bool has_attr(hid_t loc, const char* name);
Id open_attr(hid_t loc, const char* name, const std::string& path);
std::string read_attr_string(hid_t loc, const char* name, const std::string& path);
void read_attr_int_raw(hid_t loc, const char* name, hid_t mem_type, void* out, const std::string& path);
template <class T>
T read_attr_int(hid_t loc, const char* name, hid_t mem_type, const std::string& path) {
  T v{};
  read_attr_int_raw(loc, name, mem_type, &v, path);
  return v;
}

}  // namespace strata::h5

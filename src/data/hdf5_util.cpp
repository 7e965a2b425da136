#include "strata/data/hdf5_util.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "strata/core/error.hpp"

namespace strata::h5 {

std::mutex& hdf5_mutex() {
  static std::mutex m;
  return m;
}

namespace {
std::atomic<int>& waiting() {  // threads between asking for hdf5_mutex() and holding it
  static std::atomic<int> n{0};
  return n;
}
}  // namespace

Lock::Lock() : lock_(hdf5_mutex(), std::defer_lock) { acquire(); }

void Lock::acquire() {
  waiting().fetch_add(1);
  lock_.lock();
  waiting().fetch_sub(1);
}

void Lock::yield() {
  if (waiting().load() == 0) return;
  lock_.unlock();
  // std::mutex is not fair: re-locking at once would usually win again. The waiters count
  // themselves out once they hold the mutex; then this thread queues behind them.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  while (waiting().load() > 0 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  acquire();
}

std::string hdf5_error_text() {
  std::string text;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned n, const H5E_error2_t* e, void* out) -> herr_t {
        auto& s = *static_cast<std::string*>(out);
        if (e->desc && *e->desc) s = e->desc;  // keep the last (innermost) description
        (void)n;
        return 0;
      },
      &text);
  H5Eclear2(H5E_DEFAULT);
  return text;
}

void quiet_hdf5() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

hid_t check(hid_t id, const std::string& path, const char* what) {
  if (id < 0) {
    const std::string detail = hdf5_error_text();
    throw make_error(path, ": ", what, detail.empty() ? "" : ": ", detail);
  }
  return id;
}

void write_attr_string(hid_t loc, const char* name, const std::string& value, const std::string& path) {
  Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), std::max<std::size_t>(1, value.size()));
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Id attr(check(H5Acreate2(loc, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), path, name),
          H5Aclose);
  const std::string padded = value.empty() ? std::string(1, '\0') : value;
  check(H5Awrite(attr.get(), type.get(), padded.data()), path, name);
}

void write_attr_raw(hid_t loc, const char* name, const void* value, hid_t mem_type, hid_t file_type,
                    const std::string& path) {
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Id attr(check(H5Acreate2(loc, name, file_type, space.get(), H5P_DEFAULT, H5P_DEFAULT), path, name),
          H5Aclose);
  check(H5Awrite(attr.get(), mem_type, value), path, name);
}

bool has_attr(hid_t loc, const char* name) { return H5Aexists(loc, name) > 0; }

Id open_attr(hid_t loc, const char* name, const std::string& path) {
  if (!has_attr(loc, name))
    throw make_error(path, ": missing attribute '", name,
                     "' (not a strata file of this kind, or written by "
                     "an incompatible version)");
  return Id(check(H5Aopen(loc, name, H5P_DEFAULT), path, name), H5Aclose);
}

std::string read_attr_string(hid_t loc, const char* name, const std::string& path) {
  Id attr = open_attr(loc, name, path);
  Id type(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw make_error(path, ": attribute '", name, "' should be a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* s = nullptr;
    Id mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    check(H5Aread(attr.get(), mem.get(), &s), path, name);
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  const std::size_t n = H5Tget_size(type.get());
  std::string out(n, '\0');
  check(H5Aread(attr.get(), type.get(), out.data()), path, name);
  out.resize(std::strlen(out.c_str()));
  return out;
}

void read_attr_int_raw(hid_t loc, const char* name, hid_t mem_type, void* out, const std::string& path) {
  Id attr = open_attr(loc, name, path);
  Id type(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_INTEGER)
    throw make_error(path, ": attribute '", name, "' should be an integer");
  check(H5Aread(attr.get(), mem_type, out), path, name);
}

}  // namespace strata::h5

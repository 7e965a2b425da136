#include "io.hpp"

#include <algorithm>
#include <cstring>

#include "strata/ckpt/checkpoint.hpp"
#include "strata/core/error.hpp"

namespace strata::ckpt::detail {

using namespace h5;

void transfer(bool write, hid_t dset, const model::ParamInfo* p, const std::vector<Seg>& segs,
              std::vector<float>& staging, hid_t dxpl, const std::string& where) {
  Id file_space(check(H5Dget_space(dset), where, "dataspace"), H5Sclose);
  std::int64_t total = 0;
  bool direct = true;
  for (const Seg& s : segs) {
    total += s.r.size();
    direct = direct && s.ptr - s.r.begin == segs.front().ptr - segs.front().r.begin;
  }
  float dummy = 0;
  if (total == 0) {
    // A rank with nothing to move still joins the collective call, with empty selections (an
    // H5S_NULL memory space instead made HDF5 1.10 write another rank's data wrongly).
    const hsize_t one = 1;
    Id mem(H5Screate_simple(1, &one, nullptr), H5Sclose);
    H5Sselect_none(mem.get());
    H5Sselect_none(file_space.get());
    const herr_t rc = write ? H5Dwrite(dset, H5T_NATIVE_FLOAT, mem.get(), file_space.get(), dxpl, &dummy)
                            : H5Dread(dset, H5T_NATIVE_FLOAT, mem.get(), file_space.get(), dxpl, &dummy);
    check(rc, where, write ? "write" : "read");
    return;
  }
  // File side: the slabs of every segment, in stored row-major order = local order.
  const int rank = H5Sget_simple_extent_ndims(file_space.get());
  bool first = true;
  for (const Seg& s : segs)
    for (const Slab& b : shard_slabs(*p, s.r)) {
      const hsize_t start2[2] = {b.row, b.col}, count2[2] = {b.rows, b.cols};
      const hsize_t start1[1] = {b.col}, count1[1] = {b.cols};
      check(H5Sselect_hyperslab(file_space.get(), first ? H5S_SELECT_SET : H5S_SELECT_OR,
                                rank == 2 ? start2 : start1, nullptr, rank == 2 ? count2 : count1, nullptr),
            where, "select hyperslab");
      first = false;
    }
  // Memory side.
  float* buf = nullptr;
  Id mem;
  if (direct) {
    const hsize_t extent = hsize_t(segs.back().r.end);
    mem = Id(H5Screate_simple(1, &extent, nullptr), H5Sclose);
    for (std::size_t i = 0; i < segs.size(); ++i) {
      const hsize_t start = hsize_t(segs[i].r.begin), count = hsize_t(segs[i].r.size());
      H5Sselect_hyperslab(mem.get(), i == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, &start, nullptr, &count,
                          nullptr);
    }
    buf = segs.front().ptr - segs.front().r.begin;
  } else {
    if (staging.size() < std::size_t(total)) staging.resize(std::size_t(total));
    const hsize_t n = hsize_t(total);
    mem = Id(H5Screate_simple(1, &n, nullptr), H5Sclose);
    buf = staging.data();
    if (write) {
      std::int64_t at = 0;
      for (const Seg& s : segs) {
        std::memcpy(buf + at, s.ptr, std::size_t(s.r.size()) * sizeof(float));
        at += s.r.size();
      }
    }
  }
  const herr_t rc = write ? H5Dwrite(dset, H5T_NATIVE_FLOAT, mem.get(), file_space.get(), dxpl, buf)
                          : H5Dread(dset, H5T_NATIVE_FLOAT, mem.get(), file_space.get(), dxpl, buf);
  check(rc, where, write ? "write" : "read (truncated or corrupt file?)");
  if (!write && !direct) {
    std::int64_t at = 0;
    for (const Seg& s : segs) {
      std::memcpy(s.ptr, buf + at, std::size_t(s.r.size()) * sizeof(float));
      at += s.r.size();
    }
  }
}

int layer_of(const std::string& name) {
  if (name.rfind("layers.", 0) != 0) return -1;
  return std::stoi(name.substr(7));
}

Id open_checkpoint(const std::string& file, MPI_Comm comm) {
  quiet_hdf5();
  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  if (comm != MPI_COMM_NULL) H5Pset_fapl_mpio(fapl.get(), comm, MPI_INFO_NULL);
  const hid_t id = H5Fopen(file.c_str(), H5F_ACC_RDONLY, fapl.get());
  if (id < 0) {
    const std::string detail = hdf5_error_text();
    throw make_error("checkpoint '", file, "' cannot be opened (truncated, corrupt or not an HDF5 file)",
                     detail.empty() ? "" : ": ", detail);
  }
  Id f(id, H5Fclose);
  if (!has_attr(f.get(), "format") || read_attr_string(f.get(), "format", file) != kFormat)
    throw make_error("'", file, "' is not a strata checkpoint (its root attribute 'format' is not '", kFormat,
                     "')");
  const int version = read_attr_int<int>(f.get(), "version", H5T_NATIVE_INT, file);
  if (version != kFormatVersion)
    throw make_error("checkpoint '", file, "' has format version ", version, "; this strata reads version ",
                     kFormatVersion);
  return f;
}

Id open_tensor(hid_t file, const std::string& dataset_path, const Shape& expected, const std::string& where) {
  if (H5Lexists(file, dataset_path.c_str(), H5P_DEFAULT) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw make_error("checkpoint '", where, "' has no tensor ", dataset_path,
                     " that the model needs (written for another model shape?)");
  }
  Id d(check(H5Dopen2(file, dataset_path.c_str(), H5P_DEFAULT), where, dataset_path.c_str()), H5Dclose);
  Id space(H5Dget_space(d.get()), H5Sclose);
  const int nd = H5Sget_simple_extent_ndims(space.get());
  Shape stored(std::size_t(std::max(nd, 0)));
  if (nd > 0) {
    std::vector<hsize_t> dims(static_cast<std::size_t>(nd));
    H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    for (int i = 0; i < nd; ++i) stored[std::size_t(i)] = std::int64_t(dims[std::size_t(i)]);
  }
  if (stored != expected)
    throw make_error("checkpoint '", where, "': tensor ", dataset_path, " has shape ", shape_string(stored),
                     " but the model needs ", shape_string(expected),
                     " (the checkpoint was written for another model shape or vocabulary)");
  return d;
}

}  // namespace strata::ckpt::detail

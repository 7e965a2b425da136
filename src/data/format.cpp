// HDF5 token datasets: the collective writer and the validating reader (format.hpp,
// docs/data-format.md).
#include "strata/data/format.hpp"

#include <hdf5.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "strata/comm/collectives.hpp"
#include "strata/comm/mpi_communicator.hpp"
#include "strata/core/error.hpp"
#include "strata/data/hash.hpp"
#include "strata/data/hdf5_util.hpp"

namespace strata::data {

namespace {

using namespace h5;

constexpr hsize_t kTokenChunk = 1 << 20;   // elements per /tokens chunk (2 or 4 MiB)
constexpr hsize_t kOffsetChunk = 1 << 16;  // elements per /doc_offsets chunk (512 KiB)

// A 1-D chunked dataset of `n` elements (max size unlimited, so any chunk size is legal).
Id create_1d(hid_t file, const char* name, hid_t type, hsize_t n, hsize_t chunk, const std::string& path) {
  const hsize_t maxdims = H5S_UNLIMITED;
  Id space(H5Screate_simple(1, &n, &maxdims), H5Sclose);
  Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  const hsize_t c = std::max<hsize_t>(1, std::min(chunk, n));
  H5Pset_chunk(dcpl.get(), 1, &c);
  H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER);
  H5Pset_alloc_time(dcpl.get(), H5D_ALLOC_TIME_EARLY);
  return Id(
      check(H5Dcreate2(file, name, type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), path, name),
      H5Dclose);
}

// Every rank writes [offset, offset + count) of a 1-D dataset (count may be 0); collective when
// the file is open with the MPI-IO driver (more than one rank).
void write_range(hid_t dset, hid_t mem_type, hsize_t offset, hsize_t count, const void* data, hid_t dxpl,
                 const std::string& path, const char* name) {
  Id file_space(H5Dget_space(dset), H5Sclose);
  Id mem_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
  if (count > 0) {
    check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &offset, nullptr, &count, nullptr), path,
          name);
  } else {
    H5Sselect_none(file_space.get());
    H5Sselect_none(mem_space.get());
  }
  check(H5Dwrite(dset, mem_type, mem_space.get(), file_space.get(), dxpl, data), path, name);
}

}  // namespace

int token_bytes_for_vocab(int vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

void write_token_dataset(const std::string& path, comm::Communicator& comm, DatasetInfo info,
                         std::span<const std::int32_t> local_tokens,
                         std::span<const std::uint64_t> local_doc_lengths,
                         std::span<const float> local_doc_scores) {
  Lock lock;
  quiet_hdf5();
  STRATA_CHECK(info.vocab_size > 0, path, ": vocab_size must be set before writing");
  std::uint64_t local_sum = 0;
  for (auto len : local_doc_lengths) local_sum += len;
  STRATA_CHECK(local_sum == local_tokens.size(), path, ": document lengths (", local_sum,
               " tokens) do not add up to the tokens given (", local_tokens.size(), ")");
  for (std::int32_t t : local_tokens)
    if (t < 0 || t >= info.vocab_size)
      throw make_error(path, ": token id ", t, " is outside the vocabulary [0, ", info.vocab_size, ")");
  STRATA_CHECK(local_doc_scores.empty() || local_doc_scores.size() == local_doc_lengths.size(), path, ": ",
               local_doc_scores.size(), " document scores for ", local_doc_lengths.size(), " documents");

  // Where this rank's share goes: exclusive prefix sums over ranks.
  const std::uint64_t tok_begin = comm::exclusive_sum(comm, local_tokens.size());
  const std::uint64_t doc_begin = comm::exclusive_sum(comm, local_doc_lengths.size());
  info.num_tokens = comm::all_reduce_value<std::uint64_t>(comm, local_tokens.size());
  info.num_documents = comm::all_reduce_value<std::uint64_t>(comm, local_doc_lengths.size());
  // /doc_scores when any rank has scores; then every rank with documents must have them.
  const std::uint64_t with_scores = comm::all_reduce_value<std::uint64_t>(comm, local_doc_scores.size());
  STRATA_CHECK(with_scores == 0 || with_scores == info.num_documents, path, ": ", with_scores,
               " document scores for ", info.num_documents, " documents (some ranks gave none)");
  info.token_bytes = token_bytes_for_vocab(info.vocab_size);
  info.format_version = kFormatVersion;

  // doc_offsets: rank 0 also writes the leading 0; rank r writes the end of each of its docs.
  std::vector<std::uint64_t> ends;
  ends.reserve(local_doc_lengths.size() + 1);
  if (comm.rank() == 0) ends.push_back(0);
  std::uint64_t pos = tok_begin;
  for (auto len : local_doc_lengths) ends.push_back(pos += len);
  const hsize_t off_begin = comm.rank() == 0 ? 0 : doc_begin + 1;

  const std::string tmp = path + ".tmp";
  Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  Id dxpl(H5Pcreate(H5P_DATASET_XFER), H5Pclose);
  if (comm.size() > 1) {
    // Parallel HDF5's MPI-IO driver is the one place that needs the MPI handle itself.
    const MPI_Comm handle = comm::mpi_handle(comm);
    STRATA_CHECK(handle != MPI_COMM_NULL, path, ": writing from ", comm.size(),
                 " ranks needs an MPI communicator (group '", comm.name(), "' is not one)");
    H5Pset_fapl_mpio(fapl.get(), handle, MPI_INFO_NULL);
    H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE);
  }
  {
    Id file(check(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), tmp, "cannot create file"),
            H5Fclose);
    const hid_t tok_type = info.token_bytes == 2 ? H5T_STD_U16LE : H5T_STD_U32LE;
    Id tokens = create_1d(file.get(), "tokens", tok_type, info.num_tokens, kTokenChunk, tmp);
    Id offsets =
        create_1d(file.get(), "doc_offsets", H5T_STD_U64LE, info.num_documents + 1, kOffsetChunk, tmp);
    // HDF5 converts int32 -> uint16/uint32 on write (ids were range-checked above).
    write_range(tokens.get(), H5T_NATIVE_INT32, tok_begin, local_tokens.size(), local_tokens.data(),
                dxpl.get(), tmp, "tokens");
    write_range(offsets.get(), H5T_NATIVE_UINT64, off_begin, ends.size(), ends.data(), dxpl.get(), tmp,
                "doc_offsets");
    if (with_scores > 0) {
      Id scores = create_1d(file.get(), "doc_scores", H5T_IEEE_F32LE, info.num_documents, kOffsetChunk, tmp);
      write_range(scores.get(), H5T_NATIVE_FLOAT, doc_begin, local_doc_scores.size(), local_doc_scores.data(),
                  dxpl.get(), tmp, "doc_scores");
    }
    const hid_t root = file.get();
    write_attr_number(root, "format_version", std::int32_t(info.format_version), H5T_NATIVE_INT32,
                      H5T_STD_I32LE, tmp);
    write_attr_string(root, "tokenizer_name", info.tokenizer_name, tmp);
    write_attr_string(root, "tokenizer_hash", info.tokenizer_hash, tmp);
    write_attr_number(root, "vocab_size", std::int64_t(info.vocab_size), H5T_NATIVE_INT64, H5T_STD_I64LE,
                      tmp);
    write_attr_number(root, "eos_id", std::int64_t(info.eos_id), H5T_NATIVE_INT64, H5T_STD_I64LE, tmp);
    write_attr_string(root, "source", info.source, tmp);
    write_attr_number(root, "num_documents", info.num_documents, H5T_NATIVE_UINT64, H5T_STD_U64LE, tmp);
    write_attr_number(root, "num_tokens", info.num_tokens, H5T_NATIVE_UINT64, H5T_STD_U64LE, tmp);
    write_attr_string(root, "statistics", info.statistics, tmp);
  }  // every handle closed: the file is complete on disk
  comm.barrier();
  if (comm.rank() == 0) {
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw make_error("cannot rename '", tmp, "' to '", path, "': ", ec.message());
  }
  comm.barrier();
}

// ---- reader -------------------------------------------------------------------------------------------

struct TokenDataset::Handles {
  Id file, tokens, dxpl;
};

TokenDataset::TokenDataset(const std::string& path) : path_(path), h_(std::make_unique<Handles>()) {
  Lock lock;
  quiet_hdf5();
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw make_error("cannot open dataset '", path, "': No such file");
  if (std::filesystem::is_directory(path, ec))
    throw make_error("cannot open dataset '", path, "': Is a directory");
  if (std::FILE* f = std::fopen(path.c_str(), "rb")) {
    std::fclose(f);
  } else {
    throw make_error("cannot open dataset '", path, "': ", std::strerror(errno));
  }
  const htri_t is_h5 = H5Fis_hdf5(path.c_str());
  if (is_h5 <= 0) {
    hdf5_error_text();
    throw make_error(path, ": not an HDF5 file (no HDF5 signature; was it written completely?)");
  }
  h_->file = Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!h_->file.valid()) {
    const std::string detail = hdf5_error_text();
    throw make_error(path, ": cannot open as HDF5", detail.empty() ? "" : " (", detail,
                     detail.empty() ? "" : "); the file may be truncated or damaged");
  }
  const hid_t root = h_->file.get();

  // Attributes.
  info_.format_version = read_attr_int<std::int32_t>(root, "format_version", H5T_NATIVE_INT32, path);
  if (info_.format_version != kFormatVersion)
    throw make_error(path, ": format_version ", info_.format_version, " is not supported (this strata reads ",
                     kFormatVersion, ")");
  info_.tokenizer_name = read_attr_string(root, "tokenizer_name", path);
  info_.tokenizer_hash = read_attr_string(root, "tokenizer_hash", path);
  const auto vocab = read_attr_int<std::int64_t>(root, "vocab_size", H5T_NATIVE_INT64, path);
  if (vocab <= 0 || vocab > (1ll << 31) - 1)
    throw make_error(path, ": vocab_size ", vocab, " is out of range");
  info_.vocab_size = int(vocab);
  const auto eos = read_attr_int<std::int64_t>(root, "eos_id", H5T_NATIVE_INT64, path);
  if (eos < -1 || eos >= vocab)
    throw make_error(path, ": eos_id ", eos, " is outside the vocabulary of ", vocab);
  info_.eos_id = std::int32_t(eos);
  info_.source = read_attr_string(root, "source", path);
  info_.num_documents = read_attr_int<std::uint64_t>(root, "num_documents", H5T_NATIVE_UINT64, path);
  info_.num_tokens = read_attr_int<std::uint64_t>(root, "num_tokens", H5T_NATIVE_UINT64, path);
  info_.statistics = read_attr_string(root, "statistics", path);
  info_.token_bytes = token_bytes_for_vocab(info_.vocab_size);

  // Datasets: present, 1-D, the right dtypes and sizes.
  auto open_1d = [&](const char* name, hsize_t expected, hid_t& type_out) {
    if (H5Lexists(root, name, H5P_DEFAULT) <= 0) throw make_error(path, ": missing dataset '/", name, "'");
    Id dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    H5Pset_chunk_cache(dapl.get(), H5D_CHUNK_CACHE_NSLOTS_DEFAULT, 0, H5D_CHUNK_CACHE_W0_DEFAULT);
    Id d(check(H5Dopen2(root, name, dapl.get()), path, name), H5Dclose);
    Id space(H5Dget_space(d.get()), H5Sclose);
    if (H5Sget_simple_extent_ndims(space.get()) != 1) throw make_error(path, ": /", name, " must be 1-D");
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.get(), &n, nullptr);
    if (n != expected)
      throw make_error(path, ": /", name, " has ", n, " elements but the attributes say ", expected,
                       n < expected ? " (truncated?)" : "");
    type_out = H5Dget_type(d.get());
    return d;
  };
  hid_t tok_type = H5I_INVALID_HID, off_type = H5I_INVALID_HID;
  h_->tokens = open_1d("tokens", info_.num_tokens, tok_type);
  Id tok_type_id(tok_type, H5Tclose);
  Id offsets = open_1d("doc_offsets", info_.num_documents + 1, off_type);
  Id off_type_id(off_type, H5Tclose);
  const bool tok_ok = H5Tget_class(tok_type) == H5T_INTEGER && H5Tget_sign(tok_type) == H5T_SGN_NONE &&
                      int(H5Tget_size(tok_type)) == info_.token_bytes;
  if (!tok_ok)
    throw make_error(path, ": /tokens has the wrong dtype (expected uint", info_.token_bytes * 8,
                     " for a vocabulary of ", info_.vocab_size, ", found a ", H5Tget_size(tok_type), "-byte ",
                     H5Tget_class(tok_type) == H5T_INTEGER
                         ? (H5Tget_sign(tok_type) == H5T_SGN_NONE ? "unsigned integer" : "signed integer")
                         : "non-integer",
                     ")");
  if (!(H5Tget_class(off_type) == H5T_INTEGER && H5Tget_sign(off_type) == H5T_SGN_NONE &&
        H5Tget_size(off_type) == 8))
    throw make_error(path, ": /doc_offsets has the wrong dtype (expected uint64)");

  // Offsets: all of them, each checked against the token count.
  offsets_.resize(info_.num_documents + 1);
  if (H5Dread(offsets.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, offsets_.data()) < 0) {
    const std::string detail = hdf5_error_text();
    throw make_error(path, ": cannot read /doc_offsets (", detail, "); the file may be truncated");
  }
  if (offsets_.front() != 0)
    throw make_error(path, ": /doc_offsets[0] is ", offsets_.front(), ", expected 0");
  for (std::size_t i = 1; i < offsets_.size(); ++i) {
    if (offsets_[i] > info_.num_tokens)
      throw make_error(path, ": /doc_offsets[", i, "] = ", offsets_[i], " is past the end of /tokens (",
                       info_.num_tokens, " tokens)");
    if (offsets_[i] < offsets_[i - 1])
      throw make_error(path, ": /doc_offsets decreases at index ", i, " (", offsets_[i - 1], " then ",
                       offsets_[i], ")");
  }
  if (offsets_.back() != info_.num_tokens)
    throw make_error(path, ": the last document ends at token ", offsets_.back(), " but /tokens has ",
                     info_.num_tokens);
  // Optional /doc_scores: one float per document.
  if (H5Lexists(root, "doc_scores", H5P_DEFAULT) > 0) {
    hid_t score_type = H5I_INVALID_HID;
    Id scores = open_1d("doc_scores", info_.num_documents, score_type);
    Id score_type_id(score_type, H5Tclose);
    if (H5Tget_class(score_type) != H5T_FLOAT)
      throw make_error(path, ": /doc_scores has the wrong dtype (expected float32)");
    has_scores_ = true;
  }
  // A read of the last token catches a file cut short inside the token data. Still under the
  // lock: the handles this constructor opened close when it returns, and no HDF5 call may
  // overlap another thread's (a loader thread reading another dataset).
  if (info_.num_tokens > 0) {
    std::int32_t last = 0;
    read_unlocked(info_.num_tokens - 1, 1, &last);
  }
}

TokenDataset::~TokenDataset() {
  if (!h_) return;
  Lock lock;
  h_.reset();
}
TokenDataset::TokenDataset(TokenDataset&&) noexcept = default;
TokenDataset& TokenDataset::operator=(TokenDataset&&) noexcept = default;

std::vector<float> TokenDataset::read_doc_scores() const {
  if (!has_scores_)
    throw make_error(path_, ": no /doc_scores (prepare it with --quality-model to score documents)");
  Lock lock;
  Id d(check(H5Dopen2(h_->file.get(), "doc_scores", H5P_DEFAULT), path_, "doc_scores"), H5Dclose);
  std::vector<float> out(info_.num_documents);
  if (!out.empty() && H5Dread(d.get(), H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out.data()) < 0) {
    const std::string detail = hdf5_error_text();
    throw make_error(path_, ": cannot read /doc_scores (", detail, ")");
  }
  return out;
}

void TokenDataset::read(std::uint64_t start, std::uint64_t count, std::int32_t* out) const {
  if (count == 0) return;
  Lock lock;
  read_unlocked(start, count, out);
}

void TokenDataset::read_unlocked(std::uint64_t start, std::uint64_t count, std::int32_t* out) const {
  STRATA_CHECK(start + count <= info_.num_tokens, path_, ": read of tokens [", start, ", ", start + count,
               ") is past the end (", info_.num_tokens, " tokens)");
  Id file_space(H5Dget_space(h_->tokens.get()), H5Sclose);
  const hsize_t off = start, n = count;
  H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &off, nullptr, &n, nullptr);
  Id mem_space(H5Screate_simple(1, &n, nullptr), H5Sclose);
  herr_t rc;
  if (info_.token_bytes == 2) {
    // Read the narrow type and widen here: cheaper than HDF5's generic conversion path.
    narrow_.resize(count);
    rc = H5Dread(h_->tokens.get(), H5T_NATIVE_UINT16, mem_space.get(), file_space.get(), H5P_DEFAULT,
                 narrow_.data());
    for (std::uint64_t i = 0; i < count; ++i) out[i] = narrow_[i];
  } else {
    rc = H5Dread(h_->tokens.get(), H5T_NATIVE_INT32, mem_space.get(), file_space.get(), H5P_DEFAULT, out);
  }
  if (rc < 0) {
    const std::string detail = hdf5_error_text();
    throw make_error(path_, ": cannot read tokens [", start, ", ", start + count, ") (", detail,
                     "); the file may be truncated");
  }
}

std::string Hash128::hex() const {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(hi),
                static_cast<unsigned long long>(lo));
  return buf;
}

std::string content_digest(const TokenDataset& ds) {
  Hasher128 h(0x5354524154414453ull);
  std::vector<std::int32_t> buf;
  const std::uint64_t step = 1 << 20;
  for (std::uint64_t start = 0; start < ds.num_tokens(); start += step) {
    const std::uint64_t n = std::min(step, ds.num_tokens() - start);
    buf.resize(n);
    ds.read(start, n, buf.data());
    h.update(buf.data(), n * sizeof(std::int32_t));
  }
  h.update(ds.doc_offsets().data(), ds.doc_offsets().size() * sizeof(std::uint64_t));
  return h.finish().hex();
}

}  // namespace strata::data

// safetensors writer (safetensors.hpp has the file layout).
#include "strata/ckpt/safetensors.hpp"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "strata/core/error.hpp"

namespace strata::ckpt {

namespace fs = std::filesystem;

const char* st_dtype_name(StDtype d) { return d == StDtype::bf16 ? "BF16" : "F32"; }
int st_dtype_bytes(StDtype d) { return d == StDtype::bf16 ? 2 : 4; }

std::uint16_t fp32_to_bf16(float x) {
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  // NaN: truncating could clear every mantissa bit left and make it inf; keep the sign and
  // set the quiet bit instead.
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
  // Round to nearest even: add half an ulp of bf16 (0x7FFF) plus the lsb of the result, so
  // an exact tie rounds up only when that lsb is odd. A carry into the exponent is the
  // correct rounding (up to inf past the largest finite value).
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

float bf16_to_fp32(std::uint16_t b) {
  const std::uint32_t u = std::uint32_t(b) << 16;
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

std::uint64_t parse_byte_size(const std::string& text) {
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  std::string unit = text.substr(i);
  for (char& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  double value = 0;
  try {
    std::size_t used = 0;
    value = std::stod(text.substr(0, i), &used);
    if (used != i) throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw make_error("size '", text,
                     "': expected a number with an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB)");
  }
  static const std::pair<const char*, double> units[] = {
      {"", 1},      {"B", 1},        {"KB", 1e3},        {"MB", 1e6},           {"GB", 1e9},
      {"TB", 1e12}, {"KIB", 1024.0}, {"MIB", 1048576.0}, {"GIB", 1073741824.0}, {"TIB", 1099511627776.0}};
  for (const auto& [name, mult] : units)
    if (unit == name) {
      if (value * mult < 1) throw make_error("size '", text, "': must be at least 1 byte");
      return static_cast<std::uint64_t>(value * mult);
    }
  throw make_error("size '", text, "': unknown unit '", text.substr(i),
                   "' (B, KB, MB, GB, TB, KiB, MiB, GiB)");
}

namespace {

std::uint64_t tensor_bytes(const StTensor& t, StDtype dtype) {
  return std::uint64_t(shape_numel(t.shape)) * std::uint64_t(st_dtype_bytes(dtype));
}

void put_le64(unsigned char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

// One file: the header for tensors [first, last), then their data.
void write_file(const fs::path& path, const std::vector<StTensor>& tensors, std::size_t first,
                std::size_t last, StDtype dtype, const StProducer& produce) {
  nlohmann::ordered_json header;
  header["__metadata__"] = {{"format", "pt"}};
  std::uint64_t offset = 0;
  for (std::size_t i = first; i < last; ++i) {
    const std::uint64_t n = tensor_bytes(tensors[i], dtype);
    header[tensors[i].name] = {
        {"dtype", st_dtype_name(dtype)}, {"shape", tensors[i].shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // the data then starts 8-byte aligned
  unsigned char len[8];
  put_le64(len, text.size());

  const fs::path tmp = path.string() + ".tmp";
  // A failure part-way (a producer's error, a full disk) leaves no partial file behind.
  struct RemoveUnlessDone {
    const fs::path& p;
    bool done = false;
    ~RemoveUnlessDone() {
      std::error_code ec;
      if (!done) fs::remove(p, ec);
    }
  } cleanup{tmp};
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) throw make_error("safetensors '", path.string(), "': cannot open for writing");
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), std::streamsize(text.size()));
  std::vector<unsigned char> bytes;
  for (std::size_t i = first; i < last; ++i) {
    const StTensor& t = tensors[i];
    const std::vector<float> v = produce(t);
    const std::size_t n = std::size_t(shape_numel(t.shape));
    if (v.size() != n)
      throw make_error("safetensors '", path.string(), "': tensor ", t.name, " has ", v.size(),
                       " values, its shape ", shape_string(t.shape), " needs ", n);
    bytes.resize(n * std::size_t(st_dtype_bytes(dtype)));
    if (dtype == StDtype::f32) {
      for (std::size_t k = 0; k < n; ++k) {
        std::uint32_t u;
        std::memcpy(&u, &v[k], 4);
        for (int b = 0; b < 4; ++b) bytes[4 * k + std::size_t(b)] = static_cast<unsigned char>(u >> (8 * b));
      }
    } else {
      for (std::size_t k = 0; k < n; ++k) {
        const std::uint16_t h = fp32_to_bf16(v[k]);
        bytes[2 * k] = static_cast<unsigned char>(h);
        bytes[2 * k + 1] = static_cast<unsigned char>(h >> 8);
      }
    }
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  out.close();
  if (!out) throw make_error("safetensors '", path.string(), "': write failed (disk full?)");
  fs::rename(tmp, path);
  cleanup.done = true;
}

}  // namespace

StWriteResult write_safetensors(const std::string& dir, const std::vector<StTensor>& tensors, StDtype dtype,
                                std::uint64_t max_shard_bytes, const StProducer& produce) {
  STRATA_CHECK(max_shard_bytes > 0, "safetensors: max shard size must be positive");
  std::set<std::string> names;
  for (const StTensor& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      throw make_error("safetensors: invalid tensor name '", t.name, "'");
    if (!names.insert(t.name).second) throw make_error("safetensors: tensor ", t.name, " listed twice");
    for (std::int64_t d : t.shape)
      if (d < 0)
        throw make_error("safetensors: tensor ", t.name, " has a negative dimension in ",
                         shape_string(t.shape));
  }
  fs::create_directories(dir);

  // Greedy split in order: a new shard when the next tensor would take this one past the limit.
  std::vector<std::size_t> starts{0};
  std::uint64_t in_shard = 0, total = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const std::uint64_t n = tensor_bytes(tensors[i], dtype);
    if (in_shard > 0 && in_shard + n > max_shard_bytes) {
      starts.push_back(i);
      in_shard = 0;
    }
    in_shard += n;
    total += n;
  }
  starts.push_back(tensors.size());

  StWriteResult result;
  result.total_bytes = total;
  const std::size_t num_shards = starts.size() - 1;
  result.sharded = num_shards > 1;
  if (!result.sharded) {
    write_file(fs::path(dir) / "model.safetensors", tensors, 0, tensors.size(), dtype, produce);
    result.files.push_back("model.safetensors");
    std::error_code ec;
    fs::remove(fs::path(dir) / "model.safetensors.index.json", ec);  // a stale index would win over the file
    return result;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (std::size_t s = 0; s < num_shards; ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, num_shards);
    write_file(fs::path(dir) / name, tensors, starts[s], starts[s + 1], dtype, produce);
    result.files.push_back(name);
    for (std::size_t i = starts[s]; i < starts[s + 1]; ++i) weight_map[tensors[i].name] = name;
  }
  const nlohmann::ordered_json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  const fs::path index_path = fs::path(dir) / "model.safetensors.index.json";
  {
    std::ofstream out(index_path.string() + ".tmp", std::ios::trunc);
    out << index.dump(2) << '\n';
    if (!out) throw make_error("safetensors index '", index_path.string(), "': write failed");
  }
  fs::rename(index_path.string() + ".tmp", index_path);
  std::error_code ec;
  fs::remove(fs::path(dir) / "model.safetensors", ec);  // from an earlier unsharded export
  return result;
}

}  // namespace strata::ckpt

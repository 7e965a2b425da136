// The safetensors writer: fp32 -> bf16 rounding (ties to even, NaN, inf, overflow), the
// file layout (header length, 8-byte alignment, dtypes, contiguous offsets, values) and the
// split into shards with an index.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "strata/ckpt/safetensors.hpp"
#include "strata/core/error.hpp"

using namespace strata;
using namespace strata::ckpt;
namespace fs = std::filesystem;

namespace {

float from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A parsed safetensors file: the header and the data bytes after it.
struct Parsed {
  std::uint64_t header_len = 0;
  nlohmann::json header;
  std::string data;
};

Parsed parse(const fs::path& p) {
  const std::string bytes = read_all(p);
  Parsed r;
  EXPECT_GE(bytes.size(), 8u);
  for (int i = 0; i < 8; ++i)
    r.header_len |= std::uint64_t(static_cast<unsigned char>(bytes[std::size_t(i)])) << (8 * i);
  r.header = nlohmann::json::parse(bytes.substr(8, r.header_len));
  r.data = bytes.substr(8 + r.header_len);
  return r;
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("strata_st_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  return d;
}

StProducer iota_producer(float scale) {
  return [scale](const StTensor& t) {
    std::vector<float> v(std::size_t(shape_numel(t.shape)));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = scale * float(i) + float(t.name.size());
    return v;
  };
}

}  // namespace

TEST(Bf16, RoundsToNearestWithTiesToEven) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3F80);
  // 1 + 2^-8 lies exactly between bf16 1.0 (0x3F80, even) and 1 + 2^-7 (0x3F81): to even.
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F808000u)), 0x3F80);
  // 0x3F818000 lies between 0x3F81 (odd) and 0x3F82 (even): up to even.
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F818000u)), 0x3F82);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F808001u)), 0x3F81);  // just above the tie: up
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3F807FFFu)), 0x3F80);  // just below: down
  EXPECT_EQ(fp32_to_bf16(from_bits(0xBF808000u)), 0xBF80);  // negative tie: to even
  EXPECT_EQ(fp32_to_bf16(from_bits(0xBF818000u)), 0xBF82);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x3FFFFFFFu)), 0x4000);  // carry into the exponent
  EXPECT_EQ(fp32_to_bf16(-0.0f), 0x8000);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x00008000u)), 0x0000);  // subnormal tie to even (zero)
  EXPECT_EQ(fp32_to_bf16(from_bits(0x00018000u)), 0x0002);  // subnormal tie up to even
}

TEST(Bf16, KeepsInfAndNanAndOverflowsToInf) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(fp32_to_bf16(inf), 0x7F80);
  EXPECT_EQ(fp32_to_bf16(-inf), 0xFF80);
  // Past the largest bf16 (0x7F7F...) the nearest is infinity, as in IEEE rounding.
  EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_EQ(fp32_to_bf16(-std::numeric_limits<float>::max()), 0xFF80);
  EXPECT_EQ(fp32_to_bf16(from_bits(0x7F7F7FFFu)), 0x7F7F);  // largest finite bf16 stays finite
  // A NaN whose payload sits only in the low 16 bits must not become inf.
  for (std::uint32_t nan : {0x7FC00000u, 0x7F800001u, 0xFF800001u, 0x7FFFFFFFu}) {
    const std::uint16_t b = fp32_to_bf16(from_bits(nan));
    EXPECT_EQ(b & 0x7F80, 0x7F80) << std::hex << nan;
    EXPECT_NE(b & 0x007F, 0) << std::hex << nan;
    EXPECT_EQ(b & 0x8000, (nan >> 16) & 0x8000) << "sign kept for " << std::hex << nan;
    EXPECT_TRUE(std::isnan(bf16_to_fp32(b)));
  }
}

TEST(Bf16, EveryBf16ValueRoundTripsAndRoundingIsNearest) {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const float f = bf16_to_fp32(std::uint16_t(b));
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_bf16(f), b);
  }
  // Against a reference in double: the result is the nearer neighbour (ties: even mantissa).
  std::uint32_t u = 0x3E000000u;  // 0.125, then a sweep of fp32 bit patterns
  for (int i = 0; i < 200000; ++i, u += 0x1357u) {
    const float x = from_bits(u);
    if (!std::isfinite(x)) break;
    const std::uint16_t lo = std::uint16_t(u >> 16), hi = std::uint16_t(lo + 1);
    const double dlo = std::fabs(double(x) - bf16_to_fp32(lo)), dhi = std::fabs(double(x) - bf16_to_fp32(hi));
    const std::uint16_t want = dlo < dhi ? lo : dhi < dlo ? hi : ((lo & 1) ? hi : lo);
    ASSERT_EQ(fp32_to_bf16(x), want) << std::hex << u;
  }
}

TEST(Safetensors, HeaderLayoutOffsetsAndF32Values) {
  const fs::path dir = fresh_dir("f32");
  const std::vector<StTensor> ts{{"a.weight", {3, 5}}, {"b", {7}}, {"scalar_like", {1}}};
  const StWriteResult r = write_safetensors(dir.string(), ts, StDtype::f32, 1ull << 30, iota_producer(0.5f));
  ASSERT_EQ(r.files, std::vector<std::string>{"model.safetensors"});
  EXPECT_FALSE(r.sharded);
  EXPECT_EQ(r.total_bytes, (15u + 7u + 1u) * 4u);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.index.json"));
  const Parsed p = parse(dir / "model.safetensors");
  EXPECT_EQ(p.header_len % 8, 0u);  // the data starts 8-byte aligned
  EXPECT_EQ(p.header["__metadata__"]["format"], "pt");
  EXPECT_EQ(p.data.size(), r.total_bytes);
  std::uint64_t expect_begin = 0;
  for (const StTensor& t : ts) {  // written in the order given, back to back
    const auto& h = p.header.at(t.name);
    EXPECT_EQ(h["dtype"], "F32");
    EXPECT_EQ(h["shape"].get<std::vector<std::int64_t>>(), t.shape);
    const auto off = h["data_offsets"].get<std::vector<std::uint64_t>>();
    EXPECT_EQ(off[0], expect_begin);
    EXPECT_EQ(off[1] - off[0], std::uint64_t(shape_numel(t.shape)) * 4);
    expect_begin = off[1];
    const std::vector<float> want = iota_producer(0.5f)(t);
    for (std::size_t i = 0; i < want.size(); ++i) {
      float got;
      std::memcpy(&got, p.data.data() + off[0] + 4 * i, 4);  // little-endian host
      EXPECT_EQ(got, want[i]) << t.name << "[" << i << "]";
    }
  }
  EXPECT_EQ(expect_begin, p.data.size());
  fs::remove_all(dir);
}

TEST(Safetensors, Bf16ValuesAreRoundedFp32) {
  const fs::path dir = fresh_dir("bf16");
  const std::vector<StTensor> ts{{"w", {4, 3}}};
  const StProducer prod = [](const StTensor&) {
    return std::vector<float>{1.0f,
                              from_bits(0x3F808000u),
                              from_bits(0x3F818000u),
                              -3.14159f,
                              1e-30f,
                              65504.0f,
                              std::numeric_limits<float>::infinity(),
                              0.0f,
                              -0.0f,
                              1.00390625f,
                              123456.789f,
                              -1e20f};
  };
  write_safetensors(dir.string(), ts, StDtype::bf16, 1ull << 30, prod);
  const Parsed p = parse(dir / "model.safetensors");
  EXPECT_EQ(p.header["w"]["dtype"], "BF16");
  EXPECT_EQ(p.header["w"]["data_offsets"][1], 24);
  const std::vector<float> v = prod(ts[0]);
  ASSERT_EQ(p.data.size(), 24u);
  for (std::size_t i = 0; i < v.size(); ++i) {
    const std::uint16_t got = std::uint16_t(static_cast<unsigned char>(p.data[2 * i]) |
                                            (static_cast<unsigned char>(p.data[2 * i + 1]) << 8));
    EXPECT_EQ(got, fp32_to_bf16(v[i])) << i;
  }
  fs::remove_all(dir);
}

TEST(Safetensors, ShardsInOrderWithIndexAboveTheLimit) {
  const fs::path dir = fresh_dir("shards");
  fs::create_directories(dir);
  std::ofstream(dir / "model.safetensors") << "stale";  // an earlier unsharded export is removed
  // 400 + 400 fit a 1000-byte shard, the third 400 starts a new one; the 2000-byte tensor is
  // larger than the limit and gets a shard of its own.
  const std::vector<StTensor> ts{{"t0", {100}}, {"t1", {10, 10}}, {"t2", {100}}, {"big", {500}}, {"t4", {1}}};
  const StWriteResult r = write_safetensors(dir.string(), ts, StDtype::f32, 1000, iota_producer(1.0f));
  ASSERT_TRUE(r.sharded);
  const std::vector<std::string> want{"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                                      "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors"};
  EXPECT_EQ(r.files, want);
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));
  const auto index = nlohmann::json::parse(read_all(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], (100 + 100 + 100 + 500 + 1) * 4);
  const std::map<std::string, std::string> where{
      {"t0", want[0]}, {"t1", want[0]}, {"t2", want[1]}, {"big", want[2]}, {"t4", want[3]}};
  EXPECT_EQ(index["weight_map"].size(), where.size());
  for (const auto& [name, file] : where) {
    EXPECT_EQ(index["weight_map"][name], file) << name;
    const Parsed p = parse(dir / file);
    ASSERT_TRUE(p.header.contains(name)) << name << " in " << file;
    const auto off = p.header[name]["data_offsets"].get<std::vector<std::uint64_t>>();
    EXPECT_LE(off[1], p.data.size());
  }
  for (const auto& f : want) {
    const Parsed p = parse(dir / f);
    std::uint64_t sum = 0;
    for (auto it = p.header.begin(); it != p.header.end(); ++it)
      if (it.key() != "__metadata__")
        sum += it.value()["data_offsets"][1].get<std::uint64_t>() -
               it.value()["data_offsets"][0].get<std::uint64_t>();
    EXPECT_EQ(sum, p.data.size()) << f;  // every shard's data is exactly its tensors
  }
  fs::remove_all(dir);
}

TEST(Safetensors, RejectsWrongValueCountsAndDuplicateNames) {
  const fs::path dir = fresh_dir("errors");
  const StProducer short_by_one = [](const StTensor& t) {
    return std::vector<float>(std::size_t(shape_numel(t.shape)) - 1);
  };
  try {
    write_safetensors(dir.string(), {{"x", {2, 2}}}, StDtype::f32, 1000, short_by_one);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor x has 3 values"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(dir / "model.safetensors"));  // no half-written file, final or temporary
  EXPECT_FALSE(fs::exists(dir / "model.safetensors.tmp"));
  EXPECT_THROW(
      write_safetensors(dir.string(), {{"x", {1}}, {"x", {1}}}, StDtype::f32, 1000, iota_producer(1)), Error);
  EXPECT_THROW(write_safetensors(dir.string(), {{"__metadata__", {1}}}, StDtype::f32, 1000, iota_producer(1)),
               Error);
  fs::remove_all(dir);
}

TEST(Safetensors, ParsesByteSizes) {
  EXPECT_EQ(parse_byte_size("5GB"), 5'000'000'000ull);
  EXPECT_EQ(parse_byte_size("500MB"), 500'000'000ull);
  EXPECT_EQ(parse_byte_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_byte_size("1.5kb"), 1500ull);
  EXPECT_EQ(parse_byte_size("1234"), 1234ull);
  EXPECT_THROW(parse_byte_size("5XB"), Error);
  EXPECT_THROW(parse_byte_size("GB"), Error);
  EXPECT_THROW(parse_byte_size("0"), Error);
}

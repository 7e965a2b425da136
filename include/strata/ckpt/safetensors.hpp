// A safetensors writer (the format of Hugging Face's `safetensors` library):
//
//   [8 bytes: N, the header length, unsigned little-endian]
//   [N bytes: a JSON object, padded with spaces to a multiple of 8]
//   [the data: every tensor's bytes, row-major, little-endian, back to back]
//
// The header maps each tensor name to {"dtype": "F32"|"BF16", "shape": [...],
// "data_offsets": [begin, end)} (offsets into the data, contiguous, no gaps) and carries
// "__metadata__": {"format": "pt"}, which `transformers` expects. Tensors are streamed: the
// header is computed from names and shapes, then each tensor's values are produced, converted
// and written one at a time, so no more than one tensor is held in memory.
//
// Above `max_shard_bytes` of tensor data the tensors are split, in order, into
// model-0000i-of-0000n.safetensors plus model.safetensors.index.json ({"metadata":
// {"total_size": bytes}, "weight_map": {name: file}}), as `save_pretrained` does; a tensor
// larger than the limit gets a shard of its own.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "strata/core/tensor.hpp"

namespace strata::ckpt {

enum class StDtype { f32, bf16 };
const char* st_dtype_name(StDtype d);  // "F32", "BF16"
int st_dtype_bytes(StDtype d);

// fp32 -> bf16, round to nearest, ties to even (the upper 16 bits after adding
// 0x7FFF + lsb); NaN stays NaN (quiet, sign kept), ±inf stays ±inf, values past the largest
// bf16 round to inf as IEEE rounding does.
std::uint16_t fp32_to_bf16(float x);
float bf16_to_fp32(std::uint16_t b);

struct StTensor {
  std::string name;
  Shape shape;
};

// Produces the fp32 values of one tensor (numel(shape) of them, row-major).
using StProducer = std::function<std::vector<float>(const StTensor&)>;

struct StWriteResult {
  std::vector<std::string> files;  // file names inside the folder, in order
  std::uint64_t total_bytes = 0;   // tensor data bytes over all files
  bool sharded = false;            // files + model.safetensors.index.json
};

// Writes `tensors` (names unique) into `dir` (created when missing). Each file is written
// as <name>.tmp and renamed when complete. Throws strata::Error naming the file or tensor.
StWriteResult write_safetensors(const std::string& dir, const std::vector<StTensor>& tensors, StDtype dtype,
                                std::uint64_t max_shard_bytes, const StProducer& produce);

// "5GB", "500MB", "10KB", "1234" (bytes); decimal units as Hugging Face's max_shard_size,
// and "GiB"/"MiB"/"KiB" binary ones. Throws naming the text.
std::uint64_t parse_byte_size(const std::string& text);

}  // namespace strata::ckpt

// safetensors: the Hugging Face tensor container (https://github.com/huggingface/safetensors).
//
// File layout (all integers little-endian):
//
//   offset 0      uint64  N            length of the JSON header in bytes
//   offset 8      N bytes JSON header  UTF-8, one object; writers pad it with trailing spaces
//   offset 8 + N  data buffer          the raw tensor bytes, row-major, little-endian, no gaps
//
// The header maps each tensor name to
//   {"dtype": "F32" | "F16" | "BF16" | "I32" | ..., "shape": [d0, d1, ...], "data_offsets": [begin, end]}
// where [begin, end) is relative to the start of the data buffer (not of the file), and may carry
// one extra key "__metadata__": {string: string} with free-form text (Hugging Face writes
// {"format": "pt"} and transformers refuses files without it).
//
// What the reader enforces (the file is hostile until proven otherwise; every error names the
// file and, where there is one, the tensor):
//  - 8 <= file size; N <= 100 MiB (kResource) and 8 + N <= file size;
//  - the header is valid JSON, an object, with no duplicate keys at any level;
//  - each entry has a known dtype (else kUnsupported), a shape of non-negative integers whose
//    element count and byte size do not overflow, and data_offsets [begin, end] with
//    begin <= end <= buffer size and end - begin == numel * dtype size;
//  - tensors do not overlap and together cover the buffer exactly: no holes, no trailing bytes
//    (as the reference Rust implementation requires).
//
// Tensors are not aligned in general (N need not be a multiple of 8 in foreign files), so
// consumers read values with memcpy, never through a cast pointer.
//
// The writer pads the header with spaces so the buffer starts at a multiple of 8, and lays tensors
// out by descending element size, stably (the caller's order otherwise), so every tensor starts at
// a multiple of its element size. Output goes through AtomicFile.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "io/tensor.h"

namespace lowbit {

// Header size cap: real headers are a few hundred KiB even for thousands of tensors.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100ull << 20;

// The parsed contents of one safetensors file. The tensors' spans point into the bytes that were
// parsed; the caller keeps them alive (read_safetensors does so through the TensorSet).
struct SafetensorsContents {
  std::vector<RawTensor> tensors;  // in data-buffer order
  std::map<std::string, std::string> metadata;
};

// Parses and validates a whole file image. `what` (usually the path) prefixes every error.
Result<SafetensorsContents> parse_safetensors(std::span<const uint8_t> file_bytes, const std::string& what);

// Maps `path` read-only and returns its tensors (pointing into the map, which the set keeps
// alive) with __metadata__ in TensorSet::metadata().
Result<TensorSet> read_safetensors(const std::string& path);

// Writes `tensors` and `metadata` to `path` atomically. Fails (kInvalidArgument) on a duplicate or
// reserved name ("__metadata__"), a negative dimension, or a data span whose size does not match
// the shape and dtype.
Status write_safetensors(const std::string& path, const std::vector<const RawTensor*>& tensors,
                         const std::map<std::string, std::string>& metadata = {});
// The exact layout write_safetensors produces for these tensors, computed from names, dtypes and
// shapes only (the data spans are not read), for writers that produce tensors one at a time and
// write each at its offset (export/streaming_writer.h).
struct SafetensorsLayout {
  std::string header;             // the file's first bytes: 8-byte length, JSON, space padding
  std::vector<uint64_t> offsets;  // absolute file offset of tensors[i] (caller's order)
  std::vector<size_t> order;      // indices of the tensors in file order
  uint64_t file_bytes = 0;
};
Result<SafetensorsLayout> plan_safetensors_layout(const std::string& path, const std::vector<const RawTensor*>& tensors,
                                                  const std::map<std::string, std::string>& metadata = {});
// Writes every tensor of the set, in the set's order, with the set's metadata.
Status write_safetensors(const std::string& path, const TensorSet& tensors);

}  // namespace lowbit

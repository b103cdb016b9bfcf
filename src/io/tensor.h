// Raw tensors as containers store them: a name, an element type, a shape and a byte span
// (usually inside a read-only mmap). io/ only moves and validates bytes; converting values
// (fp16 -> fp32, dequantizing) happens above it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"
#include "io/mapped_file.h"

namespace lowbit {

enum class DType : uint8_t { kF32, kF16, kBF16, kF64, kI8, kU8, kI16, kI32, kI64, kU16, kU32, kU64, kBool, kF8E4M3 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // safetensors spelling: "F32", "F16", "BF16", "I32", ...
Result<DType> dtype_from_name(const std::string& name);

struct RawTensor {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;   // outermost first; a linear weight is [out_features, in_features]
  std::span<const uint8_t> data;  // exactly numel() * dtype_size(dtype) bytes
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

std::string shape_string(const std::vector<int64_t>& shape);  // "[512, 64]"

// Tensors from one checkpoint, possibly spread over several mapped files (sharded safetensors).
// Keeps the files mapped for as long as the set lives.
class TensorSet {
 public:
  void add_file(std::shared_ptr<MappedFile> f) { files_.push_back(std::move(f)); }
  // Adds a tensor whose bytes the set owns (generated or converted data).
  Status add_owned(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
  // Fails (kFormat) on a duplicate name.
  Status add(RawTensor t);
  const RawTensor* find(const std::string& name) const;
  // Drops the resident pages of a tensor that lies in one of the set's mapped files (see
  // MappedFile::release); does nothing for owned or foreign bytes.
  void release_pages(std::span<const uint8_t> bytes) const {
    for (const auto& f : files_)
      if (f->contains(bytes)) return f->release(bytes);
  }
  // A copy without the named tensors (sharing the same files and owned buffers).
  TensorSet without(const std::vector<std::string>& names) const;
  const std::vector<RawTensor>& tensors() const { return tensors_; }
  // Free-form string metadata (safetensors __metadata__, selected GGUF keys).
  std::map<std::string, std::string>& metadata() { return metadata_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> owned_;
  std::vector<RawTensor> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace lowbit

// GGUF v3 container: reader and writer (llama.cpp's single-file checkpoint format).
//
// Layout (all integers little-endian; spec: ggml docs/gguf.md):
//
//   header       char[4]  magic "GGUF"
//                uint32   version (3; v1/v2 are rejected as unsupported)
//                uint64   tensor_count
//                uint64   kv_count
//   kv pairs     kv_count x { gguf_string key; uint32 value_type; value }
//                  gguf_string = uint64 length + that many bytes (UTF-8, no terminator)
//                  value_type: 0 u8, 1 i8, 2 u16, 3 i16, 4 u32, 5 i32, 6 f32, 7 bool (1 byte),
//                              8 string, 9 array, 10 u64, 11 i64, 12 f64
//                  array     = uint32 element_type + uint64 count + count items (not nested)
//   tensor infos tensor_count x { gguf_string name; uint32 n_dims; uint64 dims[n_dims];
//                                 uint32 ggml_type; uint64 offset }
//                  dims are in ggml order, innermost (contiguous) first: a PyTorch [out, in]
//                  weight is stored as dims {in, out}. This API reverses them to outermost-first.
//                  offset is relative to the start of the data section and a multiple of the
//                  alignment.
//   padding      zeros up to a multiple of `alignment` (general.alignment, u32, default 32)
//   data section tensor bytes, each tensor starting at its aligned offset
//
// The reader treats the file as hostile: every count, length, dimension and offset is checked
// against the bytes that remain and against overflow before anything is allocated, tensors must
// lie inside the data section without overlapping, and each problem is one Status naming the file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "base/status.h"
#include "io/mapped_file.h"
#include "io/tensor.h"

namespace lowbit::gguf {

inline constexpr uint32_t kVersion = 3;
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr const char* kAlignmentKey = "general.alignment";
// llama.cpp stores tensor names in a 64-byte buffer with a terminator (GGML_MAX_NAME).
inline constexpr size_t kMaxTensorNameBytes = 63;
inline constexpr int kMaxDims = 4;  // GGML_MAX_DIMS

// ---------------------------------------------------------------------------------------------
// Metadata values

enum class ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
const char* value_type_name(ValueType t);  // "u32", "string", ...

// One metadata value. GGUF's integer and float widths collapse to three C++ representations
// (unsigned, signed, double) while `type` keeps the on-disk type, so a file read and written
// again is byte-identical and getters can accept any integer width.
class Value {
 public:
  using Storage = std::variant<uint64_t, int64_t, double, bool, std::string,  // scalars
                               std::vector<uint64_t>, std::vector<int64_t>, std::vector<double>,
                               std::vector<bool>, std::vector<std::string>>;  // arrays
  Value() : Value(ValueType::kU8, ValueType::kU8, uint64_t{0}) {}

  static Value u8(uint8_t v) { return Value(ValueType::kU8, ValueType::kU8, uint64_t{v}); }
  static Value u32(uint32_t v) { return Value(ValueType::kU32, ValueType::kU8, uint64_t{v}); }
  static Value u64(uint64_t v) { return Value(ValueType::kU64, ValueType::kU8, v); }
  static Value i32(int32_t v) { return Value(ValueType::kI32, ValueType::kU8, int64_t{v}); }
  static Value i64(int64_t v) { return Value(ValueType::kI64, ValueType::kU8, v); }
  static Value f32(float v) { return Value(ValueType::kF32, ValueType::kU8, double{v}); }
  static Value f64(double v) { return Value(ValueType::kF64, ValueType::kU8, v); }
  static Value boolean(bool v) { return Value(ValueType::kBool, ValueType::kU8, v); }
  static Value string(std::string v) { return Value(ValueType::kString, ValueType::kU8, std::move(v)); }
  static Value strings(std::vector<std::string> v) {
    return Value(ValueType::kArray, ValueType::kString, std::move(v));
  }
  static Value f32s(const std::vector<float>& v) {
    return Value(ValueType::kArray, ValueType::kF32, std::vector<double>(v.begin(), v.end()));
  }
  static Value i32s(const std::vector<int32_t>& v) {
    return Value(ValueType::kArray, ValueType::kI32, std::vector<int64_t>(v.begin(), v.end()));
  }
  // A scalar of any type, stored in the representation for that type (uint64_t for unsigned,
  // int64_t for signed, double for floats, bool, std::string); the writer checks the range.
  static Value scalar(ValueType type, Storage v) { return Value(type, ValueType::kU8, std::move(v)); }
  // Any element type with the matching representation (unsigned/signed/double/bool/string
  // vector); the caller guarantees the values fit `element_type` (checked by the writer).
  static Value array(ValueType element_type, Storage items) {
    return Value(ValueType::kArray, element_type, std::move(items));
  }

  ValueType type() const { return type_; }
  ValueType element_type() const { return element_type_; }  // meaningful for kArray only
  const Storage& storage() const { return data_; }
  bool is_array() const { return type_ == ValueType::kArray; }
  // Number of items of an array (1 for a scalar).
  size_t size() const;
  // "u32", "array[string]" ...
  std::string type_string() const;

 private:
  Value(ValueType type, ValueType element_type, Storage data)
      : type_(type), element_type_(element_type), data_(std::move(data)) {}
  ValueType type_;
  ValueType element_type_;
  Storage data_;
};

// The kv pairs of a file in file order, with typed getters. Getters fail with kNotFound for a
// missing key and kFormat for a value of the wrong type or out of range; messages name `source`.
class Metadata {
 public:
  explicit Metadata(std::string source = "<gguf>") : source_(std::move(source)) {}

  // Adds or replaces (in place, keeping the original position) a key.
  void set(const std::string& key, Value value);
  // Adds a key that must not exist yet (the reader rejects duplicate keys with this).
  Status add(std::string key, Value value);
  bool erase(const std::string& key);
  const Value* find(const std::string& key) const;
  bool contains(const std::string& key) const { return find(key) != nullptr; }
  const std::vector<std::pair<std::string, Value>>& entries() const { return entries_; }
  const std::string& source() const { return source_; }

  // Scalars. Integers of any width/sign are accepted when the value fits the result.
  Result<uint64_t> get_uint(const std::string& key) const;
  Result<int64_t> get_int(const std::string& key) const;
  Result<uint32_t> get_u32(const std::string& key) const;
  Result<double> get_float(const std::string& key) const;  // f32 or f64
  Result<bool> get_bool(const std::string& key) const;
  Result<std::string> get_string(const std::string& key) const;
  // Arrays.
  Result<std::vector<std::string>> get_strings(const std::string& key) const;
  Result<std::vector<double>> get_floats(const std::string& key) const;  // f32/f64 arrays
  Result<std::vector<int64_t>> get_ints(const std::string& key) const;   // integer arrays

 private:
  Result<const Value*> lookup(const std::string& key) const;
  Status wrong_type(const std::string& key, const Value& v, const char* expected) const;
  std::string source_;
  std::vector<std::pair<std::string, Value>> entries_;
  std::map<std::string, size_t> index_;
};

// ---------------------------------------------------------------------------------------------
// Tensor element types (ggml_type numbers)

enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kBF16 = 30 };

// Storage geometry of the ggml types lowbit knows: a tensor's innermost dimension is a whole
// number of blocks of `block_elems` values taking `block_bytes` bytes.
struct GgmlTypeInfo {
  GgmlType type;
  const char* name;
  int64_t block_elems;
  int64_t block_bytes;
};
// nullptr for a type number lowbit does not know.
const GgmlTypeInfo* ggml_type_info(uint32_t type);
// F32 <-> 0, F16 <-> 1, BF16 <-> 30; other dtypes/ggml types have no plain-dtype equivalent.
Result<GgmlType> ggml_type_from_dtype(DType dtype);
Result<DType> dtype_from_ggml_type(uint32_t type);

struct TensorInfo {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<int64_t> shape;  // outermost first (the file's dims reversed)
  uint64_t offset = 0;         // from the start of the data section
  uint64_t size_bytes = 0;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// ---------------------------------------------------------------------------------------------
// Reader

class GgufFile {
 public:
  // Maps and parses `path`; fails with kFormat/kUnsupported/kIo naming the file.
  static Result<GgufFile> open(const std::string& path);
  // Parses an already mapped file.
  static Result<GgufFile> parse(std::shared_ptr<MappedFile> file);

  const std::string& path() const { return file_->path(); }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute file offset of the data section
  const Metadata& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensor_infos() const { return infos_; }
  const TensorInfo* find_tensor(const std::string& name) const;
  // The stored bytes of a tensor (any known ggml type), inside the mapping.
  std::span<const uint8_t> tensor_bytes(const TensorInfo& info) const;
  // The tensor as a RawTensor (F32/F16/BF16 only; others are kUnsupported naming the tensor and
  // its ggml type). The span stays valid while this GgufFile or its MappedFile lives.
  Result<RawTensor> raw_tensor(const TensorInfo& info) const;
  // Every tensor as a RawTensor under its GGUF name, keeping the mapping alive in the set.
  Result<TensorSet> raw_tensors() const;
  const std::shared_ptr<MappedFile>& file() const { return file_; }

 private:
  GgufFile() = default;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  Metadata metadata_;
  std::vector<TensorInfo> infos_;
  std::map<std::string, size_t> index_;
};

// ---------------------------------------------------------------------------------------------
// Writer

// Collects metadata and tensors, then writes a GGUF v3 file atomically. Tensors are written in
// the order added, each padded to the alignment (general.alignment when set, else 32).
class GgufWriter {
 public:
  Metadata& metadata() { return metadata_; }
  const Metadata& metadata() const { return metadata_; }

  // Adds a tensor whose bytes the caller keeps alive until write() returns. `shape` is
  // outermost first. Checks the name (non-empty, unique, <= 63 bytes), the rank (1..4) and that
  // the byte count matches the type's geometry; errors are kInvalidArgument.
  Status add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape,
                    std::span<const uint8_t> data);
  // Same, with bytes the writer owns.
  Status add_tensor_owned(std::string name, GgmlType type, std::vector<int64_t> shape,
                          std::vector<uint8_t> data);
  // A plain F32/F16/BF16 RawTensor (its span must stay alive until write()).
  Status add_tensor(const RawTensor& tensor);

  // Writes the file through AtomicFile. Fails with kInvalidArgument on a metadata value that
  // cannot be stored (an integer out of its type's range, a bad general.alignment).
  Status write(const std::string& path) const;

 private:
  struct Pending {
    TensorInfo info;
    std::span<const uint8_t> data;
  };
  Metadata metadata_{"<gguf writer>"};
  std::vector<Pending> tensors_;
  std::map<std::string, size_t> index_;
  std::vector<std::shared_ptr<std::vector<uint8_t>>> owned_;
};

}  // namespace lowbit::gguf

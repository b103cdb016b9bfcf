// GGUF reader, plus the metadata value types shared with the writer (layout: io/gguf.h).
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "io/byte_reader.h"
#include "io/gguf.h"

namespace lowbit::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF is read by memcpy of little-endian values");

// ---------------------------------------------------------------------------------------------
// Value types and metadata

const char* value_type_name(ValueType t) {
  switch (t) {
    case ValueType::kU8: return "u8";
    case ValueType::kI8: return "i8";
    case ValueType::kU16: return "u16";
    case ValueType::kI16: return "i16";
    case ValueType::kU32: return "u32";
    case ValueType::kI32: return "i32";
    case ValueType::kF32: return "f32";
    case ValueType::kBool: return "bool";
    case ValueType::kString: return "string";
    case ValueType::kArray: return "array";
    case ValueType::kU64: return "u64";
    case ValueType::kI64: return "i64";
    case ValueType::kF64: return "f64";
  }
  return "?";
}

size_t Value::size() const {
  if (!is_array()) return 1;
  return std::visit(
      [](const auto& v) -> size_t {
        using T = std::decay_t<decltype(v)>;
        if constexpr (requires { v.size(); } && !std::is_same_v<T, std::string>) return v.size();
        return 1;
      },
      data_);
}

std::string Value::type_string() const {
  if (!is_array()) return value_type_name(type_);
  return fmt::format("array[{}]", value_type_name(element_type_));
}

void Metadata::set(const std::string& key, Value value) {
  auto it = index_.find(key);
  if (it != index_.end()) {
    entries_[it->second].second = std::move(value);
    return;
  }
  index_[key] = entries_.size();
  entries_.emplace_back(key, std::move(value));
}

Status Metadata::add(std::string key, Value value) {
  if (index_.count(key)) return error(ErrorCode::kFormat, "{}: key \"{}\" appears twice", source_, key);
  index_[key] = entries_.size();
  entries_.emplace_back(std::move(key), std::move(value));
  return Status::Ok();
}

bool Metadata::erase(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  entries_.erase(entries_.begin() + std::ptrdiff_t(it->second));
  index_.clear();
  for (size_t i = 0; i < entries_.size(); ++i) index_[entries_[i].first] = i;
  return true;
}

const Value* Metadata::find(const std::string& key) const {
  auto it = index_.find(key);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

Result<const Value*> Metadata::lookup(const std::string& key) const {
  const Value* v = find(key);
  if (v == nullptr) return error(ErrorCode::kNotFound, "{}: missing metadata key \"{}\"", source_, key);
  return v;
}

Status Metadata::wrong_type(const std::string& key, const Value& v, const char* expected) const {
  return error(ErrorCode::kFormat, "{}: metadata key \"{}\" has type {}, expected {}", source_, key,
               v.type_string(), expected);
}

Result<uint64_t> Metadata::get_uint(const std::string& key) const {
  LOWBIT_ASSIGN_OR_RETURN(const Value* v, lookup(key));
  if (!v->is_array()) {
    if (auto* u = std::get_if<uint64_t>(&v->storage())) return *u;
    if (auto* i = std::get_if<int64_t>(&v->storage())) {
      if (*i >= 0) return uint64_t(*i);
      return error(ErrorCode::kFormat, "{}: metadata key \"{}\" is negative ({})", source_, key, *i);
    }
  }
  return wrong_type(key, *v, "an integer");
}

Result<int64_t> Metadata::get_int(const std::string& key) const {
  LOWBIT_ASSIGN_OR_RETURN(const Value* v, lookup(key));
  if (!v->is_array()) {
    if (auto* i = std::get_if<int64_t>(&v->storage())) return *i;
    if (auto* u = std::get_if<uint64_t>(&v->storage())) {
      if (*u <= uint64_t(std::numeric_limits<int64_t>::max())) return int64_t(*u);
      return error(ErrorCode::kFormat, "{}: metadata key \"{}\" is out of range ({})", source_, key, *u);
    }
  }
  return wrong_type(key, *v, "an integer");
}

Result<uint32_t> Metadata::get_u32(const std::string& key) const {
  LOWBIT_ASSIGN_OR_RETURN(uint64_t u, get_uint(key));
  if (u > std::numeric_limits<uint32_t>::max())
    return error(ErrorCode::kFormat, "{}: metadata key \"{}\" is out of range ({})", source_, key, u);
  return uint32_t(u);
}

Result<double> Metadata::get_float(const std::string& key) const {
  LOWBIT_ASSIGN_OR_RETURN(const Value* v, lookup(key));
  if (!v->is_array())
    if (auto* d = std::get_if<double>(&v->storage())) return *d;
  return wrong_type(key, *v, "f32 or f64");
}

Result<bool> Metadata::get_bool(const std::string& key) const {
  LOWBIT_ASSIGN_OR_RETURN(const Value* v, lookup(key));
  if (v->type() == ValueType::kBool) return std::get<bool>(v->storage());
  return wrong_type(key, *v, "bool");
}

Result<std::string> Metadata::get_string(const std::string& key) const {
  LOWBIT_ASSIGN_OR_RETURN(const Value* v, lookup(key));
  if (v->type() == ValueType::kString) return std::get<std::string>(v->storage());
  return wrong_type(key, *v, "string");
}

Result<std::vector<std::string>> Metadata::get_strings(const std::string& key) const {
  LOWBIT_ASSIGN_OR_RETURN(const Value* v, lookup(key));
  if (v->is_array())
    if (auto* s = std::get_if<std::vector<std::string>>(&v->storage())) return *s;
  return wrong_type(key, *v, "array[string]");
}

Result<std::vector<double>> Metadata::get_floats(const std::string& key) const {
  LOWBIT_ASSIGN_OR_RETURN(const Value* v, lookup(key));
  if (v->is_array())
    if (auto* d = std::get_if<std::vector<double>>(&v->storage())) return *d;
  return wrong_type(key, *v, "array[f32]");
}

Result<std::vector<int64_t>> Metadata::get_ints(const std::string& key) const {
  LOWBIT_ASSIGN_OR_RETURN(const Value* v, lookup(key));
  if (v->is_array()) {
    if (auto* i = std::get_if<std::vector<int64_t>>(&v->storage())) return *i;
    if (auto* u = std::get_if<std::vector<uint64_t>>(&v->storage())) {
      std::vector<int64_t> out;
      out.reserve(u->size());
      for (uint64_t x : *u) {
        if (x > uint64_t(std::numeric_limits<int64_t>::max()))
          return error(ErrorCode::kFormat, "{}: metadata key \"{}\" holds an out-of-range value {}", source_,
                       key, x);
        out.push_back(int64_t(x));
      }
      return out;
    }
  }
  return wrong_type(key, *v, "an integer array");
}

// ---------------------------------------------------------------------------------------------
// ggml types

namespace {
constexpr GgmlTypeInfo kGgmlTypes[] = {
    {GgmlType::kF32, "F32", 1, 4},
    {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kQ4_0, "Q4_0", 32, 18},  // fp16 scale + 32 x 4-bit
    {GgmlType::kQ8_0, "Q8_0", 32, 34},  // fp16 scale + 32 x int8
    {GgmlType::kBF16, "BF16", 1, 2},
};
}  // namespace

const GgmlTypeInfo* ggml_type_info(uint32_t type) {
  for (const auto& t : kGgmlTypes)
    if (uint32_t(t.type) == type) return &t;
  return nullptr;
}

Result<GgmlType> ggml_type_from_dtype(DType dtype) {
  switch (dtype) {
    case DType::kF32: return GgmlType::kF32;
    case DType::kF16: return GgmlType::kF16;
    case DType::kBF16: return GgmlType::kBF16;
    default: return error(ErrorCode::kUnsupported, "dtype {} has no GGUF equivalent here", dtype_name(dtype));
  }
}

Result<DType> dtype_from_ggml_type(uint32_t type) {
  switch (type) {
    case uint32_t(GgmlType::kF32): return DType::kF32;
    case uint32_t(GgmlType::kF16): return DType::kF16;
    case uint32_t(GgmlType::kBF16): return DType::kBF16;
    default: {
      const GgmlTypeInfo* info = ggml_type_info(type);
      return error(ErrorCode::kUnsupported, "ggml type {} ({}) is not a plain float type", type,
                   info ? info->name : "unknown");
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Parser

namespace {

// Keys and tensor names are identifiers; anything longer is garbage, not a model.
constexpr uint64_t kMaxKeyBytes = 64 * 1024;
// String values hold chat templates and token texts. The length is already checked against the
// bytes that remain, so this cap only turns an absurd value into a clear message.
constexpr uint64_t kMaxStringBytes = 16 * 1024 * 1024;
// Smallest possible encodings, used to bound declared counts by the bytes that remain.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;              // key length, type, u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // name length, n_dims, type, offset

// Fixed encoded size of a scalar type; 0 for string and array.
uint64_t scalar_bytes(ValueType t) {
  switch (t) {
    case ValueType::kU8: case ValueType::kI8: case ValueType::kBool: return 1;
    case ValueType::kU16: case ValueType::kI16: return 2;
    case ValueType::kU32: case ValueType::kI32: case ValueType::kF32: return 4;
    case ValueType::kU64: case ValueType::kI64: case ValueType::kF64: return 8;
    case ValueType::kString: case ValueType::kArray: return 0;
  }
  return 0;
}

bool valid_value_type(uint32_t t) { return t <= uint32_t(ValueType::kF64); }

class Parser {
 public:
  explicit Parser(const MappedFile& file) : path_(file.path()), r_(file.bytes(), file.path()) {}

  ByteReader& reader() { return r_; }

  Result<std::string> read_string(uint64_t max_bytes, const std::string& what) {
    const size_t at = r_.offset();
    LOWBIT_ASSIGN_OR_RETURN(uint64_t n, r_.read<uint64_t>());
    if (n > max_bytes)
      return error(ErrorCode::kFormat, "{}: {} at offset {} declares {} bytes (limit {})", path_, what, at, n,
                   max_bytes);
    if (n > r_.remaining())
      return error(ErrorCode::kFormat, "{}: {} at offset {} declares {} bytes but only {} remain", path_, what,
                   at, n, r_.remaining());
    return r_.read_string(n);
  }

  Result<Value> read_value(uint32_t type_number, const std::string& key) {
    if (!valid_value_type(type_number))
      return error(ErrorCode::kFormat, "{}: key \"{}\" has unknown value type {}", path_, key, type_number);
    const auto type = ValueType(type_number);
    if (type == ValueType::kArray) return read_array(key);
    LOWBIT_ASSIGN_OR_RETURN(Value::Storage s, read_scalar(type, key));
    return Value::scalar(type, std::move(s));
  }

 private:
  template <typename T, typename Repr>
  Result<Value::Storage> read_as() {
    LOWBIT_ASSIGN_OR_RETURN(T v, r_.read<T>());
    return Value::Storage(Repr(v));
  }

  Result<Value::Storage> read_scalar(ValueType type, const std::string& key) {
    switch (type) {
      case ValueType::kU8: return read_as<uint8_t, uint64_t>();
      case ValueType::kI8: return read_as<int8_t, int64_t>();
      case ValueType::kU16: return read_as<uint16_t, uint64_t>();
      case ValueType::kI16: return read_as<int16_t, int64_t>();
      case ValueType::kU32: return read_as<uint32_t, uint64_t>();
      case ValueType::kI32: return read_as<int32_t, int64_t>();
      case ValueType::kU64: return read_as<uint64_t, uint64_t>();
      case ValueType::kI64: return read_as<int64_t, int64_t>();
      case ValueType::kF32: return read_as<float, double>();
      case ValueType::kF64: return read_as<double, double>();
      case ValueType::kBool: {
        const size_t at = r_.offset();
        LOWBIT_ASSIGN_OR_RETURN(uint8_t b, r_.read<uint8_t>());
        // Anything but 0/1 means the reader is out of step with the writer.
        if (b > 1)
          return error(ErrorCode::kFormat, "{}: key \"{}\" has an invalid bool byte {} at offset {}", path_, key,
                       b, at);
        return Value::Storage(b == 1);
      }
      case ValueType::kString: {
        LOWBIT_ASSIGN_OR_RETURN(std::string s, read_string(kMaxStringBytes, fmt::format("value of key \"{}\"", key)));
        return Value::Storage(std::move(s));
      }
      case ValueType::kArray: break;
    }
    return error(ErrorCode::kInternal, "read_scalar on an array");
  }

  template <typename Repr>
  Result<Value::Storage> read_items(ValueType elem, uint64_t count, const std::string& key) {
    std::vector<Repr> items;
    // Bounded by the bytes that remain (checked by the caller): at most 8 bytes per byte read.
    items.reserve(size_t(count));
    for (uint64_t i = 0; i < count; ++i) {
      LOWBIT_ASSIGN_OR_RETURN(Value::Storage s, read_scalar(elem, key));
      items.push_back(std::get<Repr>(std::move(s)));
    }
    return Value::Storage(std::move(items));
  }

  Result<Value> read_array(const std::string& key) {
    LOWBIT_ASSIGN_OR_RETURN(uint32_t elem_number, r_.read<uint32_t>());
    if (!valid_value_type(elem_number))
      return error(ErrorCode::kFormat, "{}: array \"{}\" has unknown element type {}", path_, key, elem_number);
    const auto elem = ValueType(elem_number);
    if (elem == ValueType::kArray)
      return error(ErrorCode::kUnsupported, "{}: array \"{}\" holds nested arrays, which lowbit does not read",
                   path_, key);
    const size_t at = r_.offset();
    LOWBIT_ASSIGN_OR_RETURN(uint64_t count, r_.read<uint64_t>());
    // A string item takes at least its 8-byte length.
    const uint64_t min_item = elem == ValueType::kString ? 8 : scalar_bytes(elem);
    uint64_t min_total = 0;
    if (mul_overflows(count, min_item, &min_total) || min_total > r_.remaining())
      return error(ErrorCode::kFormat, "{}: array \"{}\" at offset {} declares {} items but only {} bytes remain",
                   path_, key, at, count, r_.remaining());
    LOWBIT_ASSIGN_OR_RETURN(Value::Storage items, read_array_items(elem, count, key));
    return Value::array(elem, std::move(items));
  }

  Result<Value::Storage> read_array_items(ValueType elem, uint64_t count, const std::string& key) {
    switch (elem) {
      case ValueType::kU8: case ValueType::kU16: case ValueType::kU32: case ValueType::kU64:
        return read_items<uint64_t>(elem, count, key);
      case ValueType::kI8: case ValueType::kI16: case ValueType::kI32: case ValueType::kI64:
        return read_items<int64_t>(elem, count, key);
      case ValueType::kF32: case ValueType::kF64:
        return read_items<double>(elem, count, key);
      case ValueType::kBool:
        return read_items<bool>(elem, count, key);
      case ValueType::kString: {
        // Not reserved: an empty std::string is larger than its 8-byte encoding.
        std::vector<std::string> strings;
        for (uint64_t i = 0; i < count; ++i) {
          LOWBIT_ASSIGN_OR_RETURN(std::string s,
                                  read_string(kMaxStringBytes, fmt::format("item {} of \"{}\"", i, key)));
          strings.push_back(std::move(s));
        }
        return Value::Storage(std::move(strings));
      }
      case ValueType::kArray: break;
    }
    return error(ErrorCode::kInternal, "read_array_items on nested arrays");
  }

  std::string path_;
  ByteReader r_;
};

}  // namespace

Result<GgufFile> GgufFile::open(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  return parse(std::move(file));
}

Result<GgufFile> GgufFile::parse(std::shared_ptr<MappedFile> mapped) {
  GgufFile f;
  f.file_ = std::move(mapped);
  const std::string& path = f.file_->path();
  f.metadata_ = Metadata(path);
  Parser p(*f.file_);
  ByteReader& r = p.reader();

  // Header.
  if (f.file_->size() < 4 || std::memcmp(f.file_->data(), "GGUF", 4) != 0)
    return error(ErrorCode::kFormat, "{}: not a GGUF file (no \"GGUF\" magic at the start)", path);
  LOWBIT_RETURN_IF_ERROR(r.seek(4));
  LOWBIT_ASSIGN_OR_RETURN(f.version_, r.read<uint32_t>());
  if (f.version_ != kVersion) {
    if (f.version_ == 1 || f.version_ == 2)
      return error(ErrorCode::kUnsupported, "{}: GGUF version {}; lowbit reads version 3 (re-convert the model)",
                   path, f.version_);
    if (__builtin_bswap32(f.version_) <= kVersion)
      return error(ErrorCode::kUnsupported, "{}: big-endian GGUF files are not supported", path);
    return error(ErrorCode::kFormat, "{}: unknown GGUF version {}", path, f.version_);
  }
  LOWBIT_ASSIGN_OR_RETURN(uint64_t tensor_count, r.read<uint64_t>());
  LOWBIT_ASSIGN_OR_RETURN(uint64_t kv_count, r.read<uint64_t>());
  if (kv_count > r.remaining() / kMinKvBytes)
    return error(ErrorCode::kFormat, "{}: declares {} metadata entries but the file has only {} more bytes", path,
                 kv_count, r.remaining());

  // Metadata.
  for (uint64_t i = 0; i < kv_count; ++i) {
    LOWBIT_ASSIGN_OR_RETURN(std::string key, p.read_string(kMaxKeyBytes, fmt::format("key {}", i)));
    if (key.empty()) return error(ErrorCode::kFormat, "{}: metadata key {} is empty", path, i);
    LOWBIT_ASSIGN_OR_RETURN(uint32_t type, r.read<uint32_t>());
    LOWBIT_ASSIGN_OR_RETURN(Value value, p.read_value(type, key));
    LOWBIT_RETURN_IF_ERROR(f.metadata_.add(std::move(key), std::move(value)));
  }
  if (const Value* a = f.metadata_.find(kAlignmentKey)) {
    if (a->type() != ValueType::kU32)
      return error(ErrorCode::kFormat, "{}: {} has type {}, expected u32", path, kAlignmentKey, a->type_string());
    const uint64_t align = std::get<uint64_t>(a->storage());
    if (align == 0 || !std::has_single_bit(align))
      return error(ErrorCode::kFormat, "{}: {} = {} is not a power of two", path, kAlignmentKey, align);
    f.alignment_ = uint32_t(align);
  }

  // Tensor infos.
  if (tensor_count > r.remaining() / kMinTensorInfoBytes)
    return error(ErrorCode::kFormat, "{}: declares {} tensors but the file has only {} more bytes", path,
                 tensor_count, r.remaining());
  f.infos_.reserve(size_t(tensor_count));
  for (uint64_t i = 0; i < tensor_count; ++i) {
    TensorInfo info;
    LOWBIT_ASSIGN_OR_RETURN(info.name, p.read_string(kMaxKeyBytes, fmt::format("name of tensor {}", i)));
    if (info.name.empty()) return error(ErrorCode::kFormat, "{}: tensor {} has an empty name", path, i);
    LOWBIT_ASSIGN_OR_RETURN(uint32_t n_dims, r.read<uint32_t>());
    if (n_dims > uint32_t(kMaxDims))
      return error(ErrorCode::kFormat, "{}: tensor \"{}\" has {} dimensions (at most {})", path, info.name, n_dims,
                   kMaxDims);
    info.shape.resize(n_dims);
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      LOWBIT_ASSIGN_OR_RETURN(uint64_t dim, r.read<uint64_t>());
      if (mul_overflows(numel, dim, &numel) || numel > uint64_t(std::numeric_limits<int64_t>::max()))
        return error(ErrorCode::kFormat, "{}: tensor \"{}\" has an element count that overflows", path, info.name);
      info.shape[n_dims - 1 - d] = int64_t(dim);  // file order is innermost first
    }
    LOWBIT_ASSIGN_OR_RETURN(info.ggml_type, r.read<uint32_t>());
    const GgmlTypeInfo* type = ggml_type_info(info.ggml_type);
    if (type == nullptr)
      return error(ErrorCode::kUnsupported, "{}: tensor \"{}\" has ggml type {}, which lowbit does not read", path,
                   info.name, info.ggml_type);
    const uint64_t innermost = info.shape.empty() ? 1 : uint64_t(info.shape.back());
    if (innermost % uint64_t(type->block_elems) != 0)
      return error(ErrorCode::kFormat, "{}: tensor \"{}\" ({}) has a row of {} values, not a multiple of {}", path,
                   info.name, type->name, innermost, type->block_elems);
    // numel fits int64 so numel / block_elems * block_bytes (<= 34 / 32 * numel) fits uint64.
    info.size_bytes = numel / uint64_t(type->block_elems) * uint64_t(type->block_bytes);
    LOWBIT_ASSIGN_OR_RETURN(info.offset, r.read<uint64_t>());
    if (f.index_.count(info.name))
      return error(ErrorCode::kFormat, "{}: tensor \"{}\" appears twice", path, info.name);
    f.index_[info.name] = f.infos_.size();
    f.infos_.push_back(std::move(info));
  }

  // Data section: starts at the next multiple of the alignment. A file with no tensor data may
  // end before it.
  const uint64_t end_of_infos = r.offset();
  f.data_offset_ = (end_of_infos + f.alignment_ - 1) / f.alignment_ * f.alignment_;
  const uint64_t data_size = f.data_offset_ <= f.file_->size() ? f.file_->size() - f.data_offset_ : 0;
  for (const TensorInfo& info : f.infos_) {
    if (info.offset % f.alignment_ != 0)
      return error(ErrorCode::kFormat, "{}: tensor \"{}\" has offset {}, not a multiple of the alignment {}", path,
                   info.name, info.offset, f.alignment_);
    uint64_t end = 0;
    if (add_overflows(info.offset, info.size_bytes, &end) || end > data_size)
      return error(ErrorCode::kFormat,
                   "{}: tensor \"{}\" ({} bytes at data offset {}) lies outside the data section ({} bytes)", path,
                   info.name, info.size_bytes, info.offset, data_size);
  }
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& info : f.infos_)
    if (info.size_bytes > 0) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const TensorInfo& prev = *by_offset[i - 1];
    if (prev.offset + prev.size_bytes > by_offset[i]->offset)
      return error(ErrorCode::kFormat, "{}: tensors \"{}\" and \"{}\" overlap in the data section", path, prev.name,
                   by_offset[i]->name);
  }
  return f;
}

const TensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &infos_[it->second];
}

std::span<const uint8_t> GgufFile::tensor_bytes(const TensorInfo& info) const {
  return file_->bytes().subspan(size_t(data_offset_ + info.offset), size_t(info.size_bytes));
}

Result<RawTensor> GgufFile::raw_tensor(const TensorInfo& info) const {
  Result<DType> dtype = dtype_from_ggml_type(info.ggml_type);
  if (!dtype.ok())
    return error(ErrorCode::kUnsupported, "{}: tensor \"{}\": {}; lowbit reads F32, F16 and BF16 tensors", path(),
                 info.name, dtype.status().message());
  return RawTensor{info.name, *dtype, info.shape, tensor_bytes(info)};
}

Result<TensorSet> GgufFile::raw_tensors() const {
  TensorSet set;
  set.add_file(file_);
  for (const TensorInfo& info : infos_) {
    LOWBIT_ASSIGN_OR_RETURN(RawTensor t, raw_tensor(info));
    LOWBIT_RETURN_IF_ERROR(set.add(std::move(t)).with_context(path()));
  }
  return set;
}

}  // namespace lowbit::gguf

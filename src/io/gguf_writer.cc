// GGUF v3 writer (layout: io/gguf.h). The header (metadata + tensor infos) is built in memory;
// tensor bytes are streamed from the caller's spans straight into an AtomicFile.
#include <bit>
#include <cstring>
#include <limits>

#include "io/atomic_file.h"
#include "io/byte_reader.h"
#include "io/gguf.h"

namespace lowbit::gguf {

namespace {

class HeaderBuffer {
 public:
  template <typename T>
  void put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &v, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

Status out_of_range(const std::string& key, ValueType type) {
  return error(ErrorCode::kInvalidArgument, "GGUF metadata \"{}\": value does not fit type {}", key,
               value_type_name(type));
}

template <typename T>
Status put_unsigned(HeaderBuffer& out, uint64_t v, const std::string& key, ValueType type) {
  if (v > std::numeric_limits<T>::max()) return out_of_range(key, type);
  out.put<T>(T(v));
  return Status::Ok();
}

template <typename T>
Status put_signed(HeaderBuffer& out, int64_t v, const std::string& key, ValueType type) {
  if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max()) return out_of_range(key, type);
  out.put<T>(T(v));
  return Status::Ok();
}

// Writes one scalar of `type` held in the representation `v` (see Value).
template <typename Repr>
Status put_scalar(HeaderBuffer& out, ValueType type, const Repr& v, const std::string& key) {
  auto mismatch = [&] {
    return error(ErrorCode::kInvalidArgument, "GGUF metadata \"{}\": value representation does not match type {}",
                 key, value_type_name(type));
  };
  if constexpr (std::is_same_v<Repr, uint64_t>) {
    switch (type) {
      case ValueType::kU8: return put_unsigned<uint8_t>(out, v, key, type);
      case ValueType::kU16: return put_unsigned<uint16_t>(out, v, key, type);
      case ValueType::kU32: return put_unsigned<uint32_t>(out, v, key, type);
      case ValueType::kU64: return put_unsigned<uint64_t>(out, v, key, type);
      default: return mismatch();
    }
  } else if constexpr (std::is_same_v<Repr, int64_t>) {
    switch (type) {
      case ValueType::kI8: return put_signed<int8_t>(out, v, key, type);
      case ValueType::kI16: return put_signed<int16_t>(out, v, key, type);
      case ValueType::kI32: return put_signed<int32_t>(out, v, key, type);
      case ValueType::kI64: return put_signed<int64_t>(out, v, key, type);
      default: return mismatch();
    }
  } else if constexpr (std::is_same_v<Repr, double>) {
    if (type == ValueType::kF32) return out.put<float>(float(v)), Status::Ok();
    if (type == ValueType::kF64) return out.put<double>(v), Status::Ok();
    return mismatch();
  } else if constexpr (std::is_same_v<Repr, bool>) {
    if (type != ValueType::kBool) return mismatch();
    out.put<uint8_t>(v ? 1 : 0);
    return Status::Ok();
  } else if constexpr (std::is_same_v<Repr, std::string>) {
    if (type != ValueType::kString) return mismatch();
    out.put_string(v);
    return Status::Ok();
  } else {
    return mismatch();
  }
}

Status put_value(HeaderBuffer& out, const std::string& key, const Value& value) {
  out.put<uint32_t>(uint32_t(value.type()));
  return std::visit(
      [&](const auto& v) -> Status {
        using T = std::decay_t<decltype(v)>;
        constexpr bool kIsVector = !std::is_same_v<T, std::string> && requires { v.size(); };
        if constexpr (kIsVector) {
          if (!value.is_array() || value.element_type() == ValueType::kArray)
            return error(ErrorCode::kInvalidArgument, "GGUF metadata \"{}\": bad array value", key);
          out.put<uint32_t>(uint32_t(value.element_type()));
          out.put<uint64_t>(v.size());
          for (const auto& item : v) {
            const typename T::value_type repr = item;  // std::vector<bool> yields a proxy
            LOWBIT_RETURN_IF_ERROR(put_scalar(out, value.element_type(), repr, key));
          }
          return Status::Ok();
        } else {
          if (value.is_array()) return error(ErrorCode::kInvalidArgument, "GGUF metadata \"{}\": bad scalar", key);
          return put_scalar(out, value.type(), v, key);
        }
      },
      value.storage());
}

uint64_t align_up(uint64_t x, uint64_t alignment) { return (x + alignment - 1) / alignment * alignment; }

}  // namespace

Status GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> shape,
                              std::span<const uint8_t> data) {
  if (name.empty() || name.size() > kMaxTensorNameBytes)
    return error(ErrorCode::kInvalidArgument, "GGUF tensor name \"{}\" must have 1 to {} bytes", name,
                 kMaxTensorNameBytes);
  if (index_.count(name)) return error(ErrorCode::kInvalidArgument, "GGUF tensor \"{}\" added twice", name);
  if (shape.empty() || shape.size() > size_t(kMaxDims))
    return error(ErrorCode::kInvalidArgument, "GGUF tensor \"{}\" has rank {}; GGUF allows 1 to {}", name,
                 shape.size(), kMaxDims);
  const GgmlTypeInfo* info = ggml_type_info(uint32_t(type));
  LOWBIT_CHECK(info != nullptr);
  uint64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0 || mul_overflows(numel, uint64_t(d), &numel))
      return error(ErrorCode::kInvalidArgument, "GGUF tensor \"{}\" has an invalid shape {}", name,
                   shape_string(shape));
  if (shape.back() % info->block_elems != 0)
    return error(ErrorCode::kInvalidArgument, "GGUF tensor \"{}\" ({}): rows of {} values are not a multiple of {}",
                 name, info->name, shape.back(), info->block_elems);
  const uint64_t expected = numel / uint64_t(info->block_elems) * uint64_t(info->block_bytes);
  if (data.size() != expected)
    return error(ErrorCode::kInvalidArgument, "GGUF tensor \"{}\" ({} {}) needs {} bytes, got {}", name, info->name,
                 shape_string(shape), expected, data.size());
  TensorInfo t;
  t.name = name;
  t.ggml_type = uint32_t(type);
  t.shape = std::move(shape);
  t.size_bytes = expected;
  index_[name] = tensors_.size();
  tensors_.push_back({std::move(t), data});
  return Status::Ok();
}

Status GgufWriter::add_tensor_owned(std::string name, GgmlType type, std::vector<int64_t> shape,
                                    std::vector<uint8_t> data) {
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(data));
  LOWBIT_RETURN_IF_ERROR(add_tensor(std::move(name), type, std::move(shape), *buf));
  owned_.push_back(std::move(buf));
  return Status::Ok();
}

Status GgufWriter::add_tensor(const RawTensor& tensor) {
  Result<GgmlType> type = ggml_type_from_dtype(tensor.dtype);
  if (!type.ok())
    return error(ErrorCode::kUnsupported, "tensor \"{}\": {}", tensor.name, type.status().message());
  return add_tensor(tensor.name, *type, tensor.shape, tensor.data);
}

Status GgufWriter::write(const std::string& path) const {
  uint64_t alignment = kDefaultAlignment;
  if (const Value* a = metadata_.find(kAlignmentKey)) {
    const uint64_t* v = std::get_if<uint64_t>(&a->storage());
    if (a->type() != ValueType::kU32 || v == nullptr || *v == 0 || *v > std::numeric_limits<uint32_t>::max() ||
        !std::has_single_bit(*v))
      return error(ErrorCode::kInvalidArgument, "{}: {} must be a u32 power of two", path, kAlignmentKey);
    alignment = *v;
  }

  HeaderBuffer header;
  header.put<uint32_t>(0x46554747u);  // "GGUF" read as a little-endian u32
  header.put<uint32_t>(kVersion);
  header.put<uint64_t>(tensors_.size());
  header.put<uint64_t>(metadata_.entries().size());
  for (const auto& [key, value] : metadata_.entries()) {
    header.put_string(key);
    LOWBIT_RETURN_IF_ERROR(put_value(header, key, value).with_context(path));
  }
  // Offsets: each tensor starts at the next multiple of the alignment after the previous one.
  std::vector<uint64_t> offsets;
  uint64_t data_size = 0;
  for (const Pending& t : tensors_) {
    const uint64_t offset = align_up(data_size, alignment);
    offsets.push_back(offset);
    data_size = offset + t.info.size_bytes;
    header.put_string(t.info.name);
    header.put<uint32_t>(uint32_t(t.info.shape.size()));
    for (auto it = t.info.shape.rbegin(); it != t.info.shape.rend(); ++it) header.put<uint64_t>(uint64_t(*it));
    header.put<uint32_t>(t.info.ggml_type);
    header.put<uint64_t>(offset);
  }

  LOWBIT_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
  LOWBIT_RETURN_IF_ERROR(file.write(header.bytes()));
  const uint64_t data_start = align_up(file.bytes_written(), alignment);
  LOWBIT_RETURN_IF_ERROR(file.write_zeros(size_t(data_start - file.bytes_written())));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    LOWBIT_RETURN_IF_ERROR(file.write_zeros(size_t(data_start + offsets[i] - file.bytes_written())));
    LOWBIT_RETURN_IF_ERROR(file.write(tensors_[i].data));
  }
  // llama.cpp pads the last tensor too, so the file size is a multiple of the alignment.
  LOWBIT_RETURN_IF_ERROR(file.write_zeros(size_t(align_up(file.bytes_written(), alignment) - file.bytes_written())));
  return file.commit();
}

}  // namespace lowbit::gguf

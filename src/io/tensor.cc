#include "io/tensor.h"

#include <algorithm>

namespace lowbit {

namespace {
struct DTypeInfo {
  DType type;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::kF32, "F32", 4},  {DType::kF16, "F16", 2},   {DType::kBF16, "BF16", 2},
    {DType::kF64, "F64", 8},  {DType::kI8, "I8", 1},     {DType::kU8, "U8", 1},
    {DType::kI16, "I16", 2},  {DType::kI32, "I32", 4},   {DType::kI64, "I64", 8},
    {DType::kU16, "U16", 2},  {DType::kU32, "U32", 4},   {DType::kU64, "U64", 8},
    {DType::kBool, "BOOL", 1}, {DType::kF8E4M3, "F8_E4M3", 1},
};
}  // namespace

size_t dtype_size(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.size;
  return 0;
}

const char* dtype_name(DType t) {
  for (const auto& d : kDTypes)
    if (d.type == t) return d.name;
  return "?";
}

Result<DType> dtype_from_name(const std::string& name) {
  for (const auto& d : kDTypes)
    if (name == d.name) return d.type;
  return error(ErrorCode::kUnsupported, "unknown dtype \"{}\"", name);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Status TensorSet::add(RawTensor t) {
  if (index_.count(t.name))
    return error(ErrorCode::kFormat, "tensor \"{}\" appears twice", t.name);
  index_[t.name] = tensors_.size();
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

Status TensorSet::add_owned(std::string name, DType dtype, std::vector<int64_t> shape,
                            std::vector<uint8_t> bytes) {
  auto buf = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  RawTensor t{std::move(name), dtype, std::move(shape), std::span<const uint8_t>(buf->data(), buf->size())};
  LOWBIT_CHECK(uint64_t(t.numel()) * dtype_size(dtype) == buf->size());
  owned_.push_back(std::move(buf));
  return add(std::move(t));
}

TensorSet TensorSet::without(const std::vector<std::string>& names) const {
  TensorSet out;
  out.files_ = files_;
  out.owned_ = owned_;
  out.metadata_ = metadata_;
  for (const auto& t : tensors_)
    if (std::find(names.begin(), names.end(), t.name) == names.end()) LOWBIT_CHECK(out.add(t).ok());
  return out;
}

const RawTensor* TensorSet::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace lowbit

// safetensors writer. Layout: io/safetensors.h.
#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace lowbit {

namespace {

// Checks what the reader would refuse, so lowbit never writes a file it cannot read back.
Status check_tensors(const std::string& path, const std::vector<const RawTensor*>& tensors, bool check_data) {
  std::set<std::string> names;
  for (const RawTensor* t : tensors) {
    LOWBIT_CHECK(t != nullptr);
    if (t->name == "__metadata__")
      return error(ErrorCode::kInvalidArgument, "{}: \"__metadata__\" is reserved and cannot name a tensor", path);
    if (!names.insert(t->name).second)
      return error(ErrorCode::kInvalidArgument, "{}: tensor \"{}\" given twice", path, t->name);
    for (int64_t d : t->shape)
      if (d < 0)
        return error(ErrorCode::kInvalidArgument, "{}: tensor \"{}\" has a negative dimension in {}", path, t->name,
                     shape_string(t->shape));
    if (check_data && t->data.size() != uint64_t(t->numel()) * dtype_size(t->dtype))
      return error(ErrorCode::kInvalidArgument, "{}: tensor \"{}\" has {} bytes but {} {} needs {}", path, t->name,
                   t->data.size(), dtype_name(t->dtype), shape_string(t->shape),
                   uint64_t(t->numel()) * dtype_size(t->dtype));
  }
  return Status::Ok();
}

}  // namespace

Result<SafetensorsLayout> plan_safetensors_layout(const std::string& path, const std::vector<const RawTensor*>& tensors,
                                                  const std::map<std::string, std::string>& metadata) {
  LOWBIT_RETURN_IF_ERROR(check_tensors(path, tensors, /*check_data=*/false));
  // Larger elements first keeps each tensor aligned to its element size once the buffer start is
  // 8-aligned; stable so equal sizes keep the caller's order and the output is deterministic.
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a]->dtype) > dtype_size(tensors[b]->dtype);
  });

  // ordered_json so the header lists __metadata__ first and tensors in buffer order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  SafetensorsLayout layout;
  layout.offsets.resize(tensors.size());
  std::vector<uint64_t> relative(tensors.size());
  uint64_t offset = 0;
  for (size_t i : order) {
    const RawTensor* t = tensors[i];
    const uint64_t end = offset + uint64_t(t->numel()) * dtype_size(t->dtype);
    header[t->name] = {{"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, end}}};
    relative[i] = offset;
    offset = end;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const std::exception& e) {  // a name or metadata string that is not valid UTF-8
    return error(ErrorCode::kInvalidArgument, "{}: cannot encode the header: {}", path, e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t header_len = text.size();  // little-endian on every platform lowbit targets
  layout.header.assign(reinterpret_cast<const char*>(&header_len), sizeof(header_len));
  layout.header += text;
  for (size_t i = 0; i < tensors.size(); ++i) layout.offsets[i] = layout.header.size() + relative[i];
  layout.file_bytes = layout.header.size() + offset;
  layout.order = std::move(order);
  return layout;
}

Status write_safetensors(const std::string& path, const std::vector<const RawTensor*>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  LOWBIT_RETURN_IF_ERROR(check_tensors(path, tensors, /*check_data=*/true));
  LOWBIT_ASSIGN_OR_RETURN(SafetensorsLayout layout, plan_safetensors_layout(path, tensors, metadata));
  LOWBIT_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(path));
  LOWBIT_RETURN_IF_ERROR(file.write(layout.header.data(), layout.header.size()));
  for (size_t i : layout.order) LOWBIT_RETURN_IF_ERROR(file.write(tensors[i]->data));
  return file.commit();
}

Status write_safetensors(const std::string& path, const TensorSet& tensors) {
  std::vector<const RawTensor*> all;
  all.reserve(tensors.tensors().size());
  for (const RawTensor& t : tensors.tensors()) all.push_back(&t);
  return write_safetensors(path, all, tensors.metadata());
}

}  // namespace lowbit

// safetensors reader: validates the header of an untrusted file before handing out any span.
// Layout and rules: io/safetensors.h.
#include <algorithm>
#include <limits>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/byte_reader.h"
#include "io/json_limits.h"
#include "io/safetensors.h"

namespace lowbit {

namespace {

using json = nlohmann::json;

// Parses JSON, refusing duplicate keys at any nesting level: nlohmann keeps the last value
// silently, which would let a file declare one tensor twice and have us see only one.
Result<json> parse_json_strict(const std::string& text, const std::string& what) {
  if (!json_depth_within(text))
    return error(ErrorCode::kFormat, "{}: header nests deeper than {} levels", what, kMaxJsonDepth);
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && !open_objects.back().insert(parsed.get<std::string>()).second &&
            duplicate.empty())
          duplicate = parsed.get<std::string>();
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, callback);
  } catch (const std::exception& e) {
    return error(ErrorCode::kFormat, "{}: malformed JSON header: {}", what, e.what());
  }
  if (!duplicate.empty())
    return error(ErrorCode::kFormat, "{}: header has the key \"{}\" more than once", what, duplicate);
  return j;
}

// A JSON integer that fits in uint64 (rejects negatives, fractions and huge values parsed as float).
bool as_u64(const json& v, uint64_t* out) {
  if (v.is_number_unsigned()) {
    *out = v.get<uint64_t>();
    return true;
  }
  if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    *out = uint64_t(v.get<int64_t>());
    return true;
  }
  return false;
}

struct Entry {
  RawTensor tensor;
  uint64_t begin = 0, end = 0;
};

Result<Entry> parse_entry(const std::string& name, const json& info, uint64_t buffer_size,
                          const std::string& what) {
  auto bad = [&](const std::string& problem) {
    return error(ErrorCode::kFormat, "{}: tensor \"{}\": {}", what, name, problem);
  };
  if (!info.is_object()) return bad("header entry is not an object");
  Entry e;
  e.tensor.name = name;

  auto dtype_it = info.find("dtype");
  if (dtype_it == info.end() || !dtype_it->is_string()) return bad("missing or non-string \"dtype\"");
  auto dtype = dtype_from_name(dtype_it->get<std::string>());
  if (!dtype.ok())
    return error(ErrorCode::kUnsupported, "{}: tensor \"{}\": unsupported dtype \"{}\"", what, name,
                 dtype_it->get<std::string>());
  e.tensor.dtype = *dtype;

  auto shape_it = info.find("shape");
  if (shape_it == info.end() || !shape_it->is_array()) return bad("missing or non-array \"shape\"");
  // numel must also fit in int64 because RawTensor::numel() returns int64.
  uint64_t numel = 1;
  for (const json& d : *shape_it) {
    if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)
      return bad(fmt::format("negative dimension {} in shape {}", d.get<int64_t>(), shape_it->dump()));
    uint64_t dim = 0;
    if (!as_u64(d, &dim)) return bad(fmt::format("shape {} has a non-integer dimension", shape_it->dump()));
    if (mul_overflows(numel, dim, &numel) || numel > uint64_t(std::numeric_limits<int64_t>::max()))
      return bad(fmt::format("shape {} has too many elements", shape_it->dump()));
    e.tensor.shape.push_back(int64_t(dim));
  }
  uint64_t nbytes = 0;
  if (mul_overflows(numel, dtype_size(e.tensor.dtype), &nbytes))
    return bad(fmt::format("shape {} is too large in bytes", shape_it->dump()));

  auto offsets_it = info.find("data_offsets");
  if (offsets_it == info.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !as_u64((*offsets_it)[0], &e.begin) || !as_u64((*offsets_it)[1], &e.end))
    return bad("\"data_offsets\" must be [begin, end] with non-negative integers");
  if (e.end < e.begin) return bad(fmt::format("data_offsets [{}, {}] end before begin", e.begin, e.end));
  if (e.end > buffer_size)
    return bad(fmt::format("data_offsets [{}, {}] extend past the data buffer ({} bytes)", e.begin, e.end,
                           buffer_size));
  if (e.end - e.begin != nbytes)
    return bad(fmt::format("data_offsets [{}, {}] hold {} bytes but {} {} needs {}", e.begin, e.end,
                           e.end - e.begin, dtype_name(e.tensor.dtype), shape_it->dump(), nbytes));
  return e;
}

Status parse_metadata(const json& meta, const std::string& what, std::map<std::string, std::string>* out) {
  if (!meta.is_object()) return error(ErrorCode::kFormat, "{}: \"__metadata__\" is not an object", what);
  for (const auto& [key, value] : meta.items()) {
    if (!value.is_string())
      return error(ErrorCode::kFormat, "{}: \"__metadata__\" value for \"{}\" is not a string", what, key);
    (*out)[key] = value.get<std::string>();
  }
  return Status::Ok();
}

// Sorted by position, consecutive tensors must touch exactly: a gap is a hole, a step back an
// overlap. Zero-size tensors sort before a non-empty one at the same offset, so they never
// count as overlapping.
Status check_coverage(std::vector<Entry>& entries, uint64_t buffer_size, const std::string& what) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < covered)
      return error(ErrorCode::kFormat, "{}: tensor \"{}\" (bytes [{}, {})) overlaps tensor \"{}\"", what,
                   e.tensor.name, e.begin, e.end, previous ? *previous : "");
    if (e.begin > covered)
      return error(ErrorCode::kFormat, "{}: tensor \"{}\" starts at byte {} leaving a hole of {} bytes in the data buffer",
                   what, e.tensor.name, e.begin, e.begin - covered);
    covered = e.end;
    previous = &e.tensor.name;
  }
  if (covered != buffer_size)
    return error(ErrorCode::kFormat, "{}: tensors cover {} bytes of the {}-byte data buffer; the rest is unaccounted for",
                 what, covered, buffer_size);
  return Status::Ok();
}

}  // namespace

Result<SafetensorsContents> parse_safetensors(std::span<const uint8_t> file_bytes, const std::string& what) {
  ByteReader reader(file_bytes, what);
  auto header_len = reader.read<uint64_t>();  // x86-64 and aarch64 Linux are little-endian
  if (!header_len.ok())
    return error(ErrorCode::kFormat, "{}: too short for a safetensors file ({} bytes)", what, file_bytes.size());
  if (*header_len > kSafetensorsMaxHeaderBytes)
    return error(ErrorCode::kResource, "{}: header length {} exceeds the {}-byte limit", what, *header_len,
                 kSafetensorsMaxHeaderBytes);
  if (*header_len > reader.remaining())
    return error(ErrorCode::kFormat, "{}: header length {} is larger than the rest of the file ({} bytes)", what,
                 *header_len, reader.remaining());
  LOWBIT_ASSIGN_OR_RETURN(std::string header_text, reader.read_string(*header_len));
  const std::span<const uint8_t> buffer = file_bytes.subspan(reader.offset());

  LOWBIT_ASSIGN_OR_RETURN(json header, parse_json_strict(header_text, what));
  if (!header.is_object()) return error(ErrorCode::kFormat, "{}: header is not a JSON object", what);

  SafetensorsContents out;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      LOWBIT_RETURN_IF_ERROR(parse_metadata(info, what, &out.metadata));
      continue;
    }
    LOWBIT_ASSIGN_OR_RETURN(Entry e, parse_entry(name, info, buffer.size(), what));
    entries.push_back(std::move(e));
  }
  LOWBIT_RETURN_IF_ERROR(check_coverage(entries, buffer.size(), what));
  out.tensors.reserve(entries.size());
  for (Entry& e : entries) {
    e.tensor.data = buffer.subspan(size_t(e.begin), size_t(e.end - e.begin));
    out.tensors.push_back(std::move(e.tensor));
  }
  return out;
}

Result<TensorSet> read_safetensors(const std::string& path) {
  LOWBIT_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  LOWBIT_ASSIGN_OR_RETURN(SafetensorsContents contents, parse_safetensors(file->bytes(), path));
  TensorSet set;
  set.add_file(file);
  for (RawTensor& t : contents.tensors) LOWBIT_RETURN_IF_ERROR(set.add(std::move(t)).with_context(path));
  set.metadata() = std::move(contents.metadata);
  return set;
}

}  // namespace lowbit

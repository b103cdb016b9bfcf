#include "model/quantized_tensors.h"

#include <cstring>

#include <nlohmann/json.hpp>

#include "base/half.h"
#include "formats/bitpack.h"
#include "formats/double_quant.h"

namespace lowbit {

namespace {

// Largest rows or columns of a stored quantized weight (as the lowbit.shape check always had).
constexpr int64_t kMaxQuantizedDim = int64_t(1) << 31;

std::string prefix_of(const std::string& weight_name) {
  const std::string suffix = ".weight";
  return weight_name.size() > suffix.size() && weight_name.compare(weight_name.size() - suffix.size(), suffix.size(), suffix) == 0
             ? weight_name.substr(0, weight_name.size() - suffix.size())
             : weight_name;
}

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> b(v.size() * sizeof(T));
  if (!b.empty()) std::memcpy(b.data(), v.data(), b.size());  // memcpy from null is UB even for 0 bytes
  return b;
}

template <typename T>
std::vector<T> from_bytes(const RawTensor& t) {
  std::vector<T> v(t.data.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), t.data.data(), v.size() * sizeof(T));  // null data of an empty tensor
  return v;
}

bool has_zero_point_zero(const QuantizedMatrix& m) {
  if (!m.spec.stores_zero()) return false;
  for (const auto& p : m.params)
    if (p.zero == 0.0f) return true;
  return false;
}

// Fetches a required piece with an expected dtype.
Result<const RawTensor*> piece(const TensorSet& tensors, const std::string& name, DType dtype, const std::string& source) {
  const RawTensor* t = tensors.find(name);
  if (t == nullptr) return error(ErrorCode::kNotFound, "{}: missing tensor \"{}\"", source, name);
  if (t->dtype != dtype)
    return error(ErrorCode::kFormat, "{}: tensor \"{}\" has dtype {}, expected {}", source, name, dtype_name(t->dtype),
                 dtype_name(dtype));
  return t;
}

Result<std::shared_ptr<const QuantizedMatrix>> read_gptq(const TensorSet& tensors, const std::string& prefix,
                                                         const nlohmann::json& qc, const std::string& source) {
  GptqTensors g;
  g.bits = qc.value("bits", 0);
  g.group_size = qc.value("group_size", -1);
  const bool sym = qc.value("sym", true);
  const std::string format_name = qc.value("checkpoint_format", std::string("gptq"));
  if (format_name != "gptq" && format_name != "gptq_v2")
    return error(ErrorCode::kUnsupported, "{}: GPTQ checkpoint_format \"{}\"", source, format_name);
  const auto format = format_name == "gptq" ? GptqCheckpointFormat::kGptqV1 : GptqCheckpointFormat::kGptqV2;
  if (g.bits != 2 && g.bits != 3 && g.bits != 4 && g.bits != 8)
    return error(ErrorCode::kUnsupported, "{}: GPTQ bits {} (lowbit reads 2, 3, 4, 8)", source, g.bits);
  LOWBIT_ASSIGN_OR_RETURN(auto qweight, piece(tensors, prefix + ".qweight", DType::kI32, source));
  LOWBIT_ASSIGN_OR_RETURN(auto qzeros, piece(tensors, prefix + ".qzeros", DType::kI32, source));
  LOWBIT_ASSIGN_OR_RETURN(auto scales, piece(tensors, prefix + ".scales", DType::kF16, source));
  LOWBIT_ASSIGN_OR_RETURN(auto g_idx, piece(tensors, prefix + ".g_idx", DType::kI32, source));
  if (qweight->shape.size() != 2 || g_idx->shape.size() != 1)
    return error(ErrorCode::kFormat, "{}: \"{}\": qweight must be 2-D and g_idx 1-D", source, prefix);
  g.in_features = g_idx->shape[0];
  g.out_features = qweight->shape[1];
  // The matrix size comes from the stored qweight rows, never from a dimension alone: an empty
  // [0, 2^40] qweight would otherwise declare 2^40 output columns to loop over.
  if (g.in_features <= 0 || g.out_features <= 0 || g.in_features > kMaxQuantizedDim ||
      g.out_features > kMaxQuantizedDim || qweight->shape[0] != g.qweight_rows())
    return error(ErrorCode::kFormat, "{}: \"{}\": qweight {} does not hold {} bits for g_idx {}", source, prefix,
                 shape_string(qweight->shape), g.bits, shape_string(g_idx->shape));
  g.qweight = from_bytes<int32_t>(*qweight);
  g.qzeros = from_bytes<int32_t>(*qzeros);
  g.scales = from_bytes<uint16_t>(*scales);
  g.g_idx = from_bytes<int32_t>(*g_idx);
  auto m = unpack_gptq(g, sym, format);
  if (!m.ok()) return m.status().with_context(source + ": " + prefix);
  return std::shared_ptr<const QuantizedMatrix>(std::make_shared<QuantizedMatrix>(std::move(*m)));
}

// The optional act-order group index, then the whole matrix's consistency.
Result<std::shared_ptr<const QuantizedMatrix>> finish_lowbit(const TensorSet& tensors, const std::string& prefix,
                                                             QuantizedMatrix m, const std::string& source) {
  const std::string name = prefix + ".weight";
  if (const RawTensor* g = tensors.find(prefix + ".lowbit_g_idx")) {
    if (g->dtype != DType::kI32 || g->shape != std::vector<int64_t>{m.cols})
      return error(ErrorCode::kFormat, "{}: \"{}\": lowbit_g_idx must be I32 [{}]", source, name, m.cols);
    m.g_idx = from_bytes<int32_t>(*g);
  }
  if (auto s = validate_matrix(m); !s.ok()) return s.with_context(source + ": " + name);
  return std::shared_ptr<const QuantizedMatrix>(std::make_shared<QuantizedMatrix>(std::move(m)));
}

// Double-quantized parameters (formats/double_quant.h) into m.params and m.super_scale:
// P.lowbit_scale_codes U8 [param_rows, groups] (_dq4: I32 [words], 4-bit codes as a bit stream),
// P.lowbit_zero_codes I32 [words] (asymmetric only), P.lowbit_super_scale F32 [1].
Status read_double_quant(const TensorSet& tensors, const std::string& prefix, const std::string& source,
                         QuantizedMatrix& m) {
  const std::string name = prefix + ".weight";
  const GroupLayout layout = m.layout();
  const std::vector<int64_t> pshape = {layout.param_rows, layout.groups_per_row};
  const bool packed_scales = m.spec.scale_code_bits == 4;
  LOWBIT_ASSIGN_OR_RETURN(auto codes, piece(tensors, prefix + ".lowbit_scale_codes",
                                            packed_scales ? DType::kI32 : DType::kU8, source));
  if (packed_scales ? codes->shape.size() != 1 : codes->shape != pshape)
    return error(ErrorCode::kFormat, "{}: \"{}\": scale codes shape {} but the format implies {}", source, name,
                 shape_string(codes->shape), packed_scales ? std::string("1-D words") : shape_string(pshape));
  LOWBIT_ASSIGN_OR_RETURN(auto super, piece(tensors, prefix + ".lowbit_super_scale", DType::kF32, source));
  if (super->shape != std::vector<int64_t>{1})
    return error(ErrorCode::kFormat, "{}: \"{}\": super-scale shape {}, expected [1]", source, name,
                 shape_string(super->shape));
  DoubleQuantParams stored;
  std::memcpy(&stored.super_scale, super->data.data(), sizeof(float));
  if (packed_scales) stored.scale_words = from_bytes<uint32_t>(*codes);  // word count: unpack_double_quant
  else stored.scale_codes = from_bytes<uint8_t>(*codes);
  if (m.spec.stores_zero()) {
    LOWBIT_ASSIGN_OR_RETURN(auto zeros, piece(tensors, prefix + ".lowbit_zero_codes", DType::kI32, source));
    if (zeros->shape.size() != 1)
      return error(ErrorCode::kFormat, "{}: \"{}\": zero codes shape {}, expected 1-D", source, name,
                   shape_string(zeros->shape));
    stored.zero_words = from_bytes<uint32_t>(*zeros);
  }
  auto params = unpack_double_quant(m.spec, m.rows, m.cols, stored);
  if (!params.ok()) return params.status().with_context(source + ": " + name);
  m.params = std::move(*params);
  m.super_scale = stored.super_scale;
  return Status::Ok();
}

Result<std::shared_ptr<const QuantizedMatrix>> read_lowbit(const TensorSet& tensors, const std::string& prefix,
                                                           const std::string& source) {
  const std::string name = prefix + ".weight";
  auto fmt_it = tensors.metadata().find("lowbit.format." + name);
  auto shape_it = tensors.metadata().find("lowbit.shape." + name);
  if (fmt_it == tensors.metadata().end() || shape_it == tensors.metadata().end())
    return error(ErrorCode::kFormat, "{}: \"{}\" has lowbit codes but no lowbit.format/lowbit.shape metadata", source, name);
  auto spec = parse_format_spec(fmt_it->second);
  if (!spec.ok()) return spec.status().with_context(source + ": " + name);
  if (!spec->is_quantized()) return error(ErrorCode::kFormat, "{}: \"{}\": format {} is not quantized", source, name, fmt_it->second);
  long long rows = 0, cols = 0;
  if (std::sscanf(shape_it->second.c_str(), "%lld,%lld", &rows, &cols) != 2 || rows <= 0 || cols <= 0 ||
      rows > kMaxQuantizedDim || cols > kMaxQuantizedDim)
    return error(ErrorCode::kFormat, "{}: \"{}\": bad lowbit.shape \"{}\"", source, name, shape_it->second);
  QuantizedMatrix m;
  m.spec = *spec;
  m.rows = rows;
  m.cols = cols;
  const GroupLayout layout = m.layout();
  const int bits = spec->code_bits();
  LOWBIT_ASSIGN_OR_RETURN(auto codes, piece(tensors, prefix + ".lowbit_codes", DType::kI32, source));
  const uint64_t n = uint64_t(rows) * uint64_t(cols);
  // First bound n by the stored bytes: n * bits can pass 2^64 (rows = cols = 2^31 at 8 bits), and
  // the wrapped word count would let an empty tensor declare 2^62 codes.
  if (n > uint64_t(codes->data.size()) * 8 / uint64_t(bits) || codes->data.size() != packed_word_count(n, bits) * 4)
    return error(ErrorCode::kFormat, "{}: \"{}\": {} code bytes, expected {} for [{}, {}] at {} bits", source, name,
                 codes->data.size(), packed_word_count(n, bits) * 4, rows, cols, bits);
  auto words = from_bytes<uint32_t>(*codes);
  LOWBIT_ASSIGN_OR_RETURN(m.codes, unpack_bits(words, bits, n));
  const std::vector<int64_t> pshape = {layout.param_rows, layout.groups_per_row};
  if (spec->double_quant) {
    LOWBIT_RETURN_IF_ERROR(read_double_quant(tensors, prefix, source, m));
    return finish_lowbit(tensors, prefix, std::move(m), source);
  }
  const bool int_grid = spec->info().integer_grid;
  LOWBIT_ASSIGN_OR_RETURN(auto scales, piece(tensors, prefix + ".lowbit_scales", int_grid ? DType::kF16 : DType::kF32, source));
  if (scales->shape != pshape)
    return error(ErrorCode::kFormat, "{}: \"{}\": scales shape {} but the format implies {}", source, name,
                 shape_string(scales->shape), shape_string(pshape));
  m.params.resize(size_t(layout.param_count()));
  for (size_t i = 0; i < m.params.size(); ++i) {
    if (int_grid) {
      uint16_t h;
      std::memcpy(&h, scales->data.data() + 2 * i, 2);
      m.params[i].scale = fp16_to_f32(h);
    } else {
      std::memcpy(&m.params[i].scale, scales->data.data() + 4 * i, 4);
    }
  }
  if (spec->stores_zero()) {
    LOWBIT_ASSIGN_OR_RETURN(auto zeros, piece(tensors, prefix + ".lowbit_zeros", DType::kF16, source));
    if (zeros->shape != pshape)
      return error(ErrorCode::kFormat, "{}: \"{}\": zeros shape {} but the format implies {}", source, name,
                   shape_string(zeros->shape), shape_string(pshape));
    for (size_t i = 0; i < m.params.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, zeros->data.data() + 2 * i, 2);
      m.params[i].zero = fp16_to_f32(h);
    }
  } else if (int_grid) {
    for (auto& p : m.params) p.zero = spec->fixed_zero();
  }
  return finish_lowbit(tensors, prefix, std::move(m), source);
}

}  // namespace

bool gptq_compatible(const QuantizedMatrix& m) {
  // The GPTQ convention has fp16 scales and no super-scale: a double-quantized matrix would lose
  // its compact storage (and its spec) there, so it always takes the lowbit layout.
  if (m.spec.double_quant) return false;
  // Nor has it a zero point between two codes (midrise).
  if (m.spec.midrise) return false;
  if (!m.spec.info().integer_grid || m.rows % 32 != 0 || m.cols % 32 != 0) return false;
  if (m.spec.granularity == Granularity::kGroup) return m.cols % m.spec.group_size == 0;
  return m.spec.granularity == Granularity::kPerChannel;
}

QuantizationConfig choose_quantization_config(const std::map<std::string, std::shared_ptr<const QuantizedMatrix>>& q) {
  QuantizationConfig c;
  bool gptq = !q.empty();
  const QuantizedMatrix* first = q.empty() ? nullptr : q.begin()->second.get();
  bool zero_is_zero = false, act_order = false;
  for (const auto& [name, m] : q) {
    act_order = act_order || !m->g_idx.empty();
    gptq = gptq && gptq_compatible(*m) && m->spec == first->spec;
    zero_is_zero = zero_is_zero || has_zero_point_zero(*m);
  }
  nlohmann::json j;
  if (gptq) {
    c.layout = QuantizedLayout::kGptq;
    c.gptq_format = zero_is_zero ? GptqCheckpointFormat::kGptqV2 : GptqCheckpointFormat::kGptqV1;
    j = {{"quant_method", "gptq"},
         {"bits", first->spec.code_bits()},
         {"group_size", first->spec.granularity == Granularity::kGroup ? first->spec.group_size : -1},
         {"desc_act", act_order},
         {"sym", first->spec.symmetric},
         {"checkpoint_format", gptq_checkpoint_format_name(c.gptq_format)},
         {"lowbit_format", format_spec_name(first->spec)}};
  } else {
    c.layout = QuantizedLayout::kLowbit;
    j = {{"quant_method", "lowbit"},
         {"layout", "lowbit canonical bit stream per tensor (docs/formats.md); GPTQ convention not used because "
                    "formats differ per tensor or a shape/group does not fit it"}};
    for (const auto& [name, m] : q) j["formats"][name] = format_spec_name(m->spec);
  }
  c.json = j.dump();
  return c;
}

Status add_quantized_tensors(const std::string& name, const QuantizedMatrix& m, const QuantizationConfig& config,
                             TensorSet& out) {
  const std::string prefix = prefix_of(name);
  if (config.layout == QuantizedLayout::kGptq) {
    LOWBIT_ASSIGN_OR_RETURN(GptqTensors g, pack_gptq(m, config.gptq_format));
    LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".qweight", DType::kI32, {g.qweight_rows(), g.out_features}, as_bytes(g.qweight)));
    LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".qzeros", DType::kI32, {g.group_count(), g.qzeros_cols()}, as_bytes(g.qzeros)));
    LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".scales", DType::kF16, {g.group_count(), g.out_features}, as_bytes(g.scales)));
    LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".g_idx", DType::kI32, {g.in_features}, as_bytes(g.g_idx)));
    return Status::Ok();
  }
  const GroupLayout layout = m.layout();
  const std::vector<int64_t> pshape = {layout.param_rows, layout.groups_per_row};
  std::vector<uint32_t> words = pack_bits(m.codes, m.spec.code_bits());
  LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".lowbit_codes", DType::kI32, {int64_t(words.size())}, as_bytes(words)));
  if (m.spec.double_quant) {
    LOWBIT_ASSIGN_OR_RETURN(DoubleQuantParams dq, pack_double_quant(m));
    if (m.spec.scale_code_bits == 4)
      LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".lowbit_scale_codes", DType::kI32,
                                           {int64_t(dq.scale_words.size())}, as_bytes(dq.scale_words)));
    else
      LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".lowbit_scale_codes", DType::kU8, pshape, std::move(dq.scale_codes)));
    if (m.spec.stores_zero())
      LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".lowbit_zero_codes", DType::kI32, {int64_t(dq.zero_words.size())},
                                           as_bytes(dq.zero_words)));
    LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".lowbit_super_scale", DType::kF32, {1},
                                         as_bytes(std::vector<float>{dq.super_scale})));
  } else if (m.spec.info().integer_grid) {
    std::vector<uint16_t> scales(m.params.size()), zeros(m.params.size());
    for (size_t i = 0; i < m.params.size(); ++i) {
      scales[i] = f32_to_fp16(m.params[i].scale);
      zeros[i] = f32_to_fp16(m.params[i].zero);
    }
    LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".lowbit_scales", DType::kF16, pshape, as_bytes(scales)));
    if (m.spec.stores_zero())
      LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".lowbit_zeros", DType::kF16, pshape, as_bytes(zeros)));
  } else {
    std::vector<float> scales(m.params.size());
    for (size_t i = 0; i < m.params.size(); ++i) scales[i] = m.params[i].scale;
    LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".lowbit_scales", DType::kF32, pshape, as_bytes(scales)));
  }
  if (!m.g_idx.empty())  // act-order: the group of each input column
    LOWBIT_RETURN_IF_ERROR(out.add_owned(prefix + ".lowbit_g_idx", DType::kI32, {m.cols}, as_bytes(m.g_idx)));
  out.metadata()["lowbit.format." + name] = format_spec_name(m.spec);
  out.metadata()["lowbit.shape." + name] = fmt::format("{},{}", m.rows, m.cols);
  return Status::Ok();
}

Result<std::map<std::string, std::shared_ptr<const QuantizedMatrix>>> extract_quantized_tensors(
    TensorSet& tensors, const std::string& quantization_config_json, const std::string& source) {
  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> out;
  std::vector<std::string> consumed;
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  nlohmann::json qc;
  if (!quantization_config_json.empty()) {
    qc = nlohmann::json::parse(quantization_config_json, nullptr, false);
    if (qc.is_discarded() || !qc.is_object())
      return error(ErrorCode::kFormat, "{}: quantization_config is not a JSON object", source);
  }
  // value() throws on a field of the wrong JSON type ("bits": "4"); that is a malformed file.
  try {
  const std::string method = qc.is_object() ? qc.value("quant_method", std::string()) : "";
  for (const auto& t : tensors.tensors()) {
    std::string prefix;
    Result<std::shared_ptr<const QuantizedMatrix>> m = Status(ErrorCode::kInternal, "unset");
    if (ends_with(t.name, ".qweight")) {
      prefix = t.name.substr(0, t.name.size() - 8);
      if (method != "gptq")
        return error(ErrorCode::kFormat, "{}: tensor \"{}\" is GPTQ-packed but config.json has no GPTQ quantization_config",
                     source, t.name);
      m = read_gptq(tensors, prefix, qc, source);
      for (const char* s : {".qweight", ".qzeros", ".scales", ".g_idx"}) consumed.push_back(prefix + s);
    } else if (ends_with(t.name, ".lowbit_codes")) {
      prefix = t.name.substr(0, t.name.size() - 13);
      m = read_lowbit(tensors, prefix, source);
      for (const char* s : {".lowbit_codes", ".lowbit_scales", ".lowbit_zeros", ".lowbit_g_idx", ".lowbit_scale_codes",
                            ".lowbit_zero_codes", ".lowbit_super_scale"})
        if (tensors.find(prefix + s)) consumed.push_back(prefix + s);
    } else {
      continue;
    }
    if (!m.ok()) return m.status();
    out[prefix + ".weight"] = *m;
  }
  if (!method.empty() && method != "gptq" && method != "lowbit")
    return error(ErrorCode::kUnsupported, "{}: quantization method \"{}\" (lowbit reads gptq and lowbit)", source, method);
  } catch (const nlohmann::json::exception& e) {
    return error(ErrorCode::kFormat, "{}: quantization_config: {}", source, e.what());
  }
  tensors = tensors.without(consumed);
  return out;
}

QuantizedMatrix permute_quantized_rows(const QuantizedMatrix& m, const std::vector<int64_t>& source_row) {
  QuantizedMatrix out = m;
  const GroupLayout layout = m.layout();
  for (int64_t r = 0; r < m.rows; ++r) {
    const int64_t s = source_row[size_t(r)];
    std::memcpy(&out.codes[size_t(r * m.cols)], &m.codes[size_t(s * m.cols)], size_t(m.cols));
    if (layout.param_rows == m.rows)
      for (int64_t g = 0; g < layout.groups_per_row; ++g)
        out.params[size_t(r * layout.groups_per_row + g)] = m.params[size_t(s * layout.groups_per_row + g)];
  }
  return out;
}

}  // namespace lowbit

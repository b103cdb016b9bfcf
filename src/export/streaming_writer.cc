#include "export/streaming_writer.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "formats/bitpack.h"
#include "io/atomic_directory.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/float_values.h"
#include "model/hf_config.h"
#include "model/quantized_tensors.h"
#include "model/rope_permute.h"
#include "model/tokenizer_io.h"

namespace lowbit {

namespace {

constexpr const char* kModelFile = "model.safetensors";
// Rows of a floating-point tensor converted at once: bounded scratch whatever the vocabulary.
constexpr int64_t kFloatChunkElements = int64_t(1) << 20;

bool is_rope_projection(const std::string& name) {
  return name.find(tensor_names::kQ) != std::string::npos || name.find(tensor_names::kK) != std::string::npos ||
         name.find(tensor_names::kQBias) != std::string::npos || name.find(tensor_names::kKBias) != std::string::npos;
}

bool has_zero_point_zero(const QuantizedMatrix& m) {
  if (!m.spec.stores_zero()) return false;
  for (const auto& p : m.params)
    if (p.zero == 0.0f) return true;
  return false;
}

// A matrix of the planned shape with valid placeholder values: packing it yields exactly the
// stored tensors' names, dtypes and shapes (and metadata) without knowing the values yet.
QuantizedMatrix placeholder_matrix(const QuantizedWeightPlan& w) {
  QuantizedMatrix m;
  m.spec = w.spec;
  m.rows = w.rows;
  m.cols = w.cols;
  const GroupLayout layout = m.layout();
  m.codes.assign(size_t(w.rows * w.cols), 0);
  GroupParams p;
  p.scale = 1.0f;
  p.zero = w.spec.stores_zero()         ? 1.0f
           : w.spec.info().integer_grid ? w.spec.fixed_zero()
                                        : 0.0f;
  m.params.assign(size_t(layout.param_count()), p);
  if (w.spec.double_quant) m.super_scale = 1.0f;  // scale 1 is then the grid's top code
  if (w.g_idx) {
    m.g_idx.resize(size_t(w.cols));
    for (int64_t c = 0; c < w.cols; ++c) m.g_idx[size_t(c)] = int32_t(c / layout.group_size);
  }
  return m;
}

// What config.json's quantization_config says about a set of weights, from their shapes, formats
// and two facts about their values: a zero point of 0 somewhere, a group index.
std::shared_ptr<const QuantizedMatrix> summary_matrix(const QuantizedWeightPlan& w, bool zero_point_zero, bool g_idx) {
  auto m = std::make_shared<QuantizedMatrix>();
  m->spec = w.spec;
  m->rows = w.rows;
  m->cols = w.cols;
  if (zero_point_zero) m->params.push_back(GroupParams{1.0f, 0.0f});
  if (g_idx) m->g_idx.push_back(0);
  return m;
}

}  // namespace

struct QuantizedCheckpointWriter::State {
  std::string dir;
  Checkpoint source;  // shares the source's tensors and matrices
  QuantizedSaveOptions options;
  std::vector<QuantizedWeightPlan> weights;  // planned + passed-through
  std::map<std::string, size_t> weight_index;
  std::set<std::string> pass_through;        // weights the source already holds quantized
  QuantizedLayout layout = QuantizedLayout::kLowbit;
  // Stored tensors: descriptors (no data) in expected-tensor order, offsets, written flags.
  std::vector<RawTensor> pieces;
  std::map<std::string, size_t> piece_index;
  std::vector<uint64_t> offsets;
  std::vector<bool> written;
  // GPTQ layout: each weight's packed qzeros and the format they were packed in.
  struct Zeros {
    std::string piece;
    int bits = 4;
    int64_t out_features = 0, groups = 0, cols = 0;
    std::vector<int32_t> words;
    GptqCheckpointFormat format = GptqCheckpointFormat::kGptqV1;
  };
  std::vector<Zeros> zeros;
  std::vector<bool> zero_point_zero, has_g_idx, added;
  std::optional<AtomicDirectory> staging;
  std::optional<AtomicFile> file;
  std::vector<int64_t> q_rows, k_rows;  // RoPE row order for interleaved sources
};

QuantizedCheckpointWriter::~QuantizedCheckpointWriter() = default;

std::vector<QuantizedWeightPlan> quantized_weight_plans(const std::vector<PlanEntry>& entries, bool gptq_act_order,
                                                        bool gptq_static_groups) {
  std::vector<QuantizedWeightPlan> out;
  for (const PlanEntry& e : entries) {
    if (!e.format.is_quantized()) continue;
    const bool reorders = e.method == "gptq" && gptq_act_order && !gptq_static_groups &&
                          e.format.granularity == Granularity::kGroup;
    out.push_back({e.name, e.format, e.rows, e.cols, reorders});
  }
  return out;
}

Result<std::unique_ptr<QuantizedCheckpointWriter>> QuantizedCheckpointWriter::create(
    const std::string& dir, const Checkpoint& source, const std::vector<QuantizedWeightPlan>& weights,
    const QuantizedSaveOptions& options) {
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !options.overwrite)
    return error(ErrorCode::kInvalidArgument, "{}: output exists; use --force to replace it", dir);
  std::unique_ptr<QuantizedCheckpointWriter> w(new QuantizedCheckpointWriter());
  w->state_ = std::make_unique<State>();
  State& s = *w->state_;
  s.dir = dir;
  s.source = source;
  s.options = options;
  s.weights = weights;
  for (const auto& [name, m] : source.quantized) {
    if (std::find_if(weights.begin(), weights.end(), [&](const auto& p) { return p.name == name; }) != weights.end())
      continue;
    s.weights.push_back({name, m->spec, m->rows, m->cols, !m->g_idx.empty()});
    s.pass_through.insert(name);
  }
  for (size_t i = 0; i < s.weights.size(); ++i)
    if (!s.weight_index.emplace(s.weights[i].name, i).second)
      return error(ErrorCode::kInvalidArgument, "{}: weight {} planned twice", dir, s.weights[i].name);
  s.zero_point_zero.assign(s.weights.size(), false);
  s.has_g_idx.assign(s.weights.size(), false);
  s.added.assign(s.weights.size(), false);

  const ModelConfig& c = source.config;
  for (int64_t r = 0; r < c.q_dim(); ++r) s.q_rows.push_back(rope_half_row_source(r, c.head_dim));
  for (int64_t r = 0; r < c.kv_dim(); ++r) s.k_rows.push_back(rope_half_row_source(r, c.head_dim));

  // The layout (GPTQ convention or lowbit) depends on formats and shapes only.
  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> summary;
  for (const auto& p : s.weights) summary[p.name] = summary_matrix(p, false, p.g_idx);
  const QuantizationConfig qc = choose_quantization_config(summary);
  s.layout = qc.layout;

  // Every stored tensor, in the order save_quantized_checkpoint always used: expected tensors in
  // order, a quantized weight's pieces in add_quantized_tensors' order.
  TensorSet shapes;  // placeholder pieces of one weight at a time (for names, dtypes, shapes)
  std::map<std::string, std::string> metadata{{"format", "pt"},
                                              {"lowbit.quantization", qc.layout == QuantizedLayout::kGptq ? "gptq" : "lowbit"}};
  for (const ExpectedTensor& e : expected_tensors(c)) {
    auto it = s.weight_index.find(e.name);
    if (it == s.weight_index.end()) {
      if (source.tensors.find(e.name) == nullptr)
        return error(ErrorCode::kNotFound, "{}: no tensor \"{}\" to write", source.path, e.name);
      RawTensor t;
      t.name = e.name;
      t.dtype = options.float_dtype;
      t.shape = e.shape;
      s.pieces.push_back(std::move(t));
      continue;
    }
    const QuantizedWeightPlan& p = s.weights[it->second];
    if (e.shape.size() != 2 || e.shape[0] != p.rows || e.shape[1] != p.cols)
      return error(ErrorCode::kInvalidArgument, "{}: weight {} planned as [{}, {}] but the model has {}", dir, p.name,
                   p.rows, p.cols, shape_string(e.shape));
    TensorSet one;
    LOWBIT_RETURN_IF_ERROR(add_quantized_tensors(p.name, placeholder_matrix(p), qc, one).with_context(dir + ": " + p.name));
    for (const RawTensor& t : one.tensors()) {
      RawTensor d;
      d.name = t.name;
      d.dtype = t.dtype;
      d.shape = t.shape;
      s.pieces.push_back(std::move(d));
    }
    for (const auto& [k, v] : one.metadata()) metadata[k] = v;
  }
  for (size_t i = 0; i < s.pieces.size(); ++i) s.piece_index[s.pieces[i].name] = i;
  std::vector<const RawTensor*> views;
  for (const RawTensor& t : s.pieces) views.push_back(&t);
  {
    LOWBIT_ASSIGN_OR_RETURN(AtomicDirectory staging, AtomicDirectory::create(dir, AtomicDirectory::Mode::kReplace));
    s.staging.emplace(std::move(staging));
  }
  w->model_path_ = s.staging->file(kModelFile);
  LOWBIT_ASSIGN_OR_RETURN(SafetensorsLayout layout, plan_safetensors_layout(w->model_path_, views, metadata));
  s.offsets = layout.offsets;
  s.written.assign(s.pieces.size(), false);
  {
    LOWBIT_ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::create(w->model_path_));
    s.file.emplace(std::move(file));
  }
  LOWBIT_RETURN_IF_ERROR(s.file->write(layout.header.data(), layout.header.size()));
  return w;
}

Status QuantizedCheckpointWriter::write_source_tensors() {
  State& s = *state_;
  const ModelConfig& c = s.source.config;
  const bool permute = c.rope_style == RopeStyle::kInterleaved;  // HF directories are rotate-half
  for (const ExpectedTensor& e : expected_tensors(c)) {
    if (s.pass_through.count(e.name)) {
      LOWBIT_RETURN_IF_ERROR(add(e.name, *s.source.quantized.at(e.name)));
      continue;
    }
    if (s.weight_index.count(e.name)) continue;
    const size_t piece = s.piece_index.at(e.name);
    const RawTensor& t = *s.source.tensors.find(e.name);
    const int64_t cols = t.shape.size() == 2 ? t.shape[1] : 1;
    const int64_t rows = t.shape.empty() ? 1 : t.shape[0];
    if (permute && is_rope_projection(e.name)) {  // whole tensor: rows move between heads
      std::vector<float> v = permute_rope_rows(float_values(t).data(), rows, cols, c.head_dim, /*to_half=*/true);
      const std::vector<uint8_t> bytes = encode_floats(v, s.options.float_dtype);
      LOWBIT_RETURN_IF_ERROR(s.file->write_at(s.offsets[piece], bytes));
    } else {
      const int64_t chunk_rows = std::max<int64_t>(1, kFloatChunkElements / std::max<int64_t>(cols, 1));
      const size_t in_row = size_t(cols) * dtype_size(t.dtype), out_row = size_t(cols) * dtype_size(s.options.float_dtype);
      for (int64_t r = 0; r < rows; r += chunk_rows) {
        const int64_t n = std::min(chunk_rows, rows - r);
        RawTensor part = t;
        part.shape = {n, cols};
        part.data = t.data.subspan(size_t(r) * in_row, size_t(n) * in_row);
        const std::vector<uint8_t> bytes = encode_floats(float_values(part), s.options.float_dtype);
        LOWBIT_RETURN_IF_ERROR(s.file->write_at(s.offsets[piece] + uint64_t(r) * out_row, bytes));
      }
    }
    s.written[piece] = true;
    s.source.tensors.release_pages(t.data);
  }
  return Status::Ok();
}

Status QuantizedCheckpointWriter::add(const std::string& name, const QuantizedMatrix& matrix) {
  State& s = *state_;
  auto it = s.weight_index.find(name);
  if (it == s.weight_index.end())
    return error(ErrorCode::kInternal, "{}: weight {} was not planned for this checkpoint", s.dir, name);
  const size_t wi = it->second;
  const QuantizedWeightPlan& p = s.weights[wi];
  if (s.added[wi]) return error(ErrorCode::kInternal, "{}: weight {} written twice", s.dir, name);
  if (!(matrix.spec == p.spec) || matrix.rows != p.rows || matrix.cols != p.cols)
    return error(ErrorCode::kInternal, "{}: weight {} is {} [{}, {}] but was planned as {} [{}, {}]", s.dir, name,
                 format_spec_name(matrix.spec), matrix.rows, matrix.cols, format_spec_name(p.spec), p.rows, p.cols);
  if (s.layout == QuantizedLayout::kLowbit && matrix.g_idx.empty() == p.g_idx)
    return error(ErrorCode::kInternal, "{}: weight {} {} a group index, unlike its plan", s.dir, name,
                 matrix.g_idx.empty() ? "lacks" : "has");
  const ModelConfig& c = s.source.config;
  const bool rope = c.rope_style == RopeStyle::kInterleaved && is_rope_projection(name);
  std::optional<QuantizedMatrix> permuted;
  if (rope) permuted = permute_quantized_rows(matrix, name.find("q_proj") != std::string::npos ? s.q_rows : s.k_rows);
  const QuantizedMatrix& m = permuted ? *permuted : matrix;

  s.zero_point_zero[wi] = has_zero_point_zero(m);
  s.has_g_idx[wi] = !m.g_idx.empty();
  QuantizationConfig qc;
  qc.layout = s.layout;
  qc.gptq_format = s.zero_point_zero[wi] ? GptqCheckpointFormat::kGptqV2 : GptqCheckpointFormat::kGptqV1;
  TensorSet pieces;
  LOWBIT_RETURN_IF_ERROR(add_quantized_tensors(name, m, qc, pieces).with_context(s.dir + ": " + name));
  for (const RawTensor& t : pieces.tensors()) {
    auto pi = s.piece_index.find(t.name);
    if (pi == s.piece_index.end() || s.pieces[pi->second].dtype != t.dtype || s.pieces[pi->second].shape != t.shape)
      return error(ErrorCode::kInternal, "{}: tensor {} ({} {}) does not match the planned layout", s.dir, t.name,
                   dtype_name(t.dtype), shape_string(t.shape));
    const bool qzeros = s.layout == QuantizedLayout::kGptq && t.name.size() > 7 &&
                        t.name.compare(t.name.size() - 7, 7, ".qzeros") == 0;
    if (qzeros) {  // written in commit(), once the checkpoint's zero-point convention is known
      State::Zeros z;
      z.piece = t.name;
      z.bits = m.spec.code_bits();
      z.out_features = m.rows;
      z.groups = t.shape[0];
      z.cols = t.shape[1];
      z.words.resize(t.data.size() / 4);
      std::memcpy(z.words.data(), t.data.data(), t.data.size());
      z.format = qc.gptq_format;
      s.zeros.push_back(std::move(z));
      continue;
    }
    LOWBIT_RETURN_IF_ERROR(s.file->write_at(s.offsets[pi->second], t.data));
    s.written[pi->second] = true;
  }
  s.added[wi] = true;
  ++added_;
  return Status::Ok();
}

Status QuantizedCheckpointWriter::commit() {
  State& s = *state_;
  for (size_t i = 0; i < s.weights.size(); ++i)
    if (!s.added[i]) return error(ErrorCode::kInternal, "{}: weight {} was never written", s.dir, s.weights[i].name);
  const bool any_zero = std::find(s.zero_point_zero.begin(), s.zero_point_zero.end(), true) != s.zero_point_zero.end();
  const GptqCheckpointFormat format = any_zero ? GptqCheckpointFormat::kGptqV2 : GptqCheckpointFormat::kGptqV1;
  for (State::Zeros& z : s.zeros) {
    if (z.format != format) {  // v1 stores zero - 1: add the 1 back, field by field
      for (int64_t g = 0; g < z.groups; ++g) {
        std::span<int32_t> row(z.words.data() + g * z.cols, size_t(z.cols));
        std::vector<uint32_t> stream(row.begin(), row.end());
        LOWBIT_ASSIGN_OR_RETURN(std::vector<uint8_t> fields, unpack_bits(stream, z.bits, size_t(z.out_features)));
        for (uint8_t& f : fields) f = uint8_t(f + 1);
        std::fill(stream.begin(), stream.end(), 0u);
        pack_bits_into(fields, z.bits, stream);
        for (size_t i = 0; i < stream.size(); ++i) row[i] = int32_t(stream[i]);
      }
    }
    const size_t pi = s.piece_index.at(z.piece);
    LOWBIT_RETURN_IF_ERROR(s.file->write_at(
        s.offsets[pi], std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(z.words.data()), z.words.size() * 4)));
    s.written[pi] = true;
  }
  for (size_t i = 0; i < s.pieces.size(); ++i)
    if (!s.written[i]) return error(ErrorCode::kInternal, "{}: tensor {} was never written", s.dir, s.pieces[i].name);
  LOWBIT_RETURN_IF_ERROR(s.file->commit());

  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> summary;
  for (size_t i = 0; i < s.weights.size(); ++i)
    summary[s.weights[i].name] = summary_matrix(s.weights[i], s.zero_point_zero[i], s.has_g_idx[i]);
  const QuantizationConfig qc = choose_quantization_config(summary);
  if (qc.layout != s.layout) return error(ErrorCode::kInternal, "{}: quantized layout changed while writing", s.dir);
  ModelConfig hf = s.source.config;
  hf.rope_style = RopeStyle::kHalf;
  LOWBIT_ASSIGN_OR_RETURN(std::string config_text, hf_config_json(hf, s.options.float_dtype));
  nlohmann::json config = nlohmann::json::parse(config_text);
  config["quantization_config"] = nlohmann::json::parse(qc.json);
  if (s.source.dynamic_int8_activations || s.options.dynamic_int8_activations)
    config["quantization_config"]["activation_quantization"] = kDynamicInt8Activations;
  LOWBIT_RETURN_IF_ERROR(write_text_file_atomic(s.staging->file("config.json"), config.dump(2) + "\n"));
  if (s.source.tokenizer)
    LOWBIT_RETURN_IF_ERROR(save_tokenizer_json(s.staging->file("tokenizer.json"), s.source.tokenizer->vocabulary()));
  for (const auto& [name, text] : s.options.extra_files)
    LOWBIT_RETURN_IF_ERROR(write_text_file_atomic(s.staging->file(name), text));
  return s.staging->commit();
}

}  // namespace lowbit

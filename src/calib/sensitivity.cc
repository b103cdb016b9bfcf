#include "calib/sensitivity.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "calib/block_runner.h"
#include "calib/input_statistics.h"
#include "calib/model_view.h"
#include "calib/quantize_checkpoint.h"
#include "model/forward.h"
#include "quant/hessian.h"
#include "quant/rtn.h"

namespace lowbit {
namespace {

using Clock = std::chrono::steady_clock;

// LayerWeights::linears() order q k v o gate up down; layers reading the same input share a
// Hessian (as in calib/gptq_driver.cc).
constexpr int kLinearsPerBlock = 7;
constexpr int kInputOf[kLinearsPerBlock] = {0, 0, 0, 1, 2, 2, 3};
constexpr int kInputs = 4;
constexpr int kMaxSessions = 8;

// tr(ΔW H ΔWᵀ) for ΔW [rows, cols] (double) and H [cols, cols] (full symmetric).
double hessian_trace(const std::vector<double>& delta, int64_t rows, int64_t cols, const std::vector<double>& h) {
  std::vector<double> dh(size_t(rows * cols));  // [rows, cols] = ΔW H
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(rows), int(cols), int(cols), 1.0, delta.data(), int(cols),
              h.data(), int(cols), 0.0, dh.data(), int(cols));
  double sum = 0;
  for (size_t i = 0; i < dh.size(); ++i) sum += dh[i] * delta[i];
  return sum;
}

// The KL divergence of the (partly quantized) working model from the FP log-probabilities of the
// measured windows, running only blocks `first_block`.. and the head from the FP residual stream.
class KldMeter {
 public:
  KldMeter(std::shared_ptr<const Model> model, const WindowStream& stream, size_t windows, int threads)
      : model_(std::move(model)), stream_(stream), windows_(windows) {
    int max_len = 0;
    for (size_t w = 0; w < windows_; ++w) max_len = std::max(max_len, stream_.tokens(w));
    for (int t = 0; t < threads; ++t) {
      slots_.push_back({std::make_unique<Session>(model_, max_len), {}, {}, {}});
      slots_.back().x.resize(size_t(max_len) * size_t(model_->config().dim));
    }
  }

  int64_t scored() const {
    int64_t n = 0;
    for (size_t w = 0; w < windows_; ++w) n += std::max(0, stream_.tokens(w) - 1);
    return n;
  }

  // Stores the FP log-probabilities; `stream` must then hold block 0's input.
  void capture_reference() {
    const int vocab = model_->config().vocab_size;
    reference_.assign(windows_, {});
    run(0, [&](size_t w, const float* logits, int rows, Slot& slot) {
      reference_[w].resize(size_t(rows) * size_t(vocab));
      for (int p = 0; p < rows; ++p) {
        log_softmax(logits + size_t(p) * vocab, vocab, &slot.logp);
        std::copy(slot.logp.begin(), slot.logp.end(), reference_[w].begin() + ptrdiff_t(size_t(p) * vocab));
      }
      return 0.0;
    });
  }

  // `stream` holds block `first_block`'s input (FP up to there).
  double kld(int first_block) {
    const int vocab = model_->config().vocab_size;
    return run(first_block, [&](size_t w, const float* logits, int rows, Slot& slot) {
      double sum = 0;
      for (int p = 0; p < rows; ++p) {
        log_softmax(logits + size_t(p) * vocab, vocab, &slot.logp);
        const float* ref = reference_[w].data() + size_t(p) * vocab;
        double kl = 0;
        for (int i = 0; i < vocab; ++i) kl += std::exp(double(ref[i])) * (double(ref[i]) - slot.logp[size_t(i)]);
        // KL is never negative; a tiny negative sum (-2e-9 seen for int8 weights) is rounding in
        // the fp32 log-probabilities, and would make the table fail its own reader's check.
        sum += std::max(kl, 0.0);
      }
      return sum;
    }) / double(scored());
  }

 private:
  struct Slot {
    std::unique_ptr<Session> session;
    std::vector<float> x, logits;
    std::vector<double> logp;
  };

  // Runs every measured window from `first_block` to the logits of its scored positions and sums
  // per-window results in window order (the thread count does not change the figure).
  template <typename PerWindow>
  double run(int first_block, const PerWindow& per_window) {
    const ModelConfig& c = model_->config();
    std::vector<double> sums(windows_, 0.0);
#pragma omp parallel for num_threads(int(slots_.size())) schedule(dynamic, 1)
    for (int64_t w = 0; w < int64_t(windows_); ++w) {
      Slot& slot = slots_[size_t(omp_get_thread_num())];
      const int n = stream_.tokens(size_t(w));
      const float* x = stream_.x.data() + stream_.offsets[size_t(w)] * c.dim;
      std::copy(x, x + size_t(n) * c.dim, slot.x.begin());
      for (int b = first_block; b < c.n_layers; ++b) slot.session->forward_block(b, slot.x.data(), n, 0);
      const int rows = n - 1;  // position t predicts token t+1; the last one has no target
      if (rows <= 0) continue;
      slot.logits.resize(size_t(rows) * size_t(c.vocab_size));
      slot.session->output_logits(slot.x.data(), rows, slot.logits.data());
      sums[size_t(w)] = per_window(size_t(w), slot.logits.data(), rows, slot);
    }
    double total = 0;
    for (double s : sums) total += s;
    return total;
  }

  std::shared_ptr<const Model> model_;
  const WindowStream& stream_;
  size_t windows_;
  std::vector<Slot> slots_;
  std::vector<std::vector<float>> reference_;  // per window [rows, vocab] FP log-probabilities
};

Status validate_windows(const TokenWindows& windows, const ModelConfig& c) {
  if (windows.empty()) return error(ErrorCode::kInvalidArgument, "sensitivity needs at least one calibration window");
  for (size_t w = 0; w < windows.size(); ++w) {
    if (windows[w].size() < 2 || int64_t(windows[w].size()) > c.max_seq_len)
      return error(ErrorCode::kInvalidArgument, "calibration window {} has {} tokens (allowed 2..{})", w,
                   windows[w].size(), c.max_seq_len);
    for (int id : windows[w])
      if (id < 0 || id >= c.vocab_size)
        return error(ErrorCode::kInvalidArgument, "calibration window {} holds token {} outside [0, {})", w, id,
                     c.vocab_size);
  }
  return Status::Ok();
}

std::vector<double> ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    for (size_t k = i; k <= j; ++k) r[order[k]] = 0.5 * double(i + j);  // average rank of the tie
    i = j + 1;
  }
  return r;
}

void fill_correlations(SensitivityTable& t) {
  std::vector<double> proxy, kld;
  for (size_t f = 0; f < t.formats.size(); ++f) {
    std::vector<double> p, k;
    for (const auto& item : t.items) {
      p.push_back(item.cells[f].proxy);
      k.push_back(item.cells[f].kld - t.base_kld);
    }
    t.spearman_by_format[t.formats[f]] = spearman_correlation(p, k);
    proxy.insert(proxy.end(), p.begin(), p.end());
    kld.insert(kld.end(), k.begin(), k.end());
  }
  t.spearman = spearman_correlation(proxy, kld);
}

}  // namespace

double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) return 0;
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double n = double(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0;
}

Result<SensitivityTable> measure_sensitivity(std::shared_ptr<const Model> model, const TokenWindows& windows,
                                             const SensitivityOptions& options, const SensitivityProgress& progress) {
  const Clock::time_point start = Clock::now();
  if (model == nullptr) return error(ErrorCode::kInvalidArgument, "sensitivity needs a model");
  const ModelConfig& c = model->config();
  if (options.formats.empty()) return error(ErrorCode::kInvalidArgument, "sensitivity needs at least one format");
  for (const FormatSpec& f : options.formats)
    if (!f.is_quantized())
      return error(ErrorCode::kInvalidArgument, "format '{}' is not a quantized format", format_spec_name(f));
  if (options.method != "rtn" && options.method != "gptq")
    return error(ErrorCode::kInvalidArgument, "sensitivity method \"{}\": use rtn or gptq", options.method);
  if (options.measure_windows < 0) return error(ErrorCode::kInvalidArgument, "measure_windows must be >= 0");
  LOWBIT_RETURN_IF_ERROR(validate_windows(windows, c));

  SensitivityTable table;
  table.method = options.method;
  table.clip = options.method == "gptq" ? options.gptq.clip : options.rtn_clip;
  table.asymmetric_calibration = options.asymmetric_calibration && options.method == "gptq";
  table.group_by = options.group_by_layer ? "layer" : "tensor";
  for (const FormatSpec& f : options.formats) table.formats.push_back(format_spec_name(f));
  table.calibration_windows = int64_t(windows.size());
  const size_t measured = options.measure_windows == 0 ? windows.size()
                                                       : std::min(windows.size(), size_t(options.measure_windows));
  table.measure_windows = int64_t(measured);

  if (options.base && !options.base->is_quantized())
    return error(ErrorCode::kInvalidArgument, "base format '{}' is not a quantized format",
                 format_spec_name(*options.base));
  if (options.base && !options.base_by_tensor.empty())
    return error(ErrorCode::kInvalidArgument, "give a base format or a base per tensor, not both");
  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<Model> work, make_editable_view(model));
  for (const LayerWeights& layer : work->layers())
    for (const Linear* l : layer.linears())
      if (l->is_quantized() || l->weight == nullptr)
        return error(ErrorCode::kInvalidArgument, "sensitivity needs a floating-point model; {} is already quantized",
                     l->name);
  // FP weight of a linear (the view's arrays stay alive while `work` does, whatever is installed).
  std::map<std::string, const float*> fp_weight;
  for (const LayerWeights& layer : work->layers())
    for (const Linear* l : layer.linears()) fp_weight[l->name] = l->weight;
  // Asymmetric GPTQ: the original model runs beside the quantized one (calib/input_statistics.h).
  const bool asymmetric = options.asymmetric_calibration && options.method == "gptq";
  struct BlockInputs {
    std::vector<std::vector<double>> hessian;  // per distinct input
    std::vector<std::vector<float>> target;    // asymmetric: each linear's W*, fit once for every format
  };
  // Linear `index` of a block (LayerWeights::linears() order) at `spec`.
  auto quantize = [&](const Linear& linear, int index, const FormatSpec& spec,
                      const BlockInputs& inputs) -> Result<QuantizedMatrix> {
    const int64_t rows = linear.out_features, cols = linear.in_features;
    const float* w = fp_weight.at(linear.name);
    std::span<const float> values(w, size_t(rows * cols));
    if (options.method == "rtn") return rtn_quantize(values, rows, cols, spec, RtnOptions{options.rtn_clip, {}});
    if (asymmetric) values = inputs.target[size_t(index)];
    const std::vector<double>& h = inputs.hessian[size_t(kInputOf[index])];
    Result<GptqResult> g = gptq_quantize(values, rows, cols, spec, h, options.gptq);
    if (!g.ok()) return g.status().with_context("GPTQ of " + linear.name);
    return std::move(g->matrix);
  };
  auto install = [](Linear& linear, QuantizedMatrix m) {
    linear.quantized = std::make_shared<const QuantizedMatrix>(std::move(m));
    linear.weight = nullptr;
    prepare_linear(linear);
  };
  // The four distinct inputs' Hessians (and shifts) of block b on the current stream.
  std::optional<ReferenceRun> reference;
  auto block_inputs = [&](BlockRunner& runner, int b, const WindowStream& stream) -> Result<BlockInputs> {
    std::vector<int> readers;  // the first layer reading each input, in input order
    for (int i = 0; i < kLinearsPerBlock; ++i)
      if (i == 0 || kInputOf[i] != kInputOf[i - 1]) readers.push_back(i);
    const InputStatistics stats =
        collect_input_statistics(runner, stream, b, readers, reference ? &*reference : nullptr);
    BlockInputs inputs;
    for (const HessianAccumulator& acc : stats.hessians) inputs.hessian.push_back(acc.hessian());
    if (!asymmetric) return inputs;
    std::vector<std::vector<double>> corrections;  // one per input, shared by its readers
    for (size_t k = 0; k < readers.size(); ++k) {
      LOWBIT_ASSIGN_OR_RETURN(std::vector<double> c,
                              asymmetric_correction(stats.hessians[k].dim(), inputs.hessian[k], stats.shifts[k].shift(),
                                                    options.gptq.percdamp, options.gptq.damp_retries));
      corrections.push_back(std::move(c));
    }
    for (const Linear* l : work->layers()[size_t(b)].linears()) {
      const int i = int(inputs.target.size());
      const std::span<const float> w(fp_weight.at(l->name), size_t(l->out_features * l->in_features));
      inputs.target.push_back(
          apply_asymmetric_correction(w, l->out_features, l->in_features, corrections[size_t(kInputOf[i])]));
    }
    return inputs;
  };
  int max_len = 0;
  for (const auto& w : windows) max_len = std::max(max_len, int(w.size()));
  const int threads = std::clamp(omp_get_max_threads(), 1, std::min(kMaxSessions, int(windows.size())));
  BlockRunner runner(work, max_len, threads);
  WindowStream stream = runner.embed(windows);
  if (asymmetric) reference.emplace(model, windows, max_len, threads);
  KldMeter meter(work, stream, measured, std::min(threads, int(measured)));
  meter.capture_reference();
  table.tokens_scored = meter.scored();
  if (options.base || !options.base_by_tensor.empty()) {
    // Every block linear at its base format, layer by layer; then the stream starts over.
    table.base_format = options.base ? format_spec_name(*options.base) : options.base_name;
    for (int b = 0; b < c.n_layers; ++b) {
      LOWBIT_ASSIGN_OR_RETURN(const BlockInputs inputs, block_inputs(runner, b, stream));
      for (int i = 0; i < kLinearsPerBlock; ++i) {
        Linear& linear = *work->mutable_layers()[size_t(b)].linears()[size_t(i)];
        FormatSpec spec;
        if (options.base) {
          spec = *options.base;
        } else {
          const auto it = options.base_by_tensor.find(linear.name);
          if (it == options.base_by_tensor.end() || !it->second.is_quantized()) continue;  // stays FP
          spec = it->second;
        }
        LOWBIT_ASSIGN_OR_RETURN(QuantizedMatrix m, quantize(linear, i, spec, inputs));
        install(linear, std::move(m));
      }
      if (b + 1 < c.n_layers) runner.propagate(b, stream);
      if (reference && b + 1 < c.n_layers) reference->propagate(b);
    }
    stream = runner.embed(windows);
    if (reference) reference->stream = reference->runner.embed(windows);
    table.base_kld = meter.kld(0);
  }

  // Items: one per linear, or one per block.
  for (int b = 0; b < c.n_layers; ++b) {
    const auto linears = work->layers()[size_t(b)].linears();
    if (options.group_by_layer) {
      SensitivityItem item{fmt::format("model.layers.{}", b), b, {}, 0, {}};
      for (const Linear* l : linears) {
        item.tensors.push_back(l->name);
        item.weights += uint64_t(l->out_features) * uint64_t(l->in_features);
      }
      table.items.push_back(item);
    } else {
      for (const Linear* l : linears)
        table.items.push_back({l->name, b, {l->name}, uint64_t(l->out_features) * uint64_t(l->in_features), {}});
    }
  }
  const int64_t total = int64_t(table.items.size() * options.formats.size());
  int64_t done = 0;

  size_t next_item = 0;
  for (int b = 0; b < c.n_layers; ++b) {
    const std::vector<Linear*> linears = work->mutable_layers()[size_t(b)].linears();
    // Hessians of the block's four distinct inputs (FP inputs, or the base-quantized prefix's).
    LOWBIT_ASSIGN_OR_RETURN(const BlockInputs inputs, block_inputs(runner, b, stream));

    for (; next_item < table.items.size() && table.items[next_item].block == b; ++next_item) {
      SensitivityItem& item = table.items[next_item];
      std::vector<int> members;  // indices into linears
      for (int i = 0; i < kLinearsPerBlock; ++i)
        if (std::find(item.tensors.begin(), item.tensors.end(), linears[size_t(i)]->name) != item.tensors.end())
          members.push_back(i);
      for (const FormatSpec& spec : options.formats) {
        SensitivityCell cell;
        cell.format = format_spec_name(spec);
        std::vector<Linear> saved;
        for (int i : members) {
          Linear& linear = *linears[size_t(i)];
          saved.push_back(linear);
          const std::vector<double>& h = inputs.hessian[size_t(kInputOf[i])];
          const int64_t rows = linear.out_features, cols = linear.in_features;
          Result<QuantizedMatrix> q = quantize(linear, i, spec, inputs);
          if (!q.ok()) return q.status().with_context(linear.name);
          const std::vector<float> dq = dequantize(*q);
          const float* w = fp_weight.at(linear.name);
          std::vector<double> delta(dq.size());
          for (size_t e = 0; e < dq.size(); ++e) delta[e] = double(w[e]) - double(dq[e]);
          cell.proxy += hessian_trace(delta, rows, cols, h);
          cell.bytes += format_bytes(spec, rows, cols);
          install(linear, std::move(*q));
        }
        cell.kld = meter.kld(b);
        for (size_t m = 0; m < members.size(); ++m) *linears[size_t(members[m])] = saved[m];
        item.cells.push_back(cell);
        ++done;
        if (progress) progress(done, total, item.name + " " + cell.format);
      }
    }
    if (b + 1 < c.n_layers) runner.propagate(b, stream);
    if (reference && b + 1 < c.n_layers) reference->propagate(b);
  }
  fill_correlations(table);
  table.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return table;
}

std::string sensitivity_to_json(const SensitivityTable& t) {
  nlohmann::ordered_json j;
  j["method"] = t.method;
  j["group_by"] = t.group_by;
  j["formats"] = t.formats;
  j["base_format"] = t.base_format;
  j["base_kld"] = t.base_kld;
  if (t.clip) j["clip"] = {{"steps", t.clip->steps}, {"min_shrink", t.clip->min_shrink}};
  if (t.asymmetric_calibration) j["asymmetric_calibration"] = true;
  if (t.rotation_seed) j["rotation"] = {{"seed", *t.rotation_seed}};
  j["calibration_windows"] = t.calibration_windows;
  j["measure_windows"] = t.measure_windows;
  j["tokens_scored"] = t.tokens_scored;
  j["seconds"] = t.seconds;
  j["damage"] = "kld: mean KL(P_fp || P_q) in nats with this item at this format and every other item in FP (or at "
                "base_format); damage = kld - base_kld; proxy: tr(dW H dW^T)";
  j["spearman_proxy_vs_kld"] = t.spearman;
  j["spearman_by_format"] = t.spearman_by_format;
  j["items"] = nlohmann::ordered_json::array();
  for (const auto& item : t.items) {
    nlohmann::ordered_json ji;
    ji["name"] = item.name;
    ji["block"] = item.block;
    ji["tensors"] = item.tensors;
    ji["weights"] = item.weights;
    ji["cells"] = nlohmann::ordered_json::array();
    for (const auto& cell : item.cells)
      ji["cells"].push_back({{"format", cell.format}, {"bytes", cell.bytes}, {"kld", cell.kld}, {"proxy", cell.proxy}});
    j["items"].push_back(ji);
  }
  return j.dump(1) + "\n";
}

Result<SensitivityTable> parse_sensitivity_json(const std::string& text, const std::string& source,
                                                const ModelConfig& config) {
  using json = nlohmann::json;
  auto bad = [&](const std::string& what) { return error(ErrorCode::kFormat, "{}: {}", source, what); };
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("not a JSON object (expected a lowbit sensitivity table)");
  std::map<std::string, std::pair<int64_t, int64_t>> shapes;
  for (const TensorShape& s : quantizable_tensors(config))
    if (s.name.rfind("model.layers.", 0) == 0) shapes[s.name] = {s.rows, s.cols};
  SensitivityTable t;
  try {
    t.method = j.value("method", std::string("rtn"));
    t.group_by = j.value("group_by", std::string("tensor"));
    t.calibration_windows = j.value("calibration_windows", int64_t(0));
    t.measure_windows = j.value("measure_windows", int64_t(0));
    t.tokens_scored = j.value("tokens_scored", int64_t(0));
    t.seconds = j.value("seconds", 0.0);
    t.base_format = j.value("base_format", std::string());
    t.base_kld = j.value("base_kld", 0.0);
    if (!std::isfinite(t.base_kld) || t.base_kld < 0) return bad("\"base_kld\" must be finite and >= 0");
    if (j.contains("asymmetric_calibration")) {
      if (!j["asymmetric_calibration"].is_boolean()) return bad("\"asymmetric_calibration\" must be true or false");
      t.asymmetric_calibration = j["asymmetric_calibration"].get<bool>();
    }
    if (j.contains("clip")) {
      const json& c = j["clip"];
      if (!c.is_object() || !c.contains("steps") || !c["steps"].is_number_integer() || !c.contains("min_shrink") ||
          !c["min_shrink"].is_number())
        return bad("\"clip\" must be {\"steps\": integer, \"min_shrink\": number}");
      const ClipSearch clip{c["steps"].get<int>(), c["min_shrink"].get<float>()};
      if (Status valid = validate_clip_search(clip); !valid.ok()) return bad("\"clip\": " + valid.message());
      t.clip = clip;
    }
    if (j.contains("rotation")) {
      const json& r = j["rotation"];
      if (!r.is_object() || !r.contains("seed") || !r["seed"].is_number_unsigned())
        return bad("\"rotation\" must be {\"seed\": non-negative integer}");
      t.rotation_seed = r["seed"].get<uint64_t>();
    }
    if (!j.contains("formats") || !j["formats"].is_array() || j["formats"].empty() || j["formats"].size() > 255)
      return bad("\"formats\" must be a list of 1..255 format specs");
    std::vector<FormatSpec> specs;
    for (const auto& f : j["formats"]) {
      Result<FormatSpec> spec = parse_format_spec(f.get<std::string>());
      if (!spec.ok()) return bad(spec.status().message());
      if (!spec->is_quantized()) return bad(fmt::format("format \"{}\" is not quantized", f.get<std::string>()));
      specs.push_back(*spec);
      t.formats.push_back(format_spec_name(*spec));
    }
    if (!j.contains("items") || !j["items"].is_array() || j["items"].empty()) return bad("\"items\" must be a non-empty list");
    std::set<std::string> seen;
    for (const auto& ji : j["items"]) {
      SensitivityItem item;
      item.name = ji.at("name").get<std::string>();
      item.block = ji.value("block", 0);
      for (const auto& name : ji.at("tensors")) {
        const std::string n = name.get<std::string>();
        auto it = shapes.find(n);
        if (it == shapes.end()) return bad(fmt::format("item {}: {} is not a block linear weight of this model", item.name, n));
        if (!seen.insert(n).second) return bad(fmt::format("tensor {} appears in more than one item", n));
        item.tensors.push_back(n);
        item.weights += uint64_t(it->second.first * it->second.second);
      }
      if (item.tensors.empty()) return bad(fmt::format("item {} lists no tensors", item.name));
      const auto& cells = ji.at("cells");
      if (!cells.is_array() || cells.size() != specs.size())
        return bad(fmt::format("item {} has {} cells for {} formats", item.name, cells.size(), specs.size()));
      for (size_t f = 0; f < specs.size(); ++f) {
        SensitivityCell cell;
        cell.format = t.formats[f];
        const std::string stated_format = cells[f].at("format").get<std::string>();
        const Result<FormatSpec> cell_spec = parse_format_spec(stated_format);
        if (!cell_spec.ok() || format_spec_name(*cell_spec) != cell.format)
          return bad(fmt::format("item {} cell {} is for format \"{}\" but formats[{}] is {}", item.name, f,
                                 stated_format, f, cell.format));
        cell.kld = cells[f].at("kld").get<double>();
        cell.proxy = cells[f].value("proxy", 0.0);
        if (!std::isfinite(cell.kld) || cell.kld < 0 || !std::isfinite(cell.proxy))
          return bad(fmt::format("item {} format {}: kld/proxy must be finite (kld >= 0)", item.name, cell.format));
        for (const std::string& n : item.tensors)
          cell.bytes += format_bytes(specs[f], shapes[n].first, shapes[n].second);
        const uint64_t stated = cells[f].value("bytes", cell.bytes);
        if (stated != cell.bytes)
          return bad(fmt::format("item {} format {}: {} bytes stated but the model's shapes give {} (a table "
                                 "measured on another model?)",
                                 item.name, cell.format, stated, cell.bytes));
        item.cells.push_back(cell);
      }
      t.items.push_back(std::move(item));
    }
  } catch (const json::exception& e) {
    return bad(fmt::format("malformed sensitivity table: {}", e.what()));
  }
  fill_correlations(t);
  return t;
}

std::vector<AllocationItem> allocation_items(const SensitivityTable& table) {
  std::vector<AllocationItem> items;
  for (const auto& item : table.items) {
    AllocationItem a{item.name, {}};
    for (const auto& cell : item.cells) a.candidates.push_back({cell.format, cell.bytes, cell.kld - table.base_kld});
    items.push_back(std::move(a));
  }
  return items;
}

Result<EvalResult> evaluate_on_windows(std::shared_ptr<const Model> model, std::shared_ptr<const Model> reference,
                                       const TokenWindows& windows) {
  if (windows.empty()) return error(ErrorCode::kInvalidArgument, "no windows to evaluate");
  std::vector<int32_t> tokens;
  for (const auto& w : windows) {
    if (w.size() != windows[0].size())
      return error(ErrorCode::kInvalidArgument, "windows of different lengths ({} and {})", windows[0].size(), w.size());
    tokens.insert(tokens.end(), w.begin(), w.end());
  }
  EvalProtocol protocol;
  protocol.windows.length = int(windows[0].size());
  protocol.source = "calibration windows";
  return evaluate(std::move(model), std::move(reference), tokens, protocol);
}

}  // namespace lowbit

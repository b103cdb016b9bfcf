#include "calib/gptq_driver.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "calib/calibration_data.h"
#include "calib/model_view.h"
#include "model/forward.h"
#include "model/synthetic.h"
#include "quant/hessian.h"
#include "testing/testing.h"
#include "testing/calib_testing.h"
#include "testing/quant_testing.h"

namespace lowbit {
namespace {

namespace tn = tensor_names;

using testing::spec_of;

std::shared_ptr<const Model> tiny_model(uint64_t seed = 1) {
  Result<std::shared_ptr<Model>> m = Model::from_checkpoint(make_random_checkpoint(tiny_test_config(), seed));
  EXPECT_TRUE(m.ok()) << m.status().message();
  return *m;
}

using testing::random_windows;

std::vector<std::pair<std::string, FormatSpec>> all_linears(const Model& model, const FormatSpec& spec) {
  std::vector<std::pair<std::string, FormatSpec>> targets;
  for (const LayerWeights& layer : model.layers())
    for (const Linear* l : layer.linears()) targets.emplace_back(l->name, spec);
  return targets;
}

Result<GptqModelResult> run(std::shared_ptr<const Model> model,
                            const std::vector<std::pair<std::string, FormatSpec>>& targets, const TokenWindows& windows,
                            bool true_sequential) {
  GptqModelOptions options;
  options.true_sequential = true_sequential;
  return gptq_quantize_model(model, targets, windows, options);
}

// The Hessian of `layer_index` (a linear of block `block`, in linears() order) on `windows`,
// captured independently of the driver: a Session over `model` with a plain hook.
std::vector<double> captured_hessian(std::shared_ptr<const Model> model, int block, int layer_index,
                                     const TokenWindows& windows) {
  const Linear* target = model->layers()[size_t(block)].linears()[size_t(layer_index)];
  HessianAccumulator acc(target->in_features);
  Session session(model);
  session.set_linear_hook([&](const LinearInput& in) {
    if (in.linear == target) acc.add(std::span<const float>(in.x, size_t(in.n_tokens) * in.linear->in_features), in.n_tokens);
  });
  std::vector<float> logits;
  for (const auto& w : windows) {
    session.reset();
    EXPECT_TRUE(session.forward(w, false, &logits).ok());
  }
  return acc.hessian();
}

// A model equal to `base` with the given weights quantized.
std::shared_ptr<const Model> with_quantized(std::shared_ptr<const Model> base,
                                            const std::map<std::string, std::shared_ptr<const QuantizedMatrix>>& q) {
  Result<std::shared_ptr<Model>> view = make_editable_view(base);
  EXPECT_TRUE(view.ok());
  for (LayerWeights& layer : (*view)->mutable_layers())
    for (Linear* l : layer.linears()) {
      auto it = q.find(l->name);
      if (it == q.end()) continue;
      l->quantized = it->second;
      l->weight = nullptr;
    }
  return *view;
}

TEST(ModelView, SharesWeightsAndEditsStayLocal) {
  auto base = tiny_model();
  Result<std::shared_ptr<Model>> view = make_editable_view(base);
  ASSERT_TRUE(view.ok()) << view.status().message();
  EXPECT_EQ((*view)->embedding(), base->embedding());
  EXPECT_EQ((*view)->layers()[1].down.weight, base->layers()[1].down.weight);
  EXPECT_EQ((*view)->layers()[0].attn_norm, base->layers()[0].attn_norm);
  (*view)->mutable_layers()[0].q.weight = nullptr;
  EXPECT_NE(base->layers()[0].q.weight, nullptr);
  // A fresh view computes the original's logits.
  std::vector<float> a, b;
  const std::vector<int> tokens = random_windows(1, 16, 300, 3)[0];
  Session sa(base);
  ASSERT_TRUE(sa.forward(tokens, true, &a).ok());
  Result<std::shared_ptr<Model>> fresh = make_editable_view(base);
  ASSERT_TRUE(fresh.ok());
  Session sb(*fresh);
  ASSERT_TRUE(sb.forward(tokens, true, &b).ok());
  EXPECT_EQ(a, b);
}

TEST(GptqDriver, QuantizesExactlyTheTargets) {
  auto model = tiny_model();
  const TokenWindows windows = random_windows(6, 24, 300, 1);
  const auto targets = all_linears(*model, spec_of("int4g32"));
  ASSERT_EQ(targets.size(), 14u);
  std::vector<int> done_seen;
  GptqModelOptions options;
  Result<GptqModelResult> r = gptq_quantize_model(model, targets, windows, options,
                                                  [&](int block, const std::string& name, int done, int total) {
                                                    EXPECT_EQ(total, 14);
                                                    EXPECT_NE(name.find("model.layers." + std::to_string(block)), std::string::npos);
                                                    done_seen.push_back(done);
                                                  });
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->quantized.size(), 14u);
  EXPECT_EQ(r->layers.size(), 14u);
  EXPECT_EQ(done_seen.size(), 14u);
  for (size_t i = 0; i < done_seen.size(); ++i) EXPECT_EQ(done_seen[i], int(i) + 1);
  for (const LayerWeights& layer : model->layers())
    for (const Linear* l : layer.linears()) {
      auto it = r->quantized.find(l->name);
      ASSERT_NE(it, r->quantized.end()) << l->name;
      EXPECT_EQ(it->second->spec, spec_of("int4g32"));
      EXPECT_EQ(it->second->rows, l->out_features);
      EXPECT_EQ(it->second->cols, l->in_features);
      EXPECT_TRUE(validate_matrix(*it->second).ok());
      // The input model is untouched.
      EXPECT_FALSE(l->is_quantized());
      EXPECT_NE(l->weight, nullptr);
    }
  for (const GptqLayerReport& layer : r->layers) {
    EXPECT_GT(layer.proxy_loss, 0.0) << layer.name;
    EXPECT_EQ(layer.hessian_tokens, 6 * 24);
    EXPECT_EQ(layer.percdamp_used, 0.01);
  }
  // True-sequential order within a block: q k v, o, gate up, down.
  EXPECT_EQ(r->layers[3].name, tn::layer(0, tn::kO));
  EXPECT_EQ(r->layers[6].name, tn::layer(0, tn::kDown));
}

TEST(GptqDriver, LeavesUntargetedTensorsAlone) {
  auto model = tiny_model();
  const TokenWindows windows = random_windows(4, 16, 300, 2);
  const std::vector<std::pair<std::string, FormatSpec>> targets = {{tn::layer(1, tn::kDown), spec_of("int3")},
                                                                    {tn::layer(0, tn::kK), spec_of("int8g64")}};
  Result<GptqModelResult> r = run(model, targets, windows, true);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->quantized.size(), 2u);
  EXPECT_EQ(r->quantized.at(tn::layer(1, tn::kDown))->spec, spec_of("int3"));
  EXPECT_EQ(r->quantized.at(tn::layer(0, tn::kK))->spec, spec_of("int8g64"));
  // Nothing targeted: nothing done.
  Result<GptqModelResult> none = run(model, {}, windows, true);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->quantized.empty());
}

// The driver's Hessians are the ones a plain hook sees: block 0 from the FP embeddings, block 1
// from the output of the already-quantized block 0. Same Hessian, same GPTQ result, bit for bit.
TEST(GptqDriver, PropagatesThroughQuantizedBlocks) {
  auto model = tiny_model(5);
  const TokenWindows windows = random_windows(5, 20, 300, 6);
  const FormatSpec spec = spec_of("int3g32");
  Result<GptqModelResult> r = run(model, all_linears(*model, spec), windows, true);
  ASSERT_TRUE(r.ok()) << r.status().message();

  auto check = [&](std::shared_ptr<const Model> seen, int block, int index) {
    const Linear* l = model->layers()[size_t(block)].linears()[size_t(index)];
    const std::vector<double> h = captured_hessian(seen, block, index, windows);
    const std::vector<float> w(l->weight, l->weight + size_t(l->out_features) * l->in_features);
    Result<GptqResult> expected = gptq_quantize(w, l->out_features, l->in_features, spec, h);
    ASSERT_TRUE(expected.ok());
    EXPECT_EQ(expected->matrix.codes, r->quantized.at(l->name)->codes) << l->name;
  };
  // Block 0's q sees the FP model; its down sees q/k/v/o/gate/up quantized.
  check(model, 0, 0);
  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> before_down = r->quantized;
  before_down.erase(tn::layer(0, tn::kDown));
  for (int i = 0; i < 7; ++i) before_down.erase(model->layers()[1].linears()[size_t(i)]->name);
  check(with_quantized(model, before_down), 0, 6);
  // Block 1's q sees all of block 0 quantized.
  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> block0 = before_down;
  block0[tn::layer(0, tn::kDown)] = r->quantized.at(tn::layer(0, tn::kDown));
  check(with_quantized(model, block0), 1, 0);
}

// Every input row of linear `layer_index` of block `block` over `windows`, in order, from a plain
// Session over `model`.
std::vector<float> captured_inputs(std::shared_ptr<const Model> model, int block, int layer_index,
                                   const TokenWindows& windows) {
  const Linear* target = model->layers()[size_t(block)].linears()[size_t(layer_index)];
  std::vector<float> rows;
  Session session(model);
  session.set_linear_hook([&](const LinearInput& in) {
    if (in.linear == target) rows.insert(rows.end(), in.x, in.x + size_t(in.n_tokens) * in.linear->in_features);
  });
  std::vector<float> logits;
  for (const auto& w : windows) {
    session.reset();
    EXPECT_TRUE(session.forward(w, false, &logits).ok());
  }
  return rows;
}

// Asymmetric calibration: where nothing before a layer is quantized it changes nothing; after
// coarse q/k/v, an int8 o_proj fit to the original outputs lands closer to them than symmetric
// GPTQ's, and closer even than the unquantized o_proj (it corrects the q/k/v error).
TEST(GptqDriver, AsymmetricFitsTheOriginalModelsOutputs) {
  auto model = tiny_model(11);
  const TokenWindows windows = random_windows(6, 24, 300, 12);
  std::vector<std::pair<std::string, FormatSpec>> targets;
  for (const char* name : {tn::kQ, tn::kK, tn::kV}) targets.emplace_back(tn::layer(0, name), spec_of("int2"));
  targets.emplace_back(tn::layer(0, tn::kO), spec_of("int8"));
  GptqModelOptions options;
  Result<GptqModelResult> symmetric = gptq_quantize_model(model, targets, windows, options);
  options.asymmetric_calibration = true;
  Result<GptqModelResult> asymmetric = gptq_quantize_model(model, targets, windows, options);
  ASSERT_TRUE(symmetric.ok() && asymmetric.ok()) << asymmetric.status().message();
  for (const char* name : {tn::kQ, tn::kK, tn::kV})
    EXPECT_EQ(symmetric->quantized.at(tn::layer(0, name))->codes, asymmetric->quantized.at(tn::layer(0, name))->codes);
  // The original model's stream is held beside the quantized one's.
  EXPECT_EQ(asymmetric->activation_bytes, 2 * symmetric->activation_bytes);

  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> qkv = symmetric->quantized;
  qkv.erase(tn::layer(0, tn::kO));
  const std::vector<float> x_ref = captured_inputs(model, 0, 3, windows);
  const std::vector<float> x_q = captured_inputs(with_quantized(model, qkv), 0, 3, windows);
  ASSERT_EQ(x_ref.size(), x_q.size());
  const Linear* o = model->layers()[0].linears()[3];
  const std::vector<float> w(o->weight, o->weight + size_t(o->out_features) * o->in_features);
  const int64_t rows = o->out_features, cols = o->in_features;
  const double gap_fp = testing::asymmetric_objective(w, w, x_ref, x_q, rows, cols);
  const double gap_sym =
      testing::asymmetric_objective(dequantize(*symmetric->quantized.at(o->name)), w, x_ref, x_q, rows, cols);
  const double gap_asym =
      testing::asymmetric_objective(dequantize(*asymmetric->quantized.at(o->name)), w, x_ref, x_q, rows, cols);
  std::printf("o_proj output gap to the original: fp weights %.6g, symmetric GPTQ %.6g, asymmetric %.6g\n", gap_fp,
              gap_sym, gap_asym);
  EXPECT_LT(gap_asym, gap_sym);
  EXPECT_LT(gap_asym, gap_fp);
}

TEST(GptqDriver, TrueSequentialAndAllAtOnceBothRun) {
  auto model = tiny_model(7);
  const TokenWindows windows = random_windows(4, 32, 300, 8);
  const auto targets = all_linears(*model, spec_of("int3"));
  Result<GptqModelResult> sequential = run(model, targets, windows, true);
  Result<GptqModelResult> at_once = run(model, targets, windows, false);
  ASSERT_TRUE(sequential.ok() && at_once.ok());
  EXPECT_EQ(at_once->quantized.size(), 14u);
  // q/k/v of block 0 see the same embeddings either way; o sees quantized q/k/v only in the
  // true-sequential run.
  for (const char* name : {tn::kQ, tn::kK, tn::kV})
    EXPECT_EQ(sequential->quantized.at(tn::layer(0, name))->codes, at_once->quantized.at(tn::layer(0, name))->codes);
  EXPECT_NE(sequential->quantized.at(tn::layer(0, tn::kO))->codes, at_once->quantized.at(tn::layer(0, tn::kO))->codes);

  // Memory: activations are the residual stream of all windows; Hessians are one stage's (at most
  // one block's four distinct inputs), fp64.
  const ModelConfig& c = model->config();
  const int64_t tokens = 4 * 32;
  EXPECT_EQ(sequential->activation_bytes, tokens * c.dim * int64_t(sizeof(float)));
  const int64_t d = c.dim, h = c.hidden_dim, q = c.q_dim();
  const int64_t one_block = (d * d + q * q + d * d + h * h) * int64_t(sizeof(double));
  EXPECT_LE(at_once->peak_hessian_bytes, one_block + 4 * 512 * d * int64_t(sizeof(double)));
  EXPECT_GE(at_once->peak_hessian_bytes, one_block);
  const int64_t largest_stage = std::max({d * d, q * q, h * h}) * int64_t(sizeof(double));
  EXPECT_GE(sequential->peak_hessian_bytes, largest_stage);
  EXPECT_LT(sequential->peak_hessian_bytes, one_block);
}

// Windows run on several threads and their Hessian contributions are summed in window order, so
// the thread count changes nothing but BLAS's own blocking (the last bits of sums).
TEST(GptqDriver, ResultDoesNotDependOnThreadCount) {
  auto model = tiny_model(9);
  const TokenWindows windows = random_windows(5, 16, 300, 10);
  const auto targets = all_linears(*model, spec_of("int4g32"));
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  Result<GptqModelResult> one = run(model, targets, windows, true);
  omp_set_num_threads(3);
  Result<GptqModelResult> three = run(model, targets, windows, true);
  omp_set_num_threads(threads);
  ASSERT_TRUE(one.ok() && three.ok());
  for (const auto& [name, m] : one->quantized) EXPECT_EQ(m->codes, three->quantized.at(name)->codes) << name;
  // fp32 column loop: each weight's error carries O(cols) roundings.
  for (size_t i = 0; i < one->layers.size(); ++i)
    EXPECT_NEAR(one->layers[i].proxy_loss, three->layers[i].proxy_loss,
                one->layers[i].proxy_loss * 172 * std::numeric_limits<float>::epsilon());
}

TEST(GptqDriver, RejectsBadTargetsAndWindows) {
  auto model = tiny_model();
  const TokenWindows windows = random_windows(2, 8, 300, 9);
  const FormatSpec int4 = spec_of("int4");
  EXPECT_EQ(run(model, {{"model.layers.0.mlp.nope.weight", int4}}, windows, true).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(run(model, {{tn::embed(), int4}}, windows, true).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(run(model, {{tn::layer(0, tn::kQ), int4}, {tn::layer(0, tn::kQ), int4}}, windows, true).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(run(model, {{tn::layer(0, tn::kQ), spec_of("f16")}}, windows, true).status().code(),
            ErrorCode::kInvalidArgument);
  const std::vector<std::pair<std::string, FormatSpec>> q0 = {{tn::layer(0, tn::kQ), int4}};
  EXPECT_EQ(run(model, q0, {}, true).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(run(model, q0, {{1, 2, 300}}, true).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(run(model, q0, {std::vector<int>(129, 1)}, true).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(run(model, q0, {{}}, true).status().code(), ErrorCode::kInvalidArgument);
}

// A layer GPTQ cannot quantize fails the run with the layer's name in the message.
TEST(GptqDriver, FailureNamesTheLayer) {
  Checkpoint ckpt = make_random_checkpoint(tiny_test_config(), 3);
  // Replace block 1's up projection by one holding a NaN.
  const std::string name = tn::layer(1, tn::kUp);
  const RawTensor* up = ckpt.tensors.find(name);
  ASSERT_NE(up, nullptr);
  std::vector<uint8_t> bytes(up->data.begin(), up->data.end());
  const float nan = std::nanf("");
  std::memcpy(bytes.data() + 4 * 17, &nan, 4);
  const std::vector<int64_t> shape = up->shape;
  ckpt.tensors = ckpt.tensors.without({name});
  ASSERT_TRUE(ckpt.tensors.add_owned(name, DType::kF32, shape, bytes).ok());
  Result<std::shared_ptr<Model>> model = Model::from_checkpoint(ckpt);
  ASSERT_TRUE(model.ok());
  Result<GptqModelResult> r = run(*model, all_linears(**model, spec_of("int4")), random_windows(2, 8, 300, 4), true);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find(name), std::string::npos) << r.status().message();
}

TEST(CalibrationData, ReadsWindowsFromTokenFile) {
  testing::TempDir dir;
  std::vector<int32_t> tokens(100);
  for (int i = 0; i < 100; ++i) tokens[size_t(i)] = i % 7;
  testing::write_bytes(dir.file("t.bin"), tokens.data(), tokens.size() * 4);
  Result<TokenWindows> w = read_calibration_windows(dir.file("t.bin"), 7, 30);
  ASSERT_TRUE(w.ok()) << w.status().message();
  ASSERT_EQ(w->size(), 3u);  // the 10-token tail is dropped
  EXPECT_EQ((*w)[1][0], 30 % 7);
  EXPECT_EQ((*w)[2].size(), 30u);
  EXPECT_EQ(read_calibration_windows(dir.file("t.bin"), 7, 30, 2)->size(), 2u);
  EXPECT_EQ(read_calibration_windows(dir.file("t.bin"), 6, 30).status().code(), ErrorCode::kFormat);
  EXPECT_EQ(read_calibration_windows(dir.file("t.bin"), 7, 101).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(read_calibration_windows(dir.file("t.bin"), 7, 0).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(read_calibration_windows(dir.file("missing.bin"), 7, 30).ok());
  testing::write_bytes(dir.file("odd.bin"), tokens.data(), 13);
  EXPECT_EQ(read_calibration_windows(dir.file("odd.bin"), 7, 1).status().code(), ErrorCode::kFormat);
}

TEST(CalibrationData, SelfSamplingIsSeeded) {
  auto model = tiny_model();
  SelfCalibrationOptions options;
  options.windows = 3;
  options.length = 20;
  options.seed = 11;
  Result<TokenWindows> a = sample_calibration_windows(model, options);
  Result<TokenWindows> b = sample_calibration_windows(model, options);
  ASSERT_TRUE(a.ok() && b.ok()) << a.status().message();
  EXPECT_EQ(*a, *b);
  ASSERT_EQ(a->size(), 3u);
  const ModelConfig& c = model->config();
  for (const auto& w : *a) {
    ASSERT_EQ(w.size(), 20u);
    EXPECT_EQ(w[0], c.bos_id);
    for (int t : w) {
      EXPECT_GE(t, 0);
      EXPECT_LT(t, c.vocab_size);
      EXPECT_NE(t, c.eos_id);
    }
  }
  EXPECT_NE((*a)[0], (*a)[1]);
  options.seed = 12;
  EXPECT_NE(*sample_calibration_windows(model, options), *a);
  options.length = c.max_seq_len + 1;
  EXPECT_EQ(sample_calibration_windows(model, options).status().code(), ErrorCode::kInvalidArgument);
  // Sampled windows calibrate like any others.
  options.length = 20;
  Result<GptqModelResult> r = run(model, all_linears(*model, spec_of("int4")), *a, true);
  EXPECT_TRUE(r.ok());
}

}  // namespace
}  // namespace lowbit

// GPTQ on a real pretrained model against an independent PyTorch implementation.
//
// stories260K (../shared/models/stories260K; skipped when absent) with the reference protocol of
// its README: asymmetric min/max grid, block 128, dampening 0.01, true-sequential, act-order off,
// all 128 calibration windows of 256 tokens from calib_tokens.bin, inputs propagated through the
// already-quantized blocks; KLD(P_fp32 ‖ P_quantized) over the 64 × 255 scored positions of
// eval_tokens.bin. GPTQ must land within 10% of reference.json's "gptq" figures and below RTN at
// the same format. About 20 s per format on an idle 2-core machine (the block runs dominate).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "calib/calibration_data.h"
#include "calib/gptq_driver.h"
#include "model/forward.h"
#include "quant/rtn.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

// The figures of reference.json for one format: KLD of RTN and of GPTQ without act-order.
struct Reference {
  double rtn_kld = -1;
  double gptq_kld = -1;
};

Reference read_reference(const std::string& dir, int bits, int group) {
  std::ifstream f(dir + "/reference.json");
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  Reference ref;
  if (j.is_discarded()) return ref;
  for (const auto& e : j["rtn"])
    if (e["bits"] == bits && e["group"] == group) ref.rtn_kld = e["kld"].get<double>();
  for (const auto& e : j["gptq"])
    if (e["bits"] == bits && e["group"] == group && e["act_order"] == false) ref.gptq_kld = e["kld"].get<double>();
  return ref;
}

// log-softmax rows of logits [positions, vocab] in double.
std::vector<double> log_probs(const std::vector<float>& logits, int vocab) {
  std::vector<double> out(logits.size());
  for (size_t row = 0; row < logits.size() / size_t(vocab); ++row) {
    const float* l = logits.data() + row * size_t(vocab);
    double mx = l[0];
    for (int i = 1; i < vocab; ++i) mx = std::max(mx, double(l[i]));
    double sum = 0.0;
    for (int i = 0; i < vocab; ++i) sum += std::exp(double(l[i]) - mx);
    const double log_sum = mx + std::log(sum);
    for (int i = 0; i < vocab; ++i) out[row * size_t(vocab) + size_t(i)] = double(l[i]) - log_sum;
  }
  return out;
}

std::vector<float> logits(std::shared_ptr<const Model> model, const std::vector<int>& window) {
  Session session(model, 256);
  std::vector<float> out;
  EXPECT_TRUE(session.forward(window, true, &out).ok());
  return out;
}

// The model, the windows and the FP32 evaluation log-probabilities.
struct Data {
  Checkpoint ckpt;
  std::shared_ptr<const Model> model;
  TokenWindows calib, eval;
  std::vector<std::vector<double>> reference;  // FP32 log-probabilities per eval window
  bool ok = false;
};

Data load_data(const std::string& dir) {
  Data d;
  Result<Checkpoint> ckpt = load_llama2c_checkpoint(dir + "/stories260K.bin", dir + "/tok512.bin");
  if (!ckpt.ok()) return d;
  d.ckpt = *ckpt;
  Result<std::shared_ptr<Model>> model = Model::from_checkpoint(d.ckpt);
  if (!model.ok()) return d;
  d.model = *model;
  const int vocab = d.model->config().vocab_size;
  Result<TokenWindows> calib = read_calibration_windows(dir + "/calib_tokens.bin", vocab, 256);
  Result<TokenWindows> eval = read_calibration_windows(dir + "/eval_tokens.bin", vocab, 256);
  if (!calib.ok() || !eval.ok()) return d;
  d.calib = *calib;
  d.eval = *eval;
  for (const auto& w : d.eval) d.reference.push_back(log_probs(logits(d.model, w), vocab));
  d.ok = true;
  return d;
}

class Stories260kGptq : public ::testing::Test {
 protected:
  // Loaded once per process and shared by the formats.
  void load(const std::string& dir) {
    static const Data data = load_data(dir);
    ASSERT_TRUE(data.ok) << "cannot load stories260K from " << dir;
    ASSERT_EQ(data.calib.size(), 128u);
    ASSERT_EQ(data.eval.size(), 64u);
    ckpt_ = data.ckpt;
    model_ = data.model;
    calib_ = data.calib;
    eval_ = data.eval;
    reference_ = &data.reference;
  }

  // Mean KL(P_fp32 ‖ P_q) over positions 0..254 of every evaluation window.
  double kld(const std::map<std::string, std::shared_ptr<const QuantizedMatrix>>& quantized) {
    Checkpoint ckpt = ckpt_;
    std::vector<std::string> names;
    for (const auto& [name, m] : quantized) names.push_back(name);
    ckpt.tensors = ckpt.tensors.without(names);
    ckpt.quantized = quantized;
    Result<std::shared_ptr<Model>> model = Model::from_checkpoint(ckpt);
    EXPECT_TRUE(model.ok()) << model.status().message();
    const int vocab = model_->config().vocab_size;
    double total = 0.0;
    int64_t positions = 0;
    for (size_t w = 0; w < eval_.size(); ++w) {
      const std::vector<double> q = log_probs(logits(*model, eval_[w]), vocab);
      const std::vector<double>& p = (*reference_)[w];
      for (int t = 0; t < 255; ++t, ++positions) {
        for (int i = 0; i < vocab; ++i) {
          const size_t k = size_t(t) * size_t(vocab) + size_t(i);
          total += std::exp(p[k]) * (p[k] - q[k]);
        }
      }
    }
    return total / double(positions);
  }

  std::vector<std::pair<std::string, FormatSpec>> targets(const FormatSpec& spec) const {
    std::vector<std::pair<std::string, FormatSpec>> t;
    for (const LayerWeights& layer : model_->layers())
      for (const Linear* l : layer.linears()) t.emplace_back(l->name, spec);
    return t;
  }

  std::map<std::string, std::shared_ptr<const QuantizedMatrix>> rtn(const FormatSpec& spec) const {
    std::map<std::string, std::shared_ptr<const QuantizedMatrix>> out;
    for (const LayerWeights& layer : model_->layers())
      for (const Linear* l : layer.linears()) {
        Result<QuantizedMatrix> q = rtn_quantize(weight_values(*l), l->out_features, l->in_features, spec);
        EXPECT_TRUE(q.ok());
        out[l->name] = std::make_shared<const QuantizedMatrix>(std::move(*q));
      }
    return out;
  }

  Checkpoint ckpt_;
  std::shared_ptr<const Model> model_;
  TokenWindows calib_, eval_;
  const std::vector<std::vector<double>>* reference_ = nullptr;
};

struct Case {
  const char* format;
  int bits;
  int group;  // -1 = per channel, as reference.json writes it
};

class Stories260kGptqFormats : public Stories260kGptq, public ::testing::WithParamInterface<Case> {};

TEST_P(Stories260kGptqFormats, KldWithinTenPercentOfReferenceAndBelowRtn) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  const Case& c = GetParam();
  const Reference ref = read_reference(dir, c.bits, c.group);
  ASSERT_GT(ref.gptq_kld, 0.0) << "reference.json has no entry for " << c.format;
  ASSERT_GT(ref.rtn_kld, 0.0);
  load(dir);
  const FormatSpec spec = *parse_format_spec(c.format);
  GptqModelOptions options;  // block 128, damp 0.01, true-sequential, no act-order
  Result<GptqModelResult> r = gptq_quantize_model(model_, targets(spec), calib_, options);
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->quantized.size(), 35u);
  const double gptq_kld = kld(r->quantized);
  const double rtn_kld = kld(rtn(spec));
  std::printf("stories260K %-8s GPTQ KLD %.5f (reference %.5f, %+.1f%%)  RTN KLD %.5f (reference %.5f)  "
              "GPTQ %.2f s (Hessian runs %.2f s, algorithm %.2f s, propagation %.2f s)\n",
              c.format, gptq_kld, ref.gptq_kld, 100.0 * (gptq_kld / ref.gptq_kld - 1.0), rtn_kld, ref.rtn_kld,
              r->total_seconds, r->hessian_forward_seconds, r->quantize_seconds, r->propagate_seconds);
  EXPECT_NEAR(gptq_kld, ref.gptq_kld, 0.10 * ref.gptq_kld);
  EXPECT_LT(gptq_kld, rtn_kld);
  // Our RTN is the reference's RTN (same grid): a check on this test's KLD arithmetic and on the
  // model, so a GPTQ miss is GPTQ's.
  EXPECT_NEAR(rtn_kld, ref.rtn_kld, 0.02 * ref.rtn_kld);
}

// Asymmetric calibration (gptq_driver.h) on real weights: each layer also corrects the error the
// layers before it left in its input. int3 per channel, same protocol as above.
TEST_F(Stories260kGptq, AsymmetricCalibrationLowersKld) {
  LOWBIT_REQUIRE_STORIES260K(dir);
  load(dir);
  const FormatSpec spec = *parse_format_spec("int3");
  GptqModelOptions options;
  Result<GptqModelResult> symmetric = gptq_quantize_model(model_, targets(spec), calib_, options);
  options.asymmetric_calibration = true;
  Result<GptqModelResult> asymmetric = gptq_quantize_model(model_, targets(spec), calib_, options);
  ASSERT_TRUE(symmetric.ok() && asymmetric.ok()) << asymmetric.status().message();
  const double kld_symmetric = kld(symmetric->quantized), kld_asymmetric = kld(asymmetric->quantized);
  std::printf("stories260K int3 GPTQ KLD: symmetric %.5f, asymmetric %.5f (%+.1f%%), %.2f s vs %.2f s\n",
              kld_symmetric, kld_asymmetric, 100.0 * (kld_asymmetric / kld_symmetric - 1.0), symmetric->total_seconds,
              asymmetric->total_seconds);
  // Measured -25% to -31% over int2-int4 formats (docs/results.md); a fifth is a floor well clear
  // of run-to-run rounding.
  EXPECT_LT(kld_asymmetric, 0.8 * kld_symmetric);
}

// Both bit widths, both parameter layouts (one scale per row; groups refit during the column
// loop). int4 per channel and int3g32 behave alike (within 1% of the reference when last run) and
// are left out to keep the suite near a minute.
INSTANTIATE_TEST_SUITE_P(ReferenceProtocol, Stories260kGptqFormats,
                         ::testing::Values(Case{"int4g32", 4, 32}, Case{"int3", 3, -1}),
                         [](const ::testing::TestParamInfo<Case>& info) { return std::string(info.param.format); });

}  // namespace
}  // namespace lowbit

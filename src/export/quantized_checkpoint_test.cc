#include "export/quantized_checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "calib/quantize_checkpoint.h"
#include "io/safetensors.h"
#include "model/forward.h"
#include "model/synthetic.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;

Checkpoint quantized(const Checkpoint& ck, const std::string& spec) {
  Plan plan = *resolve_plan(uniform_recipe(*parse_format_spec(spec), "rtn"), quantizable_tensors(ck.config));
  auto w = rtn_quantize_plan(ck, plan, RtnOptions{});
  EXPECT_TRUE(w.ok()) << w.status().message();
  return with_quantized_weights(ck, *w);
}

std::vector<float> logits(const Checkpoint& ck) {
  auto m = Model::from_checkpoint(ck);
  EXPECT_TRUE(m.ok()) << m.status().message();
  Session s(*m);
  std::vector<float> out;
  std::vector<int> tokens = {1, 17, 42, 99, 5, 250};
  EXPECT_TRUE(s.forward(tokens, true, &out).ok());
  return out;
}

nlohmann::json read_config(const std::string& dir) {
  auto bytes = testing::read_bytes(dir + "/config.json");
  return nlohmann::json::parse(std::string(bytes.begin(), bytes.end()));
}

void expect_same_logits(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  double scale = 0, err = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, double(std::abs(a[i])));
    err = std::max(err, double(std::abs(a[i] - b[i])));
  }
  // Same codes and parameters; the reload only reorders q/k rows (rotate-half RoPE), which
  // changes fp32 summation order: rounding-level differences.
  EXPECT_LE(err, scale * 1e-5);
}

TEST(QuantizedCheckpoint, GptqConventionWhenShapesFit) {
  testing::TempDir dir;
  ModelConfig c = tiny_test_config();
  c.hidden_dim = 128;  // every in/out size a multiple of 32
  Checkpoint q = quantized(make_random_checkpoint(c, 4), "int4g32");
  ASSERT_TRUE(save_quantized_checkpoint(dir.file("out"), q, QuantizedSaveOptions{}).ok());
  auto config = read_config(dir.file("out"));
  const auto& qc = config["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "gptq");
  EXPECT_EQ(qc["bits"], 4);
  EXPECT_EQ(qc["group_size"], 32);
  EXPECT_EQ(qc["sym"], false);
  EXPECT_EQ(qc["desc_act"], false);
  auto st = read_safetensors(dir.file("out/model.safetensors"));
  ASSERT_TRUE(st.ok());
  const RawTensor* qweight = st->find("model.layers.0.mlp.down_proj.qweight");
  ASSERT_NE(qweight, nullptr);
  EXPECT_EQ(qweight->dtype, DType::kI32);
  EXPECT_EQ(qweight->shape, (std::vector<int64_t>{128 / 8, 64}));  // [in * bits / 32, out]
  EXPECT_NE(st->find("model.layers.0.mlp.down_proj.scales"), nullptr);
  EXPECT_EQ(st->find("model.layers.0.mlp.down_proj.weight"), nullptr);

  auto back = load_checkpoint(dir.file("out"));
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->quantized.size(), 7u * c.n_layers);
  // Codes of a projection without RoPE permutation come back identical.
  const std::string down = "model.layers.1.mlp.down_proj.weight";
  EXPECT_EQ(back->quantized.at(down)->codes, q.quantized.at(down)->codes);
  expect_same_logits(logits(*back), logits(q));
}

TEST(QuantizedCheckpoint, SymmetricGptqStoresTheConventionalZeroPoint) {
  testing::TempDir dir;
  ModelConfig c = tiny_test_config();
  c.hidden_dim = 128;
  Checkpoint q = quantized(make_random_checkpoint(c, 4), "int4g32_sym");
  ASSERT_TRUE(save_quantized_checkpoint(dir.file("out"), q, QuantizedSaveOptions{}).ok());
  EXPECT_EQ(read_config(dir.file("out"))["quantization_config"]["checkpoint_format"], "gptq");
  auto st = read_safetensors(dir.file("out/model.safetensors"));
  ASSERT_TRUE(st.ok());
  const RawTensor* qzeros = st->find("model.layers.0.self_attn.o_proj.qzeros");
  ASSERT_NE(qzeros, nullptr);
  uint32_t word;
  std::memcpy(&word, qzeros->data.data(), 4);
  EXPECT_EQ(word, 0x77777777u);  // zero 8 stored as 8 - 1 in every 4-bit field (v1)
  auto back = load_checkpoint(dir.file("out"));
  ASSERT_TRUE(back.ok()) << back.status().message();
  expect_same_logits(logits(*back), logits(q));
}

TEST(QuantizedCheckpoint, LowbitLayoutForRaggedGroupsAndOtherFormats) {
  for (const char* spec : {"int4g32", "int3", "int2g64_sym", "nf4", "fp8_e4m3", "int8_tensor"}) {
    testing::TempDir dir;
    Checkpoint q = quantized(make_random_checkpoint(tiny_test_config(), 9), spec);  // hidden 172: ragged
    ASSERT_TRUE(save_quantized_checkpoint(dir.file("out"), q, QuantizedSaveOptions{}).ok()) << spec;
    auto config = read_config(dir.file("out"));
    EXPECT_EQ(config["quantization_config"]["quant_method"], "lowbit") << spec;
    auto back = load_checkpoint(dir.file("out"));
    ASSERT_TRUE(back.ok()) << spec << ": " << back.status().message();
    const std::string down = "model.layers.0.mlp.down_proj.weight";
    EXPECT_EQ(back->quantized.at(down)->codes, q.quantized.at(down)->codes) << spec;
    EXPECT_EQ(back->quantized.at(down)->spec, q.quantized.at(down)->spec) << spec;
    expect_same_logits(logits(*back), logits(q));
  }
}

TEST(QuantizedCheckpoint, RefusesExistingOutputAndLeavesNothingOnFailure) {
  testing::TempDir dir;
  Checkpoint q = quantized(make_random_checkpoint(tiny_test_config(), 2), "int8");
  ASSERT_TRUE(save_quantized_checkpoint(dir.file("out"), q, QuantizedSaveOptions{}).ok());
  const auto before = testing::read_bytes(dir.file("out/model.safetensors"));
  EXPECT_EQ(save_quantized_checkpoint(dir.file("out"), q, QuantizedSaveOptions{}).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(testing::read_bytes(dir.file("out/model.safetensors")), before);
  QuantizedSaveOptions force;
  force.overwrite = true;
  EXPECT_TRUE(save_quantized_checkpoint(dir.file("out"), q, force).ok());
  EXPECT_EQ(save_quantized_checkpoint(dir.file("missing/out"), q, force).code(), ErrorCode::kIo);
  // Only the finished output is left in the directory: no temporary siblings.
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir.path())) ++entries, (void)e;
  EXPECT_EQ(entries, 1);
}

}  // namespace
}  // namespace lowbit

namespace lowbit {
namespace {

TEST(QuantizedCheckpoint, GroupIndexOfActOrderSurvivesBothLayouts) {
  for (int hidden : {172, 128}) {  // lowbit layout (ragged), GPTQ convention
    testing::TempDir dir;
    ModelConfig c = tiny_test_config();
    c.hidden_dim = hidden;
    Checkpoint q = quantized(make_random_checkpoint(c, 3), "int4g32");
    // An explicit g_idx (here the contiguous one) must be written and read back as stored.
    for (auto& [name, m] : q.quantized) {
      auto copy = std::make_shared<QuantizedMatrix>(*m);
      copy->g_idx.resize(size_t(copy->cols));
      for (int64_t i = 0; i < copy->cols; ++i) copy->g_idx[size_t(i)] = int32_t(i / 32);
      m = copy;
    }
    ASSERT_TRUE(save_quantized_checkpoint(dir.file("out"), q, QuantizedSaveOptions{}).ok());
    auto back = load_checkpoint(dir.file("out"));
    ASSERT_TRUE(back.ok()) << back.status().message();
    const std::string down = "model.layers.0.mlp.down_proj.weight";
    // The lowbit layout stores g_idx as is; the GPTQ reader drops a g_idx that is the
    // contiguous one (empty means exactly that), so compare the group of every column.
    const QuantizedMatrix &a = *back->quantized.at(down), &b = *q.quantized.at(down);
    if (hidden == 172) EXPECT_EQ(a.g_idx, b.g_idx);
    for (int64_t col = 0; col < b.cols; ++col)
      ASSERT_EQ(a.group_of(col, a.layout()), b.group_of(col, b.layout())) << hidden << " col " << col;
    expect_same_logits(logits(*back), logits(q));
  }
}

}  // namespace
}  // namespace lowbit

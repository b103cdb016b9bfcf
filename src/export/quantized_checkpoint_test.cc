#include "export/quantized_checkpoint.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <limits>

#include <nlohmann/json.hpp>

#include "calib/quantize_checkpoint.h"
#include "io/safetensors.h"
#include "kernels/kernels.h"
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
  // changes fp32 summation order: rounding-level differences. Where weight-only int4 runs on the
  // int8 kernels as two int8 slices (kernels/packed_matmul.h), each input of a product is carried
  // to within 1/64516 of its 32-input block's max, and a rounding-level change of an input can
  // move that representation anywhere within it: the two runs may then differ by about 2/64516
  // (3.1e-5) of the inputs' scale per product (measured up to 4.4e-5 of the largest logit here).
  const bool sliced = kernels::kernels().weight_only_int8_slices;
  EXPECT_LE(err, scale * (sliced ? 3e-4 : 1e-5));
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

// On shapes the GPTQ convention takes (hidden 128, groups of 32): int4g32_sym stores the
// conventional zero point; a midrise zero point (7.5 at 4 bits) has no GPTQ encoding, so
// int4g32_midrise goes to lowbit's layout and its zero comes back from the spec.
TEST(QuantizedCheckpoint, SymmetricZeroPointsOnGptqShapes) {
  for (const char* spec : {"int4g32_sym", "int4g32_midrise"}) {
    const bool midrise = std::string(spec).ends_with("midrise");
    testing::TempDir dir;
    ModelConfig c = tiny_test_config();
    c.hidden_dim = 128;
    Checkpoint q = quantized(make_random_checkpoint(c, 4), spec);
    ASSERT_TRUE(save_quantized_checkpoint(dir.file("out"), q, QuantizedSaveOptions{}).ok());
    const auto quantization = read_config(dir.file("out"))["quantization_config"];
    auto back = load_checkpoint(dir.file("out"));
    ASSERT_TRUE(back.ok()) << back.status().message();
    expect_same_logits(logits(*back), logits(q));
    const std::string o = "model.layers.0.self_attn.o_proj";
    if (midrise) {
      EXPECT_EQ(quantization["quant_method"], "lowbit");
      EXPECT_EQ(back->quantized.at(o + ".weight")->params[0].zero, 7.5f);
      EXPECT_EQ(back->quantized.at(o + ".weight")->codes, q.quantized.at(o + ".weight")->codes);
      continue;
    }
    EXPECT_EQ(quantization["checkpoint_format"], "gptq");
    auto st = read_safetensors(dir.file("out/model.safetensors"));
    ASSERT_TRUE(st.ok());
    const RawTensor* qzeros = st->find(o + ".qzeros");
    ASSERT_NE(qzeros, nullptr);
    uint32_t word;
    std::memcpy(&word, qzeros->data.data(), 4);
    EXPECT_EQ(word, 0x77777777u);  // zero 8 stored as 8 - 1 in every 4-bit field (v1)
  }
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
    if (hidden == 172) {
      EXPECT_EQ(a.g_idx, b.g_idx);
    }
    for (int64_t col = 0; col < b.cols; ++col)
      ASSERT_EQ(a.group_of(col, a.layout()), b.group_of(col, b.layout())) << hidden << " col " << col;
    expect_same_logits(logits(*back), logits(q));
  }
}

// Double-quantized weights (_dq) through the checkpoint directory: always the lowbit layout (the
// GPTQ convention has no super-scale), stored in exactly format_bytes, read back bit for bit, and
// damaged fields refused with one line naming the file.

Checkpoint quantized_with_clip(const Checkpoint& ck, const std::string& spec) {
  Plan plan = *resolve_plan(uniform_recipe(*parse_format_spec(spec), "rtn"), quantizable_tensors(ck.config));
  RtnOptions options;
  options.clip = kDefaultClipSearch;  // scales below the grid's top, chosen on the grid
  auto w = rtn_quantize_plan(ck, plan, options);
  EXPECT_TRUE(w.ok()) << w.status().message();
  return with_quantized_weights(ck, *w);
}

// Exact equality of everything a double-quantized matrix holds (q/k rows come back permuted to
// rotate-half order, so those are compared as sets of parameter values only through logits).
void expect_identical(const QuantizedMatrix& a, const QuantizedMatrix& b, const std::string& what) {
  EXPECT_EQ(a.spec, b.spec) << what;
  EXPECT_EQ(a.codes, b.codes) << what;
  EXPECT_EQ(a.super_scale, b.super_scale) << what;
  ASSERT_EQ(a.params.size(), b.params.size()) << what;
  for (size_t i = 0; i < a.params.size(); ++i) {
    EXPECT_EQ(a.params[i].scale, b.params[i].scale) << what << " " << i;
    EXPECT_EQ(a.params[i].zero, b.params[i].zero) << what << " " << i;
  }
}

TEST(DoubleQuantCheckpoint, RoundTripIsBitExactAndStoresFormatBytes) {
  // hidden 172: ragged g32 groups and 172*3-bit zero streams with padding; hidden 128: shapes
  // the GPTQ convention would take for int4g32, which a _dq format must not use.
  for (auto [spec, hidden] : {std::pair<const char*, int64_t>{"int3_dq", 172}, {"int3_sym_dq", 172},
                              {"int2g32_dq", 172}, {"int4g32_dq", 128}, {"int8_tensor_dq", 172},
                              {"int3_dq4", 172}, {"int2g32_sym_dq4", 172}, {"int3_midrise_dq4", 172},
                              {"int2g32_midrise_dq4", 172}}) {
    testing::TempDir dir;
    ModelConfig c = tiny_test_config();
    c.hidden_dim = hidden;
    const Checkpoint q = quantized_with_clip(make_random_checkpoint(c, 4), spec);
    ASSERT_TRUE(save_quantized_checkpoint(dir.file("out"), q, QuantizedSaveOptions{}).ok()) << spec;
    const auto config = nlohmann::json::parse(testing::read_bytes(dir.file("out/config.json")));
    EXPECT_EQ(config["quantization_config"]["quant_method"], "lowbit") << spec;

    auto st = read_safetensors(dir.file("out/model.safetensors"));
    ASSERT_TRUE(st.ok());
    const std::string down = "model.layers.1.mlp.down_proj";
    const QuantizedMatrix& m = *q.quantized.at(down + ".weight");
    uint64_t stored = 0;
    for (const char* piece : {".lowbit_codes", ".lowbit_scale_codes", ".lowbit_zero_codes", ".lowbit_super_scale"})
      if (const RawTensor* t = st->find(down + piece)) stored += t->data.size();
    EXPECT_EQ(stored, format_bytes(m.spec, m.rows, m.cols)) << spec;
    EXPECT_EQ(st->find(down + ".lowbit_scales"), nullptr) << spec;
    EXPECT_EQ(st->find(down + ".lowbit_scale_codes")->dtype, m.spec.scale_code_bits == 4 ? DType::kI32 : DType::kU8);
    EXPECT_EQ(st->find(down + ".lowbit_zero_codes") != nullptr, m.spec.stores_zero()) << spec;

    auto back = load_checkpoint(dir.file("out"));
    ASSERT_TRUE(back.ok()) << spec << ": " << back.status().message();
    for (const char* name : {"mlp.down_proj", "mlp.up_proj", "self_attn.v_proj", "self_attn.o_proj"})
      for (int layer = 0; layer < c.n_layers; ++layer) {
        const std::string w = "model.layers." + std::to_string(layer) + "." + name + ".weight";
        expect_identical(*back->quantized.at(w), *q.quantized.at(w), std::string(spec) + " " + w);
      }
    expect_same_logits(logits(*back), logits(q));
  }
}

// Rewrites dir/model.safetensors with tensor `name` replaced by `edit` applied to a copy (or
// removed when `edit` is empty).
void rewrite_tensor(const std::string& dir, const std::string& name,
                    const std::function<void(RawTensor&, std::vector<uint8_t>&)>& edit) {
  auto set = read_safetensors(dir + "/model.safetensors");
  ASSERT_TRUE(set.ok()) << set.status().message();
  std::deque<RawTensor> edited;
  std::deque<std::vector<uint8_t>> bytes;
  std::vector<const RawTensor*> list;
  for (const RawTensor& t : set->tensors()) {
    if (t.name != name) {
      list.push_back(&t);
      continue;
    }
    if (!edit) continue;
    edited.push_back(t);
    bytes.emplace_back(t.data.begin(), t.data.end());
    edit(edited.back(), bytes.back());
    edited.back().data = bytes.back();
    list.push_back(&edited.back());
  }
  ASSERT_TRUE(write_safetensors(dir + "/model.safetensors", list, set->metadata()).ok());
}

TEST(DoubleQuantCheckpoint, DamagedFieldsAreRefusedWithOneLineNamingTheFile) {
  testing::TempDir dir;
  const Checkpoint q = quantized_with_clip(make_random_checkpoint(tiny_test_config(), 6), "int3_dq");  // hidden 172
  ASSERT_TRUE(save_quantized_checkpoint(dir.file("good"), q, QuantizedSaveOptions{}).ok());
  const std::string p = "model.layers.0.mlp.down_proj";  // [64, 172]: 64 zeros * 3 bits = 6 words
  auto set_float = [](std::vector<uint8_t>& b, float v) { std::memcpy(b.data(), &v, 4); };
  struct Case {
    const char* what;
    std::string tensor;
    std::function<void(RawTensor&, std::vector<uint8_t>&)> edit;
    std::string fragment;
    ErrorCode code = ErrorCode::kFormat;
  };
  const std::vector<Case> cases = {
      {"NaN super-scale", p + ".lowbit_super_scale",
       [&](RawTensor&, std::vector<uint8_t>& b) { set_float(b, std::numeric_limits<float>::quiet_NaN()); },
       "super-scale"},
      {"zero super-scale", p + ".lowbit_super_scale", [&](RawTensor&, std::vector<uint8_t>& b) { set_float(b, 0.0f); },
       "super-scale"},
      {"huge super-scale", p + ".lowbit_super_scale",
       [&](RawTensor&, std::vector<uint8_t>& b) { set_float(b, 1e30f); }, "super-scale"},
      {"super-scale of two values", p + ".lowbit_super_scale",
       [](RawTensor& t, std::vector<uint8_t>& b) {
         t.shape = {2};
         b.resize(8);
       },
       "super-scale shape"},
      {"scale codes one row short", p + ".lowbit_scale_codes",
       [](RawTensor& t, std::vector<uint8_t>& b) {
         t.shape = {63, 1};
         b.resize(63);
       },
       "scale codes shape"},
      {"scale codes as I8", p + ".lowbit_scale_codes", [](RawTensor& t, std::vector<uint8_t>&) { t.dtype = DType::kI8; },
       "dtype"},
      {"zero words one short", p + ".lowbit_zero_codes",
       [](RawTensor& t, std::vector<uint8_t>& b) {
         t.shape = {5};
         b.resize(20);
       },
       "zero-point words"},
      {"missing super-scale", p + ".lowbit_super_scale", nullptr, "missing tensor", ErrorCode::kNotFound},
  };
  for (const Case& c : cases) {
    testing::TempDir bad;
    std::filesystem::copy(dir.file("good"), bad.file("q"));
    rewrite_tensor(bad.file("q"), c.tensor, c.edit);
    auto r = load_checkpoint(bad.file("q"));
    ASSERT_FALSE(r.ok()) << c.what;
    const std::string message = r.status().message();
    EXPECT_EQ(r.status().code(), c.code) << c.what << ": " << message;
    EXPECT_NE(message.find(bad.file("q")), std::string::npos) << c.what << ": " << message;
    EXPECT_NE(message.find(c.fragment), std::string::npos) << c.what << ": " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << c.what << ": " << message;
  }
  // Padding: the up projection [172, 64] has 172 zeros * 3 bits = 516 bits in 17 words; bit 31 of
  // the last word is padding and must be zero.
  testing::TempDir bad;
  std::filesystem::copy(dir.file("good"), bad.file("q"));
  rewrite_tensor(bad.file("q"), "model.layers.0.mlp.up_proj.lowbit_zero_codes",
                 [](RawTensor&, std::vector<uint8_t>& b) { b[b.size() - 1] |= 0x80; });
  auto r = load_checkpoint(bad.file("q"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("padding"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(bad.file("q")), std::string::npos) << r.status().message();
}

// _dq4: the 4-bit scale codes are one I32 word stream per tensor; a wrong word count, nonzero
// padding after the last code, or byte codes where words belong are refused with one line.
TEST(DoubleQuantCheckpoint, Damaged4BitScaleCodesAreRefused) {
  testing::TempDir dir;
  const Checkpoint q = quantized_with_clip(make_random_checkpoint(tiny_test_config(), 6), "int3_dq4");  // hidden 172
  ASSERT_TRUE(save_quantized_checkpoint(dir.file("good"), q, QuantizedSaveOptions{}).ok());
  // The up projection [172, 64]: 172 scale codes * 4 bits = 688 bits in 22 words; bits 16..31 of
  // the last word are padding.
  const std::string p = "model.layers.0.mlp.up_proj.lowbit_scale_codes";
  struct Case {
    const char* what;
    std::function<void(RawTensor&, std::vector<uint8_t>&)> edit;
    std::string fragment;
  };
  const std::vector<Case> cases = {
      {"one word short",
       [](RawTensor& t, std::vector<uint8_t>& b) {
         t.shape = {21};
         b.resize(84);
       },
       "scale-code words"},
      {"one word too many",
       [](RawTensor& t, std::vector<uint8_t>& b) {
         t.shape = {23};
         b.resize(92, 0);
       },
       "scale-code words"},
      {"nonzero padding", [](RawTensor&, std::vector<uint8_t>& b) { b[b.size() - 1] |= 0x80; }, "padding"},
      {"byte codes instead of words",
       [](RawTensor& t, std::vector<uint8_t>& b) {
         t.dtype = DType::kU8;
         t.shape = {172, 1};
         b.assign(172, 15);
       },
       "dtype"},
      {"2-D words", [](RawTensor& t, std::vector<uint8_t>&) { t.shape = {2, 11}; }, "scale codes shape"},
  };
  for (const Case& c : cases) {
    testing::TempDir bad;
    std::filesystem::copy(dir.file("good"), bad.file("q"));
    rewrite_tensor(bad.file("q"), p, c.edit);
    auto r = load_checkpoint(bad.file("q"));
    ASSERT_FALSE(r.ok()) << c.what;
    const std::string message = r.status().message();
    EXPECT_EQ(r.status().code(), ErrorCode::kFormat) << c.what << ": " << message;
    EXPECT_NE(message.find(bad.file("q")), std::string::npos) << c.what << ": " << message;
    EXPECT_NE(message.find(c.fragment), std::string::npos) << c.what << ": " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << c.what << ": " << message;
  }
}

}  // namespace
}  // namespace lowbit

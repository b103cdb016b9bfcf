// The streaming writer against a reference: the checkpoint written tensor by tensor, in any
// order, is byte for byte the file the whole-model writer produced (all tensors packed into one
// TensorSet, then write_safetensors), including the zero-point convention settled at the end.
#include "export/streaming_writer.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "calib/quantize_checkpoint.h"
#include "io/safetensors.h"
#include "model/float_values.h"
#include "model/quantized_tensors.h"
#include "model/synthetic.h"
#include "testing/testing.h"

namespace lowbit {
namespace {

// The whole-model writer (what save_quantized_checkpoint did before streaming), for a
// rotate-half checkpoint: every tensor into one set, then one write.
void write_reference(const std::string& path, const Checkpoint& ck, DType float_dtype) {
  const QuantizationConfig qc = choose_quantization_config(ck.quantized);
  TensorSet out;
  for (const ExpectedTensor& e : expected_tensors(ck.config)) {
    if (auto q = ck.quantized.find(e.name); q != ck.quantized.end()) {
      ASSERT_TRUE(add_quantized_tensors(e.name, *q->second, qc, out).ok());
    } else {
      const RawTensor& t = *ck.tensors.find(e.name);
      ASSERT_TRUE(out.add_owned(e.name, float_dtype, t.shape, encode_floats(float_values(t), float_dtype)).ok());
    }
  }
  out.metadata()["format"] = "pt";
  out.metadata()["lowbit.quantization"] = qc.layout == QuantizedLayout::kGptq ? "gptq" : "lowbit";
  ASSERT_TRUE(write_safetensors(path, out).ok());
}

struct Case {
  Checkpoint source;             // float checkpoint
  QuantizedWeights weights;      // its quantized weights
  std::vector<QuantizedWeightPlan> plans;
};

Case make_case(const std::string& spec, int hidden) {
  ModelConfig c = tiny_test_config();
  c.rope_style = RopeStyle::kHalf;
  c.hidden_dim = hidden;
  Case k;
  k.source = make_random_checkpoint(c, 9, DType::kF16);
  Plan plan = *resolve_plan(uniform_recipe(*parse_format_spec(spec), "rtn"), quantizable_tensors(c));
  auto w = rtn_quantize_plan(k.source, plan, RtnOptions{});
  EXPECT_TRUE(w.ok());
  k.weights = *w;
  k.plans = quantized_weight_plans(plan.entries, false, false);
  return k;
}

// Writes `k` through the streaming writer, adding weights in reverse order.
std::vector<uint8_t> stream_reversed(const testing::TempDir& dir, const Case& k, DType float_dtype) {
  QuantizedSaveOptions o;
  o.float_dtype = float_dtype;
  auto w = QuantizedCheckpointWriter::create(dir.file("streamed"), k.source, k.plans, o);
  EXPECT_TRUE(w.ok()) << w.status().message();
  std::vector<std::string> names;
  for (const auto& [name, m] : k.weights) names.push_back(name);
  std::reverse(names.begin(), names.end());
  for (const std::string& name : names) EXPECT_TRUE((*w)->add(name, *k.weights.at(name)).ok());
  EXPECT_TRUE((*w)->write_source_tensors().ok());
  Status s = (*w)->commit();
  EXPECT_TRUE(s.ok()) << s.message();
  return testing::read_bytes(dir.file("streamed/model.safetensors"));
}

std::vector<uint8_t> reference(const testing::TempDir& dir, const Case& k, DType float_dtype) {
  write_reference(dir.file("reference.safetensors"), with_quantized_weights(k.source, k.weights), float_dtype);
  return testing::read_bytes(dir.file("reference.safetensors"));
}

TEST(StreamingWriter, OutOfOrderWritesMatchTheWholeModelWriter) {
  // GPTQ convention (hidden 128) and the lowbit layout (ragged groups: hidden 172).
  for (int hidden : {128, 172}) {
    for (DType dtype : {DType::kF32, DType::kF16}) {
      SCOPED_TRACE("hidden " + std::to_string(hidden) + " " + dtype_name(dtype));
      testing::TempDir dir;
      const Case k = make_case("int4g32", hidden);
      const auto streamed = stream_reversed(dir, k, dtype);
      ASSERT_FALSE(streamed.empty());
      EXPECT_TRUE(streamed == reference(dir, k, dtype));
    }
  }
}

TEST(StreamingWriter, AZeroPointOfZeroSwitchesEveryWeightToGptqV2) {
  testing::TempDir dir;
  Case k = make_case("int4g32", 128);
  // Give one weight a zero point of 0. The writer gets the weights in reverse order, so this one
  // comes last: every other weight was already packed as v1 and must be converted.
  auto m = std::make_shared<QuantizedMatrix>(*k.weights.begin()->second);
  m->params[0].zero = 0.0f;
  k.weights.begin()->second = m;
  const auto streamed = stream_reversed(dir, k, DType::kF32);
  EXPECT_TRUE(streamed == reference(dir, k, DType::kF32));
  auto bytes = testing::read_bytes(dir.file("streamed/config.json"));
  auto config = nlohmann::json::parse(std::string(bytes.begin(), bytes.end()));
  EXPECT_EQ(config["quantization_config"]["checkpoint_format"], "gptq_v2");
}

TEST(StreamingWriter, RefusesUnplannedMissingAndMismatchedWeights) {
  testing::TempDir dir;
  const Case k = make_case("int4g32", 128);
  auto w = QuantizedCheckpointWriter::create(dir.file("out"), k.source, k.plans, QuantizedSaveOptions{});
  ASSERT_TRUE(w.ok());
  QuantizedMatrix wrong = *k.weights.begin()->second;
  EXPECT_EQ((*w)->add("model.layers.0.nope.weight", wrong).code(), ErrorCode::kInternal);
  wrong.spec = *parse_format_spec("int8g32");
  EXPECT_EQ((*w)->add(k.weights.begin()->first, wrong).code(), ErrorCode::kInternal);
  ASSERT_TRUE((*w)->write_source_tensors().ok());
  EXPECT_EQ((*w)->commit().code(), ErrorCode::kInternal);  // weights never added
  w->reset();
  EXPECT_FALSE(std::filesystem::exists(dir.file("out")));
  int entries = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) ++entries, (void)e;
  EXPECT_EQ(entries, 0);  // the staging directory went with the writer
}

}  // namespace
}  // namespace lowbit

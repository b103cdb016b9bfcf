// GPTQ over a streamed model (blocks converted as the driver reaches them, results handed to a
// sink) gives exactly the matrices of GPTQ over the fully converted model.
#include "calib/streamed_model.h"

#include <gtest/gtest.h>

#include <random>

#include "calib/gptq_driver.h"
#include "model/synthetic.h"

namespace lowbit {
namespace {

std::vector<std::vector<int>> windows(int count, int length, int vocab) {
  std::mt19937 rng(5);
  std::vector<std::vector<int>> out(size_t(count), std::vector<int>(size_t(length), 0));
  for (auto& w : out)
    for (int& t : w) t = int(rng() % uint32_t(vocab));
  return out;
}

void expect_same(const QuantizedMatrix& a, const QuantizedMatrix& b, const std::string& name) {
  EXPECT_EQ(a.codes, b.codes) << name;
  ASSERT_EQ(a.params.size(), b.params.size()) << name;
  for (size_t i = 0; i < a.params.size(); ++i) {
    EXPECT_EQ(a.params[i].scale, b.params[i].scale) << name << " group " << i;
    EXPECT_EQ(a.params[i].zero, b.params[i].zero) << name << " group " << i;
  }
  EXPECT_EQ(a.g_idx, b.g_idx) << name;
}

TEST(StreamedModel, GptqMatchesTheFullyConvertedModel) {
  for (DType dtype : {DType::kF16, DType::kF32}) {
    for (auto [true_sequential, asymmetric] : {std::pair{false, false}, {true, false}, {true, true}}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + (true_sequential ? " true-sequential" : "") +
                   (asymmetric ? " asymmetric calibration" : ""));
      const ModelConfig c = tiny_test_config();
      const Checkpoint ck = make_random_checkpoint(c, 4, dtype);
      const auto calib = windows(4, 24, c.vocab_size);
      std::vector<std::pair<std::string, FormatSpec>> targets;
      for (int b = 0; b < c.n_layers; ++b)
        for (const char* s : {tensor_names::kQ, tensor_names::kV, tensor_names::kO, tensor_names::kUp, tensor_names::kDown})
          targets.emplace_back(tensor_names::layer(b, s), *parse_format_spec("int4g32"));  // k and gate stay float
      GptqModelOptions options;
      options.true_sequential = true_sequential;
      // Asymmetric: the original model's blocks borrow the working copy's loaded weights.
      options.asymmetric_calibration = asymmetric;
      auto full = gptq_quantize_model(*Model::from_checkpoint(ck), targets, calib, options);
      ASSERT_TRUE(full.ok()) << full.status().message();

      auto streamed = make_streamed_model(ck);
      ASSERT_TRUE(streamed.ok()) << streamed.status().message();
      std::map<std::string, std::shared_ptr<const QuantizedMatrix>> got;
      std::vector<int> loaded, released;
      options.load_block = [&](int b, LayerWeights& l) {
        loaded.push_back(b);
        return streamed->load_block(b, l);
      };
      options.release_block = [&](int b, LayerWeights& l) {
        released.push_back(b);
        return streamed->release_block(b, l);
      };
      options.sink = [&](const std::string& name, std::shared_ptr<const QuantizedMatrix> m) {
        got[name] = std::move(m);
        return Status::Ok();
      };
      auto r = gptq_quantize_model(streamed->model, targets, calib, options);
      ASSERT_TRUE(r.ok()) << r.status().message();
      EXPECT_TRUE(r->quantized.empty());  // everything went to the sink
      EXPECT_EQ(loaded, (std::vector<int>{0, 1}));
      EXPECT_EQ(released, (std::vector<int>{0, 1}));
      ASSERT_EQ(got.size(), full->quantized.size());
      for (const auto& [name, m] : full->quantized) {
        ASSERT_TRUE(got.count(name)) << name;
        expect_same(*m, *got.at(name), name);
      }
    }
  }
}

}  // namespace
}  // namespace lowbit

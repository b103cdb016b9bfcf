// QAT pieces: only the block linears are fake-quantized; the real quantization at the end gives
// exactly the weights the fake-quantized forward used; the teacher's cached distributions are
// normalised; a model has zero KL divergence to itself and a quantized one a positive one.
#include "train/qat.h"

#include <gtest/gtest.h>

#include <cmath>

#include "model/synthetic.h"

namespace lowbit::train {
namespace {

struct Fixture {
  ModelConfig c = tiny_test_config();
  std::shared_ptr<Model> model = Model::from_checkpoint(make_random_checkpoint(c, 3)).value();
  ParamLayout layout = make_param_layout(c).value();
  std::vector<float> params = params_from_model(layout, *model);
  FormatSpec spec = parse_format_spec("int2g32").value();
};

TEST(Qat, FakeQuantizesOnlyTheBlockLinearsAndMatchesTheFinalQuantization) {
  Fixture f;
  std::vector<float> eff;
  ASSERT_TRUE(fake_quantize_params(f.layout, f.spec, f.params, eff).ok());
  auto quantized = quantize_block_linears(f.layout, f.spec, f.params).value();
  EXPECT_EQ(quantized.size(), size_t(7 * f.c.n_layers));
  for (const TensorSlot& s : f.layout.slots) {
    const std::vector<float> before(f.params.begin() + std::ptrdiff_t(s.offset),
                                    f.params.begin() + std::ptrdiff_t(s.offset + s.size));
    const std::vector<float> after(eff.begin() + std::ptrdiff_t(s.offset), eff.begin() + std::ptrdiff_t(s.offset + s.size));
    if (!s.is_block_linear) {
      EXPECT_EQ(before, after) << s.name;
      EXPECT_EQ(quantized.count(s.name), 0u) << s.name;
      continue;
    }
    EXPECT_NE(before, after) << s.name;
    EXPECT_EQ(dequantize(*quantized.at(s.name)), after) << s.name;
  }
}

TEST(Qat, TeacherDistributionsAndKld) {
  Fixture f;
  const int seq = 40;
  std::vector<std::vector<int>> windows(9, std::vector<int>(size_t(seq)));
  for (size_t w = 0; w < windows.size(); ++w)
    for (int t = 0; t < seq; ++t) windows[w][size_t(t)] = int((w * 31 + size_t(t) * 7) % size_t(f.c.vocab_size));
  const std::vector<float> lp = teacher_log_probs(f.layout, f.params, windows, seq);
  ASSERT_EQ(lp.size(), windows.size() * seq * f.c.vocab_size);
  for (size_t r = 0; r < windows.size() * seq; ++r) {
    double s = 0;
    for (int i = 0; i < f.c.vocab_size; ++i) s += std::exp(double(lp[r * f.c.vocab_size + size_t(i)]));
    EXPECT_NEAR(s, 1.0, 1e-5);  // fp32 log-probs of 300 terms
  }
  const std::vector<int> ids = {0, 1, 2};
  EXPECT_NEAR(mean_kld(f.layout, f.params, windows, ids, lp, seq), 0.0, 1e-6);
  std::vector<float> eff;
  ASSERT_TRUE(fake_quantize_params(f.layout, f.spec, f.params, eff).ok());
  EXPECT_GT(mean_kld(f.layout, eff, windows, ids, lp, seq), 1e-3);
  // Nine windows run as a chunk of 8 and a padded chunk of 1: the mean is over exactly the nine.
  std::vector<int> all = {0, 1, 2, 3, 4, 5, 6, 7, 8};
  const double k_all = mean_kld(f.layout, eff, windows, all, lp, seq);
  double k_sum = 0;
  for (int w : all) k_sum += mean_kld(f.layout, eff, windows, {w}, lp, seq);
  EXPECT_NEAR(k_all, k_sum / 9, 1e-5 * k_all);
}

}  // namespace
}  // namespace lowbit::train

// Repacking into kernel layouts is lossless: the reference kernel reads back exactly what
// formats/ dequantize() gives, for every format, granularity and edge shape; weights without a
// kernel layout are refused rather than mis-read.
#include "kernels/packed_weight.h"

#include "base/half.h"
#include "kernels/kernel_test_util.h"

namespace lowbit::kernels {
namespace {

using testing::edge_shapes;
using testing::packable_specs;
using testing::random_matrix;

// The row layouts, and the lane panels that int2 / int3 take for table-lookup gemv (lut).
std::shared_ptr<const PackedWeight> pack(const QuantizedMatrix& m, bool lut) {
  auto p = pack_quantized(m, false, lut);
  const bool lane_panels = lut && (m.spec.id == FormatId::kInt2 || m.spec.id == FormatId::kInt3);
  EXPECT_TRUE(p == nullptr || lane_panels == (p->kind == PackedKind::kQ2L || p->kind == PackedKind::kQ3L));
  return p;
}

TEST(PackQuantized, ReferenceUnpackEqualsDequantize) {
  uint32_t seed = 1;
  for (bool lut : {false, true})
  for (const std::string& spec : packable_specs()) {
    for (const testing::Shape& s : edge_shapes()) {
      const QuantizedMatrix m = random_matrix(spec, s.rows, s.cols, seed++);
      auto packed = pack(m, lut);
      ASSERT_NE(packed, nullptr) << spec << " " << s.rows << "x" << s.cols;
      EXPECT_EQ(packed->k_padded % kBlock, 0);
      EXPECT_EQ(packed->source, &m);
      const std::vector<float> expected = dequantize(m), got = unpack_reference(*packed);
      ASSERT_EQ(got.size(), expected.size());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_EQ(got[i], expected[i]) << spec << " " << s.rows << "x" << s.cols << " at " << i;
    }
  }
}

TEST(PackQuantized, FastDequantIsBitIdentical) {
  uint32_t seed = 100;
  for (Isa isa : testing::fast_isas()) {
    for (bool lut : {false, true})
    for (const std::string& spec : packable_specs()) {
      for (const testing::Shape& s : edge_shapes()) {
        const QuantizedMatrix m = random_matrix(spec, s.rows, s.cols, seed++);
        auto p = pack(m, lut);
        ASSERT_NE(p, nullptr);
        std::vector<float> ref(size_t(p->rows * p->k_padded)), fast(ref.size(), -1.0f);
        dequant_for(kernels_for(Isa::kRef), p->kind)(p->view(), 0, p->rows, ref.data());
        // A row range that does not start at 0 checks the output offset.
        const int64_t r0 = p->rows / 2;
        dequant_for(kernels_for(isa), p->kind)(p->view(), r0, p->rows, fast.data() + r0 * p->k_padded);
        dequant_for(kernels_for(isa), p->kind)(p->view(), 0, r0, fast.data());
        for (size_t i = 0; i < ref.size(); ++i)
          ASSERT_EQ(fast[i], ref[i]) << isa_name(isa) << " " << spec << " " << s.rows << "x" << s.cols << " at " << i;
      }
    }
  }
}

TEST(PackQuantized, EveryFp8AndNf4CodeDecodesExactly) {
  // Every code value, subnormal E4M3 codes included, on every ISA (the NaN codes 0x7F and 0xFF
  // are never produced by the encoder and are left out).
  QuantizedMatrix fp8{testing::spec_of("fp8_e4m3"), 2, 256, std::vector<uint8_t>(512), {{0.75f, 0.0f}, {3e-3f, 0.0f}}};
  QuantizedMatrix nf4{testing::spec_of("nf4g32"), 2, 256, std::vector<uint8_t>(512), std::vector<GroupParams>(16, {0.5f, 0.0f})};
  for (int i = 0; i < 512; ++i) {
    const int code = i % 256;
    fp8.codes[size_t(i)] = uint8_t(code == 0x7f || code == 0xff ? 0 : code);
    nf4.codes[size_t(i)] = uint8_t(code % 16);
  }
  for (const QuantizedMatrix* m : {&fp8, &nf4}) {
    auto p = pack_quantized(*m);
    const std::vector<float> expected = dequantize(*m);
    for (Isa isa : supported_isas()) {
      std::vector<float> got(expected.size());
      dequant_for(kernels_for(isa), p->kind)(p->view(), 0, 2, got.data());
      for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], expected[i]) << isa_name(isa) << " code index " << i;
    }
  }
}

TEST(PackQuantized, RefusesLayoutsWithoutKernels) {
  // A group that is not a multiple of the 32-weight block.
  EXPECT_EQ(pack_quantized(random_matrix("int4g48", 2, 96, 1)), nullptr);
  // Act-order: a permuted g_idx scatters a group's columns.
  QuantizedMatrix m = random_matrix("int4g32", 2, 64, 2);
  m.g_idx.assign(64, 0);
  for (int c = 0; c < 64; ++c) m.g_idx[size_t(c)] = c % 2;
  EXPECT_EQ(pack_quantized(m), nullptr);
  // The identity g_idx is the contiguous layout and is accepted.
  for (int c = 0; c < 64; ++c) m.g_idx[size_t(c)] = c / 32;
  EXPECT_NE(pack_quantized(m), nullptr);
}

TEST(PackDense, HalfPrecisionRoundTrips) {
  const std::vector<float> w = testing::random_values(5 * 70, 3);
  for (PackedKind kind : {PackedKind::kF16, PackedKind::kBF16}) {
    auto p = pack_dense(w.data(), 5, 70, kind);
    const std::vector<float> back = unpack_reference(*p);
    for (size_t i = 0; i < w.size(); ++i) {
      const float expected = kind == PackedKind::kF16 ? fp16_to_f32(f32_to_fp16(w[i])) : bf16_to_f32(f32_to_bf16(w[i]));
      ASSERT_EQ(back[i], expected);
    }
  }
}

TEST(PackQuantized, BytesCountCodesAndParameters) {
  const QuantizedMatrix m = random_matrix("int4g128", 4, 4096, 5);
  auto p = pack_quantized(m);
  // 4 bits per weight plus an fp32 scale and zero per group of 128.
  EXPECT_EQ(p->bytes(), uint64_t(4 * 4096 / 2 + 4 * 32 * 8));
  EXPECT_TRUE(supports_qd8(*p));
  EXPECT_FALSE(supports_qd8(*pack_quantized(random_matrix("nf4", 2, 64, 6))));
  // Lane panels: 17 rows take two panels of 16; no qd8 kernel reads them.
  const QuantizedMatrix m2 = random_matrix("int2g128", 17, 256, 7), m3 = random_matrix("int3", 17, 256, 8);
  auto p2 = pack_quantized(m2, false, true), p3 = pack_quantized(m3, false, true);
  EXPECT_EQ(p2->bytes(), uint64_t(32 * 256 / 4 + 32 * 2 * 8));
  EXPECT_EQ(p3->bytes(), uint64_t(32 * 256 * 3 / 8 + 32 * 1 * 8));
  EXPECT_FALSE(supports_qd8(*p2));
  EXPECT_FALSE(supports_qd8(*p3));
}

}  // namespace
}  // namespace lowbit::kernels

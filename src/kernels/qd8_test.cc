// Dynamic int8 activations (W8A8, W4A8, W3A8, W2A8): the quantizer and the int8 x int8 -> int32
// group dot products of every ISA against the scalar reference.
//
// Exactness: with power-of-two scales and magnitudes kept below 2^23 units of the smallest scale,
// every fp32 operation after the integer dot products is exact, so any ISA's output must equal
// the reference's bit for bit: an int32 accumulator that is off by one shows up as a mismatch.
// Each test states and checks that precondition. Realistic data is then compared with a
// tolerance derived from the magnitudes.
#include <algorithm>
#include <cmath>

#include "kernels/kernel_test_util.h"
#include "kernels/packed_matmul.h"

namespace lowbit::kernels {
namespace {

using testing::random_values;

struct Activations {
  int64_t tokens = 0, k_padded = 0, groups = 0;
  std::vector<int8_t> values;
  std::vector<float> scales;
  std::vector<int32_t> sums;
  std::vector<float> corrections;
  QuantizedActivationsView view() const {
    return {tokens, k_padded, groups, values.data(), scales.data(), sums.data(), corrections.data()};
  }
  int64_t blocks() const { return k_padded / kBlock; }
  // Block sums and group corrections from values and scales, for weights of group_size inputs.
  void finish(int64_t group_size) {
    sums.assign(size_t(tokens * blocks()), 0);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t k = 0; k < k_padded; ++k) sums[size_t(t * blocks() + k / kBlock)] += values[size_t(t * k_padded + k)];
    corrections.assign(size_t(tokens * groups), 0.0f);
    for (int64_t t = 0; t < tokens; ++t)
      qd8_group_corrections(scales.data() + t * blocks(), sums.data() + t * blocks(), blocks(), group_size,
                            corrections.data() + t * groups);
  }
};

// Integer activations uniform in [-limit, limit] with a power-of-two scale per block, its
// exponent drawn from [min_exponent, max_exponent].
Activations random_activations(int64_t tokens, int64_t cols, const PackedWeight& w, int limit, std::mt19937& rng,
                               int min_exponent = -4, int max_exponent = -2) {
  Activations a;
  a.tokens = tokens;
  a.k_padded = w.k_padded;
  a.groups = w.groups_per_row;
  a.values.assign(size_t(tokens * w.k_padded), 0);
  std::uniform_int_distribution<int> value(-limit, limit), exponent(min_exponent, max_exponent);
  for (int64_t t = 0; t < tokens; ++t) {
    for (int64_t b = 0; b < a.blocks(); ++b) a.scales.push_back(std::ldexp(1.0f, exponent(rng)));
    for (int64_t k = 0; k < cols; ++k) a.values[size_t(t * w.k_padded + k)] = int8_t(value(rng));
  }
  a.finish(w.group_size);
  return a;
}

// Integer-grid matrix with random codes and zero points and scales in {2^-4, 2^-5, 2^-6}.
QuantizedMatrix exact_matrix(const std::string& spec, int64_t rows, int64_t cols, std::mt19937& rng) {
  QuantizedMatrix m{testing::spec_of(spec), rows, cols, std::vector<uint8_t>(size_t(rows * cols)), {}};
  const int max_code = m.spec.max_code();
  std::uniform_int_distribution<int> code(0, max_code), exponent(-6, -4);
  for (uint8_t& c : m.codes) c = uint8_t(code(rng));
  m.params.resize(size_t(m.layout().param_count()));
  for (GroupParams& p : m.params)
    p = {std::ldexp(1.0f, exponent(rng)), m.spec.symmetric ? m.spec.fixed_zero() : float(code(rng))};
  return m;
}

// Largest sum over a row of max_code * |q| * (its block's activation scale / the smallest one):
// the raw accumulator bound in units of the smallest weight scale times the smallest activation
// scale. The exactness precondition is that, with the zero-point term and a weight scale ratio of
// up to 4, it stays below 2^23.
double exactness_bound(const QuantizedMatrix& m, const Activations& a) {
  const float smallest = *std::min_element(a.scales.begin(), a.scales.end());
  double worst = 0;
  for (int64_t t = 0; t < a.tokens; ++t) {
    double s = 0;
    for (int64_t k = 0; k < a.k_padded; ++k)
      s += double(m.spec.max_code()) * std::abs(a.values[size_t(t * a.k_padded + k)]) *
           (a.scales[size_t(t * a.blocks() + k / kBlock)] / smallest);
    worst = std::max(worst, 2 * 4 * s);  // code and zero terms, weight scale ratio up to 4
  }
  return worst;
}

void expect_exact(const std::string& spec, int64_t rows, int64_t cols, int64_t tokens, int limit, std::mt19937& rng,
                  int min_exponent = -4, int max_exponent = -2, bool panels = false) {
  const QuantizedMatrix m = exact_matrix(spec, rows, cols, rng);
  auto p = pack_quantized(m, panels);
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(p->kind == PackedKind::kQ8P || p->kind == PackedKind::kQ4P || p->kind == PackedKind::kQ2P ||
                p->kind == PackedKind::kQ3P,
            panels);
  ASSERT_TRUE(supports_qd8(*p));
  const Activations a = random_activations(tokens, cols, *p, limit, rng, min_exponent, max_exponent);
  // kQ4P's high half is summed as 16 x code (its 1/16 applied with the scale): 16x the magnitudes;
  // the top quarter of kQ2P and kQ3P as 64 x code.
  const double headroom =
      p->kind == PackedKind::kQ4P ? 16 : p->kind == PackedKind::kQ2P || p->kind == PackedKind::kQ3P ? 64 : 1;
  ASSERT_LT(headroom * exactness_bound(m, a), 0x1p23) << "test parameters break the exactness precondition";
  std::vector<float> ref(size_t(tokens * rows));
  gemm_qd8_for(kernels_for(Isa::kRef), p->kind)(p->view(), 0, rows, a.view(), ref.data(), rows);
  for (Isa isa : testing::fast_isas()) {
    std::vector<float> fast(ref.size(), -1.0f);
    const int64_t r0 = rows / 2;
    gemm_qd8_for(kernels_for(isa), p->kind)(p->view(), r0, rows, a.view(), fast.data(), rows);
    gemm_qd8_for(kernels_for(isa), p->kind)(p->view(), 0, r0, a.view(), fast.data(), rows);
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_EQ(fast[i], ref[i]) << kernels_for(isa).name << " " << spec << " " << rows << "x" << cols << " tokens "
                                 << tokens << " at " << i;
  }
}

TEST(GemmQd8, IntegerDotProductsExactEdgeShapes) {
  std::mt19937 rng(1);
  for (const char* spec : {"int8", "int8_sym", "int8g32", "int8g64_sym", "int4", "int4g32", "int4g64", "int4g128_sym",
                           "int3", "int3g32", "int3g128", "int2", "int2g64_sym", "int2g128", "int4g32_midrise",
                           "int3_midrise", "int2g64_midrise"})
    for (int64_t cols : {1, 7, 31, 32, 33, 64, 96, 172, 200})
      for (int64_t rows : {1, 2, 3, 5})
        for (int64_t tokens : {1, 2, 3, 4, 5, 9})
          // Full-range activations for 4/3/2-bit codes; 8-bit codes at full range are covered by
          // SaturationExtremesExact, here |q| <= 4 keeps K = 200 within the precondition.
          expect_exact(spec, rows, cols, tokens, spec[3] == '8' ? 4 : 127, rng);
}

// The 4/3/2-bit kernels work on chunks of 4 blocks (128 inputs) and, for one token, on 4 rows in
// flight taken from 4 parts of the row range: K with a last chunk of 1, 2 or 3 blocks, groups
// smaller than a chunk (32, 64), not dividing it (96, 160), spanning several (256) or the whole
// row, and row counts that leave 0-3 rows outside the 4 parts (expect_exact also splits the range
// at rows / 2).
TEST(GemmQd8, LowBitChunksExactEdgeShapes) {
  std::mt19937 rng(4);
  for (const char* spec : {"int4g32", "int4g96", "int4g256", "int4", "int3g64", "int3g96", "int3g128_sym", "int3g256",
                           "int3_tensor", "int2g32", "int2g160", "int2g128_sym", "int2g256", "int2"})
    for (int64_t cols : {32, 96, 128, 160, 224, 256, 300, 390})
      for (int64_t rows : {1, 4, 5, 8, 17, 34})
        for (int64_t tokens : {1, 2, 6}) expect_exact(spec, rows, cols, tokens, spec[3] == '4' ? 63 : 127, rng);
}

// kQ8P (int8 per channel in 16-row VNNI panels): row counts around the panel size, ranges that
// start and end inside a panel (expect_exact splits the rows in two calls at rows / 2); 16 tokens
// or more take the AMX kernel where the CPU has AMX-INT8 (whole and partial groups of 16).
TEST(GemmQd8, PanelLayoutExactEdgeShapes) {
  std::mt19937 rng(3);
  for (const char* spec : {"int8", "int8_sym", "int8_tensor"})
    for (int64_t cols : {1, 31, 32, 33, 172, 200})
      for (int64_t rows : {1, 3, 15, 16, 17, 33, 70})
        for (int64_t tokens : {1, 2, 5, 6, 7, 13, 16, 17, 35}) expect_exact(spec, rows, cols, tokens, 4, rng, -4, -2, true);
  expect_exact("int8", 40, 4096, 7, 1, rng, -3, -3, true);
  expect_exact("int8", 40, 4096, 33, 1, rng, -3, -3, true);
}

// Int4/3/2 with 16 tokens or more: the AMX kernel unpacks kQ4/kQ3/kQ2 rows into 16-row panels
// (rows around the panel size, ranges split inside a panel, group ends inside and at the end of a
// row).
TEST(GemmQd8, LowBitManyTokensExactEdgeShapes) {
  std::mt19937 rng(4);
  for (const char* spec : {"int4", "int4g32", "int4g64_sym", "int4g128", "int3g32", "int3g64_sym", "int3", "int2g32",
                           "int2g128_sym", "int2"})
    for (int64_t cols : {1, 33, 172, 200})
      for (int64_t rows : {1, 15, 17, 33, 70})
        for (int64_t tokens : {16, 17, 35}) expect_exact(spec, rows, cols, tokens, 127, rng);
  expect_exact("int4g128", 40, 4096, 33, 3, rng, -3, -3);
  expect_exact("int3g128", 40, 4096, 33, 3, rng, -3, -3);
  expect_exact("int2g128", 40, 4096, 33, 3, rng, -3, -3);
}

// The low-bit panel kinds over edge shapes: `bits`-bit codes with every granularity (groups of
// 32-256, per channel, per tensor), the given row counts, ranges split inside a panel
// (expect_exact splits at rows / 2), 1-5 tokens for the VNNI kernels and 16-17 for AMX, then one
// row count past the one-token kernel's panels in flight at width `wide_cols`, for one and 33
// tokens.
void expect_panel_kind_exact(int bits, const std::vector<int64_t>& cols_list, const std::vector<int64_t>& rows_list,
                             int64_t wide_rows, int64_t wide_cols, uint32_t seed) {
  std::mt19937 rng(seed);
  const std::string b = "int" + std::to_string(bits);
  for (const std::string& spec : {b, b + "_sym", b + "g32", b + "g64_sym", b + "g128", b + "g256", b + "_tensor"})
    for (int64_t cols : cols_list)
      for (int64_t rows : rows_list)
        for (int64_t tokens : {1, 2, 3, 4, 5, 16, 17}) expect_exact(spec, rows, cols, tokens, 3, rng, -4, -2, true);
  expect_exact(b + "g128", wide_rows, wide_cols, 1, 1, rng, -3, -3, true);
  expect_exact(b + "g128", 40, wide_cols, 33, 1, rng, -3, -3, true);
}

// kQ4P (int4 in 32-row double panels, both nibbles of a byte two rows 16 apart): row counts
// around 16 and 32 and past 4 double panels (the one-token kernel takes 4 at a time).
TEST(GemmQd8, Int4PanelLayoutExactEdgeShapes) {
  expect_panel_kind_exact(4, {1, 31, 33, 172, 256, 300}, {1, 15, 16, 17, 32, 33, 70, 130, 200}, 160, 4096, 5);
}

// kQ2P (int2 in 64-row quad panels, the four bit pairs of a byte four rows 16 apart): row counts
// around 16, 32, 48 and 64 and past 2 quad panels (the one-token kernel takes 2 at a time).
TEST(GemmQd8, Int2PanelLayoutExactEdgeShapes) {
  expect_panel_kind_exact(2, {1, 31, 33, 172, 256, 300}, {1, 15, 17, 33, 49, 64, 65, 130, 200}, 300, 4096, 6);
}

// kQ3P (int3 in 64-row quad panels: bit pairs as kQ2P, bit 2 in a plane per 8 inputs): as kQ2P,
// plus K whose last 8-input piece holds one 4-input step before the padding (5); 2048 inputs wide
// (at 4096, 7 x 64 per code breaks the exactness precondition of these activations).
TEST(GemmQd8, Int3PanelLayoutExactEdgeShapes) {
  expect_panel_kind_exact(3, {1, 5, 31, 33, 172, 256, 300}, {1, 15, 17, 33, 49, 64, 65, 130, 200}, 300, 2048, 7);
}

TEST(GemmQd8, PanelLayoutUnpacksToTheCanonicalValues) {
  // (specs, rows, the panel kind, code bytes: whole panels of 16 / 32 / 64 / 64 rows x 96 padded
  // inputs at 8 / 4 / 2 / 3 bits)
  const struct {
    std::vector<const char*> specs;
    int64_t rows;
    PackedKind kind;
    size_t code_bytes;
  } cases[] = {{{"int8", "int8_sym"}, 21, PackedKind::kQ8P, 32 * 96},
               {{"int4", "int4g32_sym", "int4g64"}, 37, PackedKind::kQ4P, 64 * 96 / 2},
               {{"int2", "int2g32_sym", "int2g64"}, 70, PackedKind::kQ2P, 128 * 96 / 4},
               {{"int3", "int3g32_sym", "int3g64"}, 70, PackedKind::kQ3P, 128 * 96 * 3 / 8}};
  for (const auto& c : cases)
    for (const char* spec : c.specs) {
      const QuantizedMatrix m = testing::random_matrix(spec, c.rows, 70, 9);
      auto p = pack_quantized(m, true);
      ASSERT_EQ(p->kind, c.kind) << spec;
      EXPECT_EQ(unpack_reference(*p), dequantize(m)) << spec;
      EXPECT_EQ(p->codes.size(), c.code_bytes) << spec;
    }
  // Grouped int8 keeps its usual layout.
  EXPECT_EQ(pack_quantized(testing::random_matrix("int8g32", 4, 64, 1), true)->kind, PackedKind::kQ8);
}

TEST(GemmQd8, IntegerDotProductsExactLlmWidths) {
  std::mt19937 rng(2);
  // Small activations with one activation scale for every block keep the exactness precondition
  // at K = 4096 and 11008.
  for (int64_t cols : {4096, 11008}) {
    expect_exact("int4g128", 6, cols, 5, 3, rng, -3, -3);
    expect_exact("int4", 3, cols, 2, 3, rng, -3, -3);
    for (const char* spec : {"int4g128", "int3g128", "int2g128", "int3g32", "int2"}) {
      expect_exact(spec, 17, cols, 1, 3, rng, -3, -3);  // decode: 4 streams of 4 rows + 1
      expect_exact(spec, 5, cols, 3, 3, rng, -3, -3);
    }
  }
  expect_exact("int8", 3, 4096, 2, 1, rng, -3, -3);
}

TEST(GemmQd8, SaturationExtremesExact) {
  // Codes 0 and 255 against activations -127 and 127: the AVX2 path's int16 pairs at their
  // largest (2 * 128 * 127), the VNNI path's raw sums at theirs.
  for (uint8_t code : {uint8_t(0), uint8_t(255)}) {
    for (int8_t q : {int8_t(-127), int8_t(127)}) {
      QuantizedMatrix m{testing::spec_of("int8"), 2, 64, std::vector<uint8_t>(128, code), {{0.25f, 128.0f}, {0.25f, 0.0f}}};
      auto p = pack_quantized(m);
      Activations a;
      a.tokens = 1, a.k_padded = 64, a.groups = 1;
      a.values.assign(64, q);
      a.scales = {1.0f, 1.0f};
      a.finish(64);
      std::vector<float> ref(2), fast(2);
      gemm_qd8_for(kernels_for(Isa::kRef), p->kind)(p->view(), 0, 2, a.view(), ref.data(), 2);
      EXPECT_EQ(ref[0], 0.25f * 64 * (code - 128) * q);
      for (Isa isa : testing::fast_isas()) {
        gemm_qd8_for(kernels_for(isa), p->kind)(p->view(), 0, 2, a.view(), fast.data(), 2);
        EXPECT_EQ(fast, ref) << isa_name(isa) << " code " << int(code) << " q " << int(q);
      }
    }
  }
}

// Calls f(x, k, k_padded) for activation vectors of edge lengths (k not a multiple of 32, k_padded
// a whole block past it) and magnitudes (all zeros, tiny, large), with a tie-prone ratio and zero blocks.
template <class F>
void for_each_activation_case(F f) {
  uint32_t seed = 40;
  for (int64_t k : {1, 5, 8, 31, 32, 33, 63, 100, 172, 4099}) {
    for (int64_t extra_blocks : {0, 1}) {  // k_padded may run a whole block past k
      const int64_t k_padded = (k + 31) / 32 * 32 + 32 * extra_blocks;
      for (float magnitude : {0.0f, 1e-3f, 1.0f, 300.0f}) {
        std::vector<float> x = random_values(k, seed++, magnitude);
        if (k > 3) x[size_t(k / 2)] = 0.5f * x[size_t(k / 3)];  // a value at a tie-prone ratio
        if (k > 40) std::fill(x.begin() + 32, x.begin() + 40, 0.0f);
        if (k > 64) std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // an all-zero block
        f(x, k, k_padded);
      }
    }
  }
}

struct QuantizedToken {
  std::vector<int8_t> q;
  std::vector<float> scales;
  std::vector<int32_t> sums;
  QuantizedToken(QuantizeQd8Fn quantize, const float* x, int64_t k, int64_t k_padded, int slices, int8_t fill)
      : q(size_t(slices * k_padded), fill), scales(size_t(slices * k_padded / 32)), sums(scales.size()) {
    quantize(x, k, k_padded, q.data(), scales.data(), sums.data());
  }
};

// The reference's quantization of x by the table entry (`slices` 1 or 2), once every fast ISA's
// has been checked to equal it bit for bit.
QuantizedToken reference_every_isa_matches(QuantizeQd8Fn KernelTable::*entry, int slices, const std::vector<float>& x,
                                           int64_t k, int64_t k_padded) {
  QuantizedToken ref(kernels_for(Isa::kRef).*entry, x.data(), k, k_padded, slices, 99);
  for (Isa isa : testing::fast_isas()) {
    const QuantizedToken fast(kernels_for(isa).*entry, x.data(), k, k_padded, slices, 77);
    EXPECT_EQ(fast.scales, ref.scales) << isa_name(isa) << " k " << k << " slices " << slices;
    EXPECT_EQ(fast.q, ref.q) << isa_name(isa) << " k " << k << " slices " << slices;
    EXPECT_EQ(fast.sums, ref.sums) << isa_name(isa) << " k " << k << " slices " << slices;
  }
  return ref;
}

TEST(QuantizeQd8, EveryIsaMatchesReferenceExactly) {
  for_each_activation_case([](const std::vector<float>& x, int64_t k, int64_t k_padded) {
    const int64_t blocks = k_padded / 32;
    const QuantizedToken ref = reference_every_isa_matches(&KernelTable::quantize_f32_qd8, 1, x, k, k_padded);
    for (int64_t i = k; i < k_padded; ++i) ASSERT_EQ(ref.q[size_t(i)], 0);
    for (int64_t b = 0; b < blocks; ++b) {
      int32_t sum = 0;
      float amax = 0.0f;
      for (int64_t i = b * 32; i < (b + 1) * 32; ++i) {
        sum += ref.q[size_t(i)];
        if (i < k) amax = std::max(amax, std::fabs(x[size_t(i)]));
      }
      EXPECT_EQ(ref.sums[size_t(b)], sum);
      // One scale per block from that block's own absmax; an all-zero block gets scale 1.
      EXPECT_EQ(ref.scales[size_t(b)], amax > 0 ? amax / 127.0f : 1.0f);
      for (int64_t i = b * 32; i < (b + 1) * 32 && i < k && amax > 0; ++i)
        EXPECT_LE(std::abs(x[size_t(i)] / ref.scales[size_t(b)] - ref.q[size_t(i)]), 0.5f + 1e-3f);
    }
  });
}

// Two slices (weight-only products on the int8 kernels): every ISA bit for bit as the reference;
// slice 1 is the one-slice quantization, and s1 q1 + s2 q2 carries each input to within half a
// step of slice 2, at most max|x[block]| / 64516 (packed_matmul.h), plus the fp32 rounding of the
// residual.
TEST(QuantizeQd8, TwoSlicesEveryIsaMatchesReferenceExactly) {
  for_each_activation_case([](const std::vector<float>& x, int64_t k, int64_t k_padded) {
    const int64_t blocks = k_padded / 32;
    const QuantizedToken ref = reference_every_isa_matches(&KernelTable::quantize_f32_qd8x2, 2, x, k, k_padded);
    const QuantizedToken one(kernels_for(Isa::kRef).quantize_f32_qd8, x.data(), k, k_padded, 1, 55);
    ASSERT_TRUE(std::equal(one.q.begin(), one.q.end(), ref.q.begin()));
    ASSERT_TRUE(std::equal(one.scales.begin(), one.scales.end(), ref.scales.begin()));
    for (int64_t i = 0; i < k_padded; ++i) {
      const int64_t b = i / 32;
      const double s1 = ref.scales[size_t(b)], s2 = ref.scales[size_t(blocks + b)];
      const double xi = i < k ? x[size_t(i)] : 0.0;
      const double carried = s1 * ref.q[size_t(i)] + s2 * ref.q[size_t(k_padded + i)];
      const double block_max = 127.0 * s1;  // 127 when the block is all zeros: no looser a bound
      ASSERT_LE(std::fabs(carried - xi), block_max / 64516 + 0x1p-24 * block_max) << "k " << k << " i " << i;
    }
  });
}

TEST(MatmulQd8, RealisticDataWithinDerivedTolerance) {
  uint32_t seed = 500;
  for (Isa isa : supported_isas()) {
    for (const char* spec : {"int8_sym", "int8", "int4g128", "int4g32_sym", "int4", "int3g128", "int3g32", "int2g128_sym",
                             "int2", "int8_sym panels", "int4g128 panels", "int3g128 panels", "int3 panels",
                             "int2g128 panels", "int2 panels"}) {
      for (const testing::Shape s : {testing::Shape{48, 4096}, testing::Shape{19, 172}}) {
        const std::string name(spec);
        const bool panels = name.ends_with(" panels");
        const QuantizedMatrix m = testing::random_matrix(name.substr(0, name.find(' ')), s.rows, s.cols, seed++);
        auto p = pack_quantized(m, panels);
        const std::vector<float> w = dequantize(m);
        for (int64_t n : {1, 6, 20}) {
          const std::vector<float> x = random_values(n * s.cols, seed++);
          std::vector<float> y(size_t(n * s.rows));
          matmul_qd8(*p, x.data(), n, y.data(), kernels_for(isa));
          for (int64_t t = 0; t < n; ++t) {
            const float* xt = x.data() + t * s.cols;
            std::vector<double> act_step(size_t((s.cols + 31) / 32), 0.0);  // per 32-input block
            for (int64_t k = 0; k < s.cols; ++k)
              act_step[size_t(k / 32)] = std::max(act_step[size_t(k / 32)], std::fabs(double(xt[k])) / 127.0);
            for (int64_t r = 0; r < s.rows; ++r) {
              double exact = 0, rounding = 0, abs_x = 0, max_w = 0;
              for (int64_t k = 0; k < s.cols; ++k) {
                const double wk = w[size_t(r * s.cols + k)];
                exact += wk * xt[k];
                rounding += 0.5 * act_step[size_t(k / 32)] * std::fabs(wk);
                abs_x += std::fabs(xt[k]);
                max_w = std::max(max_w, std::fabs(wk));
              }
              // Activation rounding moves each input by at most half its block's step. The kernels
              // sum scale * code * x and subtract scale * zero * x separately: each of those terms
              // is at most (max - min of the group) * |x| <= 2 max|w| |x|, so fp32 rounding over
              // the cols terms stays below cols * 2^-23 * 4 max|w| sum|x| (with the 1/127 steps).
              const double tol = rounding + s.cols * 0x1p-23 * 4 * max_w * abs_x * 1.01;
              ASSERT_NEAR(y[size_t(t * s.rows + r)], exact, tol) << kernels_for(isa).name << " " << spec;
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace lowbit::kernels

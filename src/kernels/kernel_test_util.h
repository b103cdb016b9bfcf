// Shared pieces of the kernel tests: random matrices in any format, the ISAs to cover, and the
// derived fp32 tolerance.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "formats/quantized_matrix.h"
#include "kernels/kernels.h"
#include "kernels/packed_weight.h"

namespace lowbit::kernels::testing {

// Every ISA this machine runs except the scalar reference (what the fast paths are compared to).
inline std::vector<Isa> fast_isas() {
  std::vector<Isa> out;
  for (Isa isa : supported_isas())
    if (isa != Isa::kRef) out.push_back(isa);
  return out;
}

inline FormatSpec spec_of(const std::string& name) {
  Result<FormatSpec> spec = parse_format_spec(name);
  EXPECT_TRUE(spec.ok()) << name;
  return *spec;
}

// Gaussian values with every 13th one an outlier (so groups have uneven ranges).
inline std::vector<float> random_values(int64_t n, uint32_t seed, float stddev = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = normal(rng) * (i % 13 == 5 ? 6.0f : 1.0f);
  return v;
}

inline QuantizedMatrix random_matrix(const std::string& spec, int64_t rows, int64_t cols, uint32_t seed) {
  Result<QuantizedMatrix> m = quantize_reference(random_values(rows * cols, seed, 0.02f), rows, cols, spec_of(spec));
  EXPECT_TRUE(m.ok()) << spec << ": " << m.status().message();
  return m.ok() ? std::move(m).value() : QuantizedMatrix{};
}

inline float max_abs(const std::vector<float>& v) {
  float m = 0.0f;
  for (float x : v) m = std::fmax(m, std::fabs(x));
  return m;
}

// Bound on the difference of two fp32 evaluations of a K-term dot product that differ only in
// summation order: K * max|a| * max|b| * 2^-22 (a few units of 2^-24 per term).
inline double dot_tolerance(int64_t k, double max_a, double max_b) { return double(k) * max_a * max_b * 0x1p-22; }

// Weight specs with a packed layout, covering every kind and granularity (the groups include a
// ragged last group whenever cols is not a multiple of the group).
inline const std::vector<std::string>& packable_specs() {
  static const std::vector<std::string> specs = {
      "int8",     "int8_sym", "int8g32",   "int8g128_sym", "int4", "int4g32",  "int4g64_sym", "int4g128",
      "int4_tensor", "int3g32", "int3g64", "int3", "int2g32", "int2g64_sym", "int2", "nf4", "nf4g32", "fp8_e4m3",
      "int4g32_midrise", "int3_midrise", "int2g64_midrise"};  // midrise: zero points between two codes
  return specs;
}

// Shapes: K below, at and above the vector widths and block, ragged groups (172 = 5*32 + 12).
struct Shape {
  int64_t rows, cols;
};
inline const std::vector<Shape>& edge_shapes() {
  static const std::vector<Shape> shapes = {{1, 1},   {3, 7},   {2, 31},  {5, 32},  {4, 33},  {7, 64},
                                            {6, 100}, {9, 172}, {3, 200}, {17, 256}, {2, 520}, {33, 96}};
  return shapes;
}

}  // namespace lowbit::kernels::testing

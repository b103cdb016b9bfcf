// Random weights for the benchmarks: speed does not depend on the values, only on the format,
// the shape and the layout the kernels get.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/packed_weight.h"

namespace lowbit::bench {

inline std::vector<float> random_floats(int64_t n, uint32_t seed, float stddev) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, stddev);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(rng);
  return v;
}

// Random codes and plausible scales/zeros of `rows` x `cols` in `format`, a format spec with an
// optional layout suffix: ":panels" (int8 per channel, int4, int3 and int2 in the kQ8P / kQ4P /
// kQ3P / kQ2P VNNI panels of the dynamic int8 kernels) or ":lut" (int3 and int2 in the kQ3L / kQ2L
// lane panels of the table-lookup gemv).
inline std::shared_ptr<const kernels::PackedWeight> random_packed(const std::string& format, int64_t rows,
                                                                  int64_t cols, uint32_t seed = 7) {
  const bool panels = format.ends_with(":panels"), lut = format.ends_with(":lut");
  const std::string spec_text = format.substr(0, format.find(':'));
  QuantizedMatrix m;
  m.spec = *parse_format_spec(spec_text);
  m.rows = rows;
  m.cols = cols;
  m.codes.resize(size_t(rows * cols));
  std::mt19937 rng(seed);
  const int max_code = m.spec.info().integer_grid ? m.spec.max_code() : m.spec.id == FormatId::kNF4 ? 15 : 0x7e;
  std::uniform_int_distribution<int> code(0, max_code);
  for (uint8_t& c : m.codes) c = uint8_t(code(rng));
  m.params.assign(size_t(m.layout().param_count()), GroupParams{0.01f, float((max_code + 1) / 2)});
  if (!m.spec.info().integer_grid)
    for (GroupParams& p : m.params) p.zero = 0.0f;
  // The packed copy keeps a pointer to its source only to compare it; the matrix may go.
  return kernels::pack_quantized(m, panels, lut);
}

}  // namespace lowbit::bench

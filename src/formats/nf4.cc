#include "formats/nf4.h"

#include "base/status.h"

namespace lowbit {

uint8_t nf4_encode(float normalized) {
  // Thresholds are increasing, so the count of those below the value is the level index; this is
  // the flat form of bitsandbytes' decision tree. NaN compares false everywhere and gives code 0;
  // callers reject non-finite weights before encoding.
  uint8_t code = 0;
  for (float threshold : kNf4.thresholds) code += normalized > threshold ? 1 : 0;
  return code;
}

std::vector<uint8_t> pack_nf4_bitsandbytes(std::span<const uint8_t> codes) {
  std::vector<uint8_t> bytes((codes.size() + 1) / 2, 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    LOWBIT_CHECK(codes[i] < 16);
    bytes[i / 2] |= uint8_t(i % 2 == 0 ? codes[i] << 4 : codes[i]);
  }
  return bytes;
}

}  // namespace lowbit

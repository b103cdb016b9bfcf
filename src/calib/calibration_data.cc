#include "calib/calibration_data.h"

#include <cstring>

#include "io/mapped_file.h"
#include "model/forward.h"
#include "model/sampler.h"

namespace lowbit {

TokenWindows cut_windows(std::span<const int32_t> tokens, int length, int max_windows) {
  TokenWindows windows;
  if (length <= 0) return windows;
  for (size_t start = 0; start + size_t(length) <= tokens.size(); start += size_t(length)) {
    if (max_windows > 0 && int(windows.size()) >= max_windows) break;
    windows.emplace_back(tokens.begin() + start, tokens.begin() + start + length);
  }
  return windows;
}

Result<TokenWindows> read_calibration_windows(const std::string& path, int vocab_size, int length,
                                              int max_windows) {
  if (length <= 0) return error(ErrorCode::kInvalidArgument, "calibration window length {} must be positive", length);
  if (max_windows < 0) return error(ErrorCode::kInvalidArgument, "calibration window count {} is negative", max_windows);
  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::open(path));
  const std::span<const uint8_t> bytes = file->bytes();
  if (bytes.size() % 4 != 0) {
    return error(ErrorCode::kFormat, "{}: {} bytes is not a whole number of int32 tokens", path, bytes.size());
  }
  std::vector<int32_t> tokens(bytes.size() / 4);
  for (size_t i = 0; i < tokens.size(); ++i) {
    // Little-endian on disk whatever the host.
    const uint8_t* p = bytes.data() + 4 * i;
    tokens[i] = int32_t(uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
    if (tokens[i] < 0 || tokens[i] >= vocab_size) {
      return error(ErrorCode::kFormat, "{}: token {} at position {} is outside the vocabulary [0, {})", path,
                   tokens[i], i, vocab_size);
    }
  }
  if (tokens.size() < size_t(length)) {
    return error(ErrorCode::kInvalidArgument, "{}: {} tokens is less than one calibration window of {}", path,
                 tokens.size(), length);
  }
  return cut_windows(tokens, length, max_windows);
}

Result<TokenWindows> sample_calibration_windows(std::shared_ptr<const Model> model,
                                                const SelfCalibrationOptions& options) {
  const ModelConfig& c = model->config();
  if (options.windows <= 0 || options.length <= 0) {
    return error(ErrorCode::kInvalidArgument, "self calibration needs a positive window count and length ({}, {})",
                 options.windows, options.length);
  }
  if (options.length > c.max_seq_len) {
    return error(ErrorCode::kInvalidArgument, "self calibration window of {} tokens exceeds the context of {}",
                 options.length, c.max_seq_len);
  }
  if (c.bos_id < 0 || c.bos_id >= c.vocab_size) {
    return error(ErrorCode::kUnsupported, "self calibration needs a BOS token; the model's BOS id is {}", c.bos_id);
  }
  if (!(options.temperature > 0.0f) || !(options.top_p > 0.0f && options.top_p <= 1.0f)) {
    return error(ErrorCode::kInvalidArgument, "self calibration temperature {} must be > 0 and top_p {} in (0, 1]",
                 options.temperature, options.top_p);
  }
  Sampler sampler(SamplerOptions{options.temperature, options.top_p, options.seed});
  Session session(model, options.length);
  TokenWindows windows(size_t(options.windows));
  std::vector<float> logits;
  for (std::vector<int>& window : windows) {
    session.reset();
    window.reserve(size_t(options.length));
    window.push_back(c.bos_id);
    while (int(window.size()) < options.length) {
      LOWBIT_RETURN_IF_ERROR(session.forward(std::span<const int>(&window.back(), 1), false, &logits));
      int next = sampler.sample(logits.data(), c.vocab_size);
      if (next == c.eos_id) next = c.bos_id;  // the story ended: start the next one
      window.push_back(next);
    }
  }
  return windows;
}

}  // namespace lowbit

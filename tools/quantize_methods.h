// The quantization methods behind `lowbit quantize`: given a checkpoint and a resolved plan,
// produce the quantized matrices (RTN per tensor; GPTQ layer by layer with calibration data).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "calib/quantize_checkpoint.h"
#include "model/checkpoint.h"
#include "quant/recipe.h"

namespace lowbit::cli {

struct GptqCliOptions {
  std::string calib;        // token file, text file, or "self"
  int nsamples = 128;       // calibration windows
  int seqlen = 256;         // tokens per window
  uint64_t seed = 0;
  float damp = 0.01f;       // percdamp
  int block = 128;          // lazy batch size
  bool act_order = false;
  bool static_groups = false;
  bool true_sequential = false;
};

void add_gptq_options(CLI::App& cmd, GptqCliOptions& o);

struct QuantizedTensors {
  QuantizedWeights matrices;
  std::vector<std::string> report;  // extra summary lines (e.g. GPTQ proxy losses)
};

// Quantizes every planned tensor (exits with a clear error on failure).
QuantizedTensors quantize_planned_tensors(const Checkpoint& ck, const Plan& plan, bool clip,
                                          const GptqCliOptions& gptq);

}  // namespace lowbit::cli

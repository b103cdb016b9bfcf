// The quantization methods behind `lowbit quantize`: given a checkpoint and a resolved plan,
// produce the quantized matrices (RTN per tensor; GPTQ layer by layer with calibration data).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "calib/calibration_data.h"
#include "calib/quantize_checkpoint.h"
#include "model/checkpoint.h"
#include "quant/recipe.h"
#include "quant/rtn.h"

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
  bool asymmetric_calibration = false;  // fit each layer to the original model's outputs (GptqModelOptions::asymmetric)
};

void add_gptq_options(CLI::App& cmd, GptqCliOptions& o);

// --clip / --clip-steps / --clip-min: the clipping search of every group's range (quant/rtn.h),
// used alike by RTN and GPTQ (whose search weighs errors by diag H, quant/gptq.h).
struct ClipCliOptions {
  bool on = false;
  int steps = kDefaultClipSearch.steps;
  float min_shrink = kDefaultClipSearch.min_shrink;
  ClipSearch search() const { return on ? ClipSearch{steps, min_shrink} : ClipSearch{}; }
};

void add_clip_options(CLI::App& cmd, ClipCliOptions& o);

// --rotate / --rotate-seed: an orthogonal rotation of the residual stream and of each value head,
// folded into the weights before quantizing (calib/rotate_checkpoint.h).
struct RotateCliOptions {
  bool on = false;
  uint64_t seed = 0;
};

void add_rotate_options(CLI::App& cmd, RotateCliOptions& o);
// The rotated checkpoint when o.on (prints one line saying so), else `ck` unchanged.
Checkpoint maybe_rotate(Checkpoint ck, const RotateCliOptions& o);

struct QuantizedTensors {
  QuantizedWeights matrices;
  std::vector<std::string> report;  // extra summary lines (e.g. GPTQ proxy losses)
};

// Quantizes every planned tensor (exits with a clear error on failure). With a `sink`, each
// weight goes to it as soon as it is done and `matrices` stays empty; GPTQ then converts one
// block at a time (calib/streamed_model.h) unless it samples its own calibration data.
QuantizedTensors quantize_planned_tensors(const Checkpoint& ck, const Plan& plan, const ClipSearch& clip,
                                          const GptqCliOptions& gptq, const QuantizedSink& sink = {});

// The calibration windows GPTQ uses (gptq.calib: token file, text file or "self"; nsamples ×
// seqlen), for other calibrated measurements (sensitivity). Exits with a clear error.
TokenWindows calibration_token_windows(const Checkpoint& ck, std::shared_ptr<const Model> model,
                                       const GptqCliOptions& gptq);

}  // namespace lowbit::cli

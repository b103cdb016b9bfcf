// Writes a quantized checkpoint directory (the layout of export/quantized_checkpoint.h) one
// tensor at a time, so that quantizing a model never holds more than the layer in hand.
//
// Every stored tensor's name, dtype and shape follows from the plan (formats and shapes), so the
// safetensors header and each tensor's offset are computed before anything is quantized
// (io/safetensors.h plan_safetensors_layout, the same layout write_safetensors produces) and each
// quantized weight is packed and written at its offset as soon as it is done, in any order. Two
// things depend on the values and are settled in commit(): GPTQ-convention zero points are stored
// as zero - 1 ("gptq", v1) unless some zero point is 0, which forces "gptq_v2" for the whole
// checkpoint, so the small qzeros tensors (1/256 byte per weight at int4 g128) are kept and
// written last; and quantization_config's desc_act.
//
// The directory appears complete or not at all (io/atomic_directory.h, replace mode): files go to
// a staging directory that is swapped into place by commit().
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "export/quantized_checkpoint.h"
#include "formats/format.h"
#include "formats/quantized_matrix.h"
#include "model/checkpoint.h"
#include "quant/recipe.h"

namespace lowbit {

// A weight this run will add quantized.
struct QuantizedWeightPlan {
  std::string name;  // canonical weight name, "model.layers.0.mlp.up_proj.weight"
  FormatSpec spec;
  int64_t rows = 0, cols = 0;  // [out_features, in_features]
  bool g_idx = false;  // an act-order group index comes with it (GPTQ with --act-order, grouped formats)
};

class QuantizedCheckpointWriter {
 public:
  // `source`: the checkpoint being quantized (config, tokenizer, the tensors that stay in floating
  // point, weights it already holds quantized). `weights`: the weights add() will receive. Fails
  // like save_quantized_checkpoint on an existing `dir` without options.overwrite.
  static Result<std::unique_ptr<QuantizedCheckpointWriter>> create(const std::string& dir, const Checkpoint& source,
                                                                    const std::vector<QuantizedWeightPlan>& weights,
                                                                    const QuantizedSaveOptions& options);
  ~QuantizedCheckpointWriter();

  // Writes every tensor this run does not quantize: floating-point tensors (converted to
  // options.float_dtype, a chunk of rows at a time, their mapped pages released after) and
  // weights `source` already holds quantized.
  Status write_source_tensors();
  // Packs and writes one planned weight (each exactly once, any order).
  Status add(const std::string& name, const QuantizedMatrix& m);
  // Writes the zero points, config.json, tokenizer.json and options.extra_files, then publishes
  // the directory. Fails (kInternal) if a planned tensor was never written.
  Status commit();

  int64_t weights_added() const { return added_; }
  const std::string& staged_model_path() const { return model_path_; }

 private:
  struct State;
  QuantizedCheckpointWriter() = default;
  std::unique_ptr<State> state_;
  int64_t added_ = 0;
  std::string model_path_;
};

// The plan entries a writer receives from a resolved recipe: every quantized entry, with a group
// index when GPTQ will reorder its columns (act_order without static_groups on grouped formats).
std::vector<QuantizedWeightPlan> quantized_weight_plans(const std::vector<PlanEntry>& entries, bool gptq_act_order,
                                                        bool gptq_static_groups);

}  // namespace lowbit

// Per-tensor quantization sensitivity: for each linear weight of the blocks (or each block's group
// of seven), and each candidate format, the damage of quantizing just that item while everything
// else stays in floating point. Two measures:
//
//   kld    measured: mean over scored positions of KL(P_fp ‖ P_item-quantized) in nats, on the
//          first `measure_windows` calibration windows (each from position 0, positions
//          0..len-2 scored, as eval/metrics.h's protocol). The FP model's log-probabilities are
//          computed once; the residual stream entering the item's block is the FP one (nothing
//          before it is quantized), so only blocks b..L-1 and the head run per measurement.
//   proxy  tr(ΔW H ΔWᵀ) with ΔW = W − dequantize(Q) and H = 2/n Σ x xᵀ the Hessian of the
//          layer's FP inputs over all calibration windows (quant/hessian.h), summed over an
//          item's tensors. With this H it is twice the mean over tokens of the squared output
//          error of the layer (the quantity GPTQ minimises), so it needs one forward pass, not
//          one per (item, format).
//
// In context (options.base): first every block linear is quantized at a base format, layer by
// layer (GPTQ's Hessians then come from the already-quantized prefix); each cell then changes one
// item from the base to its format, and its damage is kld − base_kld, the KLD it adds to (or, for
// a better format, removes from) the all-base model. Errors compound: a tensor quantized alone
// costs less than the same tensor among quantized neighbours, so damages measured in the context
// of the budget's typical format add up closer to the measured total.
//
// Method "rtn" quantizes by round-to-nearest, "gptq" runs GPTQ on each tensor alone with the
// FP-input Hessian (not layer by layer: nothing else is quantized). The Spearman rank correlation
// of proxy against kld says how well the cheap proxy ranks like the measurement, over all cells
// and per format (across items).
//
// Memory: the residual stream of all calibration windows (tokens × dim floats, as GPTQ), the FP
// log-probabilities of the measured windows (measured tokens × vocab floats), the fp64 Hessians
// of one block's four inputs, and one Session per thread.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "calib/calibration_data.h"
#include "eval/metrics.h"
#include "formats/format.h"
#include "model/model.h"
#include "quant/gptq.h"
#include "quant/mixed_allocation.h"

namespace lowbit {

struct SensitivityOptions {
  std::vector<FormatSpec> formats;  // candidate quantized formats
  std::string method = "rtn";       // "rtn" or "gptq"
  bool group_by_layer = false;      // items = blocks (all seven linears together) instead of tensors
  int measure_windows = 32;         // KLD on the first N calibration windows (0 = all)
  std::optional<FormatSpec> base;   // measure in the context of every other item at this format
  // Or a context per tensor (e.g. an allocation near the budget, to refine it): block linear name
  // -> its format; a linear not listed stays in floating point. Excludes `base`.
  std::map<std::string, FormatSpec> base_by_tensor;
  std::string base_name;            // table.base_format for base_by_tensor (e.g. the recipe file)
  GptqOptions gptq;                 // for method "gptq" (its clip search applies to GPTQ's fits)
  // For method "gptq": asymmetric calibration (calib/gptq_driver.h), in the base context and in
  // every cell: each tensor is fit to the original model's outputs on the original inputs.
  bool asymmetric_calibration = false;
  ClipSearch rtn_clip;              // for method "rtn": clipping search of each group (quant/rtn.h)
};

struct SensitivityCell {
  std::string format;  // canonical spec string
  uint64_t bytes = 0;  // exact stored bytes of the item in this format (format_bytes)
  double kld = 0;    // KLD of the model with this item at this format (others FP, or at the base)
  double proxy = 0;
};

struct SensitivityItem {
  std::string name;                  // the tensor's name, or "model.layers.<b>" for a block
  int block = 0;
  std::vector<std::string> tensors;  // canonical weight names in the item
  uint64_t weights = 0;              // elements of those tensors
  std::vector<SensitivityCell> cells;  // one per format, in SensitivityTable::formats order
};

struct SensitivityTable {
  std::string method;
  std::string group_by;  // "tensor" or "layer"
  std::vector<std::string> formats;
  std::string base_format;          // "" = others in floating point
  // The clipping search every cell was quantized with (quant/rtn.h; steps 0 = plain min/max);
  // empty for tables written before it was recorded. quantize --sensitivity warns when its own
  // --clip differs: the damages would rank a different quantizer than the one that runs.
  std::optional<ClipSearch> clip;
  // GPTQ with asymmetric calibration (SensitivityOptions::asymmetric_calibration); quantize --sensitivity
  // warns when its own --asymmetric-calibration differs.
  bool asymmetric_calibration = false;
  // Set when the model was rotated before measuring (calib/rotate_checkpoint.h, quantize --rotate):
  // the seed of that rotation. quantize --sensitivity warns when its own rotation differs.
  std::optional<uint64_t> rotation_seed;
  double base_kld = 0;              // KLD with every item at the base format (0 without one)
  int64_t calibration_windows = 0;  // Hessian windows
  int64_t measure_windows = 0;
  int64_t tokens_scored = 0;        // positions the KLD averages over
  std::vector<SensitivityItem> items;
  double spearman = 0;                           // proxy vs kld over every cell
  std::map<std::string, double> spearman_by_format;  // across items, per format
  double seconds = 0;
};

// (cells done, cells total, "item format"), after each measurement.
using SensitivityProgress = std::function<void(int64_t, int64_t, const std::string&)>;

// Fails on an empty format list, a non-quantized format, an unknown method, no windows, or a
// window that does not fit the model's context / vocabulary.
Result<SensitivityTable> measure_sensitivity(std::shared_ptr<const Model> model, const TokenWindows& windows,
                                             const SensitivityOptions& options,
                                             const SensitivityProgress& progress = {});

// Spearman rank correlation (average ranks for ties); 0 when fewer than 2 values or a constant
// series.
double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b);

// JSON with every cell and the correlations (docs/cli.md, `lowbit sensitivity`).
std::string sensitivity_to_json(const SensitivityTable& table);
// Parses and checks a table against a model's config: every tensor must be a block linear of it,
// each listed once, bytes must equal format_bytes of the tensors' shapes, damages finite and >= 0.
// Errors name `source` and the offending entry.
Result<SensitivityTable> parse_sensitivity_json(const std::string& text, const std::string& source,
                                                const ModelConfig& config);

// Allocation items with damage = kld − base_kld (quant/mixed_allocation.h); the predicted KLD of
// an allocation is base_kld + its total damage.
std::vector<AllocationItem> allocation_items(const SensitivityTable& table);

// Evaluates `model` against `reference` on whole windows (as eval's protocol with window =
// each window's length): the measured counterpart of a predicted damage.
Result<EvalResult> evaluate_on_windows(std::shared_ptr<const Model> model, std::shared_ptr<const Model> reference,
                                       const TokenWindows& windows);

}  // namespace lowbit

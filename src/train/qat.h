// Quantization-aware training pieces over a whole model: the fake-quantized copy of the master
// weights the forward pass uses (quant/fake_quant.h: dq(q(W)) for the 7 linear weights of every
// block, the tensors `lowbit quantize` quantizes by default; embedding, norms and head stay
// float), the straight-through backward (the gradient w.r.t. dq(q(W)) is applied to W unchanged,
// so nothing is done to it), the teacher's distribution for distillation, and the final real
// quantization into QuantizedMatrix form for save_quantized_checkpoint.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/format.h"
#include "formats/quantized_matrix.h"
#include "train/param_layout.h"

namespace lowbit::train {

// effective = master with every block linear replaced by dq(q(·)) in `spec`. Threaded over tensors.
Status fake_quantize_params(const ParamLayout& layout, const FormatSpec& spec, const std::vector<float>& master,
                            std::vector<float>& effective);

// The block linears of `params` quantized for real (round-to-nearest on the same min/max grid the
// fake quantization used), by canonical tensor name.
Result<std::map<std::string, std::shared_ptr<const QuantizedMatrix>>> quantize_block_linears(
    const ParamLayout& layout, const FormatSpec& spec, const std::vector<float>& params);

// Log-softmax of the teacher's logits for every position of every window (each window from
// position 0): [windows, seq, vocab] as one array. Windows must all hold `seq` valid ids.
std::vector<float> teacher_log_probs(const ParamLayout& layout, const std::vector<float>& teacher_params,
                                     const std::vector<std::vector<int>>& windows, int seq);

// Mean KL(teacher ‖ student) over every position of the given windows, the student's
// parameters `params` used as they are (pass fake-quantized ones to measure the quantized model).
double mean_kld(const ParamLayout& layout, const std::vector<float>& params,
                const std::vector<std::vector<int>>& windows, const std::vector<int>& window_ids,
                const std::vector<float>& teacher_lp, int seq);

}  // namespace lowbit::train

// A naive double-precision forward pass: no KV cache, no BLAS, no threads, every sum in double.
// It is the yardstick the optimized Session is tested against (model/forward_test.cc).
#pragma once

#include <span>
#include <vector>

#include "model/model.h"

namespace lowbit {

// Logits [tokens.size(), vocab] for a sequence starting at position 0.
std::vector<double> reference_forward(const Model& model, std::span<const int> tokens);

}  // namespace lowbit

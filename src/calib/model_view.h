// An editable view of a Model for layer-by-layer calibration: a second Model whose LayerWeights
// (and so whose Linear::quantized / Linear::weight) the caller may change, while every weight
// buffer stays shared with the original. Nothing is copied: the view is rebuilt through
// Model::from_checkpoint from a Checkpoint whose F32 tensors point at the original's fp32 arrays
// (model.h: aligned F32 tensors are used in place) and whose quantized weights are the
// original's shared matrices. The returned pointer keeps `base` alive.
#pragma once

#include <memory>

#include "base/status.h"
#include "model/model.h"

namespace lowbit {

Result<std::shared_ptr<Model>> make_editable_view(std::shared_ptr<const Model> base);

}  // namespace lowbit

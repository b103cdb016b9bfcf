#include "calib/quantize_checkpoint.h"

#include "model/float_values.h"

namespace lowbit {

Status rtn_quantize_plan_to(const Checkpoint& ckpt, const Plan& plan, const RtnOptions& options,
                            const QuantizedSink& sink, const QuantizeProgressFn& progress) {
  std::vector<const PlanEntry*> todo;
  for (const auto& e : plan.entries)
    if (e.format.is_quantized() && e.method == "rtn") todo.push_back(&e);
  for (size_t i = 0; i < todo.size(); ++i) {
    const PlanEntry& e = *todo[i];
    if (progress) progress({"rtn", e.name, int64_t(i), int64_t(todo.size())});
    const RawTensor* t = ckpt.tensors.find(e.name);
    if (t == nullptr) return error(ErrorCode::kNotFound, "{}: no float tensor \"{}\" to quantize", ckpt.path, e.name);
    auto m = rtn_quantize(float_values(*t), e.rows, e.cols, e.format, options);
    if (!m.ok()) return m.status().with_context(e.name);
    ckpt.tensors.release_pages(t->data);
    LOWBIT_RETURN_IF_ERROR(sink(e.name, std::make_shared<QuantizedMatrix>(std::move(*m))));
  }
  if (progress) progress({"rtn", "", int64_t(todo.size()), int64_t(todo.size())});
  return Status::Ok();
}

Result<QuantizedWeights> rtn_quantize_plan(const Checkpoint& ckpt, const Plan& plan, const RtnOptions& options,
                                           const QuantizeProgressFn& progress) {
  QuantizedWeights out;
  LOWBIT_RETURN_IF_ERROR(rtn_quantize_plan_to(
      ckpt, plan, options,
      [&](const std::string& name, std::shared_ptr<const QuantizedMatrix> m) {
        out[name] = std::move(m);
        return Status::Ok();
      },
      progress));
  return out;
}

Checkpoint with_quantized_weights(const Checkpoint& ckpt, const QuantizedWeights& weights) {
  Checkpoint out;
  out.path = ckpt.path;
  out.format = ckpt.format;
  out.config = ckpt.config;
  out.tokenizer = ckpt.tokenizer;
  out.quantized = ckpt.quantized;
  std::vector<std::string> names;
  for (const auto& [name, m] : weights) {
    names.push_back(name);
    out.quantized[name] = m;
  }
  out.tensors = ckpt.tensors.without(names);
  return out;
}

std::vector<TensorShape> quantizable_tensors(const ModelConfig& config) {
  std::vector<TensorShape> shapes;
  for (const ExpectedTensor& e : expected_tensors(config))
    if (e.shape.size() == 2) shapes.push_back({e.name, e.shape[0], e.shape[1]});
  return shapes;
}

}  // namespace lowbit

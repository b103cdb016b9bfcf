#include "calib/streamed_model.h"

#include <sys/mman.h>

#include <algorithm>
#include <map>
#include <vector>

#include "model/float_values.h"

namespace lowbit {

namespace {

// A read-only anonymous mapping: reads see zeros (the shared zero page), nothing is resident.
class ZeroPages {
 public:
  explicit ZeroPages(size_t bytes) : bytes_(std::max<size_t>(bytes, 1)) {
    void* p = ::mmap(nullptr, bytes_, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    data_ = p == MAP_FAILED ? nullptr : static_cast<const float*>(p);
  }
  ~ZeroPages() {
    if (data_ != nullptr) ::munmap(const_cast<float*>(data_), bytes_);
  }
  ZeroPages(const ZeroPages&) = delete;
  ZeroPages& operator=(const ZeroPages&) = delete;
  const float* data() const { return data_; }

 private:
  size_t bytes_;
  const float* data_ = nullptr;
};

struct State {
  Checkpoint source;  // shares the mapped files
  std::unique_ptr<ZeroPages> zeros;
  std::map<int, std::vector<std::unique_ptr<float[]>>> converted;  // per loaded block
};

bool aligned_f32(const RawTensor& t) {
  return t.dtype == DType::kF32 && reinterpret_cast<uintptr_t>(t.data.data()) % alignof(float) == 0;
}

}  // namespace

Result<StreamedModel> make_streamed_model(const Checkpoint& ckpt) {
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ckpt));
  auto state = std::make_shared<State>();
  state->source = ckpt;
  const ModelConfig& c = ckpt.config;
  namespace tn = tensor_names;
  const char* kLinears[] = {tn::kQ, tn::kK, tn::kV, tn::kO, tn::kGate, tn::kUp, tn::kDown};

  // Float block linears become F32 placeholders (quantized ones stay as they are).
  std::vector<std::string> deferred;
  size_t largest = 0;
  for (int b = 0; b < c.n_layers; ++b)
    for (const char* suffix : kLinears) {
      const std::string name = tn::layer(b, suffix);
      if (const RawTensor* t = ckpt.tensors.find(name)) {
        deferred.push_back(name);
        largest = std::max(largest, size_t(t->numel()) * sizeof(float));
      }
    }
  state->zeros = std::make_unique<ZeroPages>(largest);
  if (state->zeros->data() == nullptr)
    return error(ErrorCode::kResource, "{}: cannot reserve {} bytes of placeholder weights", ckpt.path, largest);
  Checkpoint skeleton = ckpt;
  skeleton.tensors = ckpt.tensors.without(deferred);
  for (const std::string& name : deferred) {
    RawTensor t = *ckpt.tensors.find(name);
    t.dtype = DType::kF32;
    t.data = std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(state->zeros->data()),
                                      size_t(t.numel()) * sizeof(float));
    LOWBIT_RETURN_IF_ERROR(skeleton.tensors.add(std::move(t)));
  }
  StreamedModel out;
  LOWBIT_ASSIGN_OR_RETURN(std::shared_ptr<Model> model, Model::from_checkpoint(skeleton));
  out.model = model;

  out.load_block = [state](int b, LayerWeights& layer) -> Status {
    auto& buffers = state->converted[b];
    for (Linear* l : layer.linears()) {
      if (l->is_quantized()) continue;
      const RawTensor* t = state->source.tensors.find(l->name);
      if (t == nullptr) return error(ErrorCode::kInternal, "streamed model: no tensor {}", l->name);
      if (aligned_f32(*t)) {
        l->weight = reinterpret_cast<const float*>(t->data.data());
        continue;
      }
      const std::vector<float> values = float_values(*t);  // [out, in]
      buffers.push_back(std::make_unique<float[]>(values.size()));
      std::copy(values.begin(), values.end(), buffers.back().get());
      l->weight = buffers.back().get();
      state->source.tensors.release_pages(t->data);
    }
    return Status::Ok();
  };
  out.release_block = [state](int b, LayerWeights& layer) -> Status {
    for (Linear* l : layer.linears()) {
      l->weight = state->zeros->data();
      l->quantized.reset();
      l->packed.reset();
      if (const RawTensor* t = state->source.tensors.find(l->name)) state->source.tensors.release_pages(t->data);
    }
    state->converted.erase(b);
    return Status::Ok();
  };
  return out;
}

}  // namespace lowbit

#include "calib/rotate_checkpoint.h"

#include <cmath>
#include <map>
#include <vector>

#include "linalg/linalg.h"
#include "model/float_values.h"

namespace lowbit {
namespace {

namespace tn = tensor_names;
using Matrix = std::vector<float>;  // row-major

Matrix orthogonal(int64_t n, uint64_t seed) {
  const std::vector<double> q = linalg::random_orthogonal(n, seed);
  return Matrix(q.begin(), q.end());
}

// w [rows, cols] · diag(g): a norm's gain folded into the linears that read its output.
void scale_columns(Matrix& w, int64_t cols, const Matrix& g) {
  for (size_t i = 0; i < w.size(); ++i) w[i] *= g[i % size_t(cols)];
}

// w [rows, cols] · rᵀ, r [cols, cols].
Matrix times_transpose(const Matrix& w, int64_t cols, const Matrix& r) {
  const int64_t rows = int64_t(w.size()) / cols;
  Matrix out(w.size());
  linalg::gemm_f32(false, true, rows, cols, cols, 1.0f, w.data(), cols, r.data(), cols, 0.0f, out.data(), cols);
  return out;
}

// r [rows, rows] · w [rows, cols].
Matrix rotate_rows(const Matrix& r, const Matrix& w, int64_t rows) {
  const int64_t cols = int64_t(w.size()) / rows;
  Matrix out(w.size());
  linalg::gemm_f32(false, false, rows, cols, rows, 1.0f, r.data(), rows, w.data(), cols, 0.0f, out.data(), cols);
  return out;
}

// m [heads·hd, cols]: each head's hd rows become r · those rows (v's weights, cols = dim, and its
// bias, cols = 1).
void rotate_head_rows(Matrix& m, int heads, int64_t hd, const Matrix& r) {
  const int64_t block = int64_t(m.size()) / heads;  // hd rows
  for (int j = 0; j < heads; ++j) {
    const Matrix head(m.begin() + j * block, m.begin() + (j + 1) * block);
    const Matrix rotated = rotate_rows(r, head, hd);
    std::copy(rotated.begin(), rotated.end(), m.begin() + j * block);
  }
}

uint64_t layer_seed(uint64_t seed, int layer) { return seed * 0x9E3779B97F4A7C15ull + uint64_t(layer) + 1; }

}  // namespace

Result<Checkpoint> rotate_checkpoint(const Checkpoint& ck, const RotationOptions& options,
                                     const RotationProgress& progress) {
  if (!ck.quantized.empty())
    return error(ErrorCode::kInvalidArgument, "{}: cannot rotate {}: it is already quantized (rotate the float model)",
                 ck.path, ck.quantized.begin()->first);
  const ModelConfig& c = ck.config;
  Checkpoint out;
  out.path = ck.path;
  out.format = ck.format;
  out.config = c;
  out.config.tied_embeddings = false;
  out.tokenizer = ck.tokenizer;
  out.tensors.metadata() = ck.tensors.metadata();
  const std::vector<ExpectedTensor> expected = expected_tensors(out.config);

  // One block at a time, stored as soon as it is rotated: memory is the result plus one block.
  // Stored as F32 where the source tensor was F32, else as F16 (the rotated values of an F16 or
  // BF16 model are not exact in its type either; F16 keeps 11 bits, half the result's memory)
  // unless a value is beyond F16's range.
  std::map<std::string, Matrix> ready;
  std::map<std::string, DType> source_dtype;
  auto store = [&](const std::string& prefix) -> Status {
    for (const ExpectedTensor& e : expected) {
      if (e.name.rfind(prefix, 0) != 0 || !ready.count(e.name)) continue;
      Matrix& values = ready.at(e.name);
      DType dtype = source_dtype.count(e.name) && source_dtype.at(e.name) != DType::kF32 ? DType::kF16 : DType::kF32;
      for (float v : values)
        if (!(std::abs(v) <= 65504.0f)) dtype = DType::kF32;
      LOWBIT_RETURN_IF_ERROR(out.tensors.add_owned(e.name, dtype, e.shape, encode_floats(values, dtype)));
      ready.erase(e.name);
    }
    return Status::Ok();
  };
  auto load = [&](const std::string& name) -> Result<Matrix> {
    const RawTensor* t = ck.tensors.find(name);
    if (t == nullptr) return error(ErrorCode::kFormat, "{}: tensor {} is missing", ck.path, name);
    source_dtype[name] = t->dtype;
    return float_values(*t);
  };

  const int64_t dim = c.dim, hd = c.head_dim, q_dim = c.q_dim();
  const Matrix q = orthogonal(dim, options.seed);
  const Matrix ones(size_t(dim), 1.0f);
  {
    LOWBIT_ASSIGN_OR_RETURN(Matrix embedding, load(tn::embed()));
    ready[tn::embed()] = times_transpose(embedding, dim, q);
    LOWBIT_RETURN_IF_ERROR(store(tn::embed()));
  }
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string prefix = tn::layer(l, "");
    for (const ExpectedTensor& e : expected)
      if (e.name.rfind(prefix, 0) == 0) {
        LOWBIT_ASSIGN_OR_RETURN(ready[e.name], load(e.name));
      }
    auto at = [&](const char* suffix) -> Matrix& { return ready.at(tn::layer(l, suffix)); };
    for (const char* reader : {tn::kQ, tn::kK, tn::kV}) {
      scale_columns(at(reader), dim, at(tn::kAttnNorm));
      at(reader) = times_transpose(at(reader), dim, q);
    }
    for (const char* reader : {tn::kGate, tn::kUp}) {
      scale_columns(at(reader), dim, at(tn::kFfnNorm));
      at(reader) = times_transpose(at(reader), dim, q);
    }
    at(tn::kAttnNorm) = ones;
    at(tn::kFfnNorm) = ones;
    Matrix& o = at(tn::kO);  // [dim, q_dim]
    if (options.value_heads) {
      const Matrix r = orthogonal(hd, layer_seed(options.seed, l));
      rotate_head_rows(at(tn::kV), c.n_kv_heads, hd, r);  // [kv_dim, dim]: kv head j's rows [j·hd, (j+1)·hd)
      if (c.attention_bias) rotate_head_rows(at(tn::kVBias), c.n_kv_heads, hd, r);
      // o's columns [h·hd, (h+1)·hd) read query head h's output, which mixes kv head h / group's
      // values: they become o_h · Rᵀ (every query head, whichever kv head it shares).
      Matrix rotated(size_t(dim * hd));
      for (int h = 0; h < c.n_heads; ++h) {
        linalg::gemm_f32(false, true, dim, hd, hd, 1.0f, o.data() + h * hd, q_dim, r.data(), hd, 0.0f, rotated.data(),
                         hd);
        for (int64_t row = 0; row < dim; ++row)
          std::copy(rotated.begin() + row * hd, rotated.begin() + (row + 1) * hd, o.begin() + row * q_dim + h * hd);
      }
    }
    o = rotate_rows(q, o, dim);
    at(tn::kDown) = rotate_rows(q, at(tn::kDown), dim);
    LOWBIT_RETURN_IF_ERROR(store(prefix));
    if (progress) progress(l + 1, c.n_layers);
  }
  // The head reads the final norm's output: its gain folds in, so it leaves the embedding.
  LOWBIT_ASSIGN_OR_RETURN(Matrix head, load(c.tied_embeddings ? tn::embed() : tn::lm_head()));
  source_dtype[tn::lm_head()] = source_dtype.at(c.tied_embeddings ? tn::embed() : tn::lm_head());
  LOWBIT_ASSIGN_OR_RETURN(const Matrix final_norm, load(tn::final_norm()));
  scale_columns(head, dim, final_norm);
  ready[tn::final_norm()] = ones;
  ready[tn::lm_head()] = times_transpose(head, dim, q);
  LOWBIT_RETURN_IF_ERROR(store(tn::final_norm()));
  LOWBIT_RETURN_IF_ERROR(store(tn::lm_head()));
  return out;
}

}  // namespace lowbit

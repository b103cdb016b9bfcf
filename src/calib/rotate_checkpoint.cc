#include "calib/rotate_checkpoint.h"

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

uint64_t layer_seed(uint64_t seed, int layer) { return seed * 0x9E3779B97F4A7C15ull + uint64_t(layer) + 1; }

}  // namespace

Result<Checkpoint> rotate_checkpoint(const Checkpoint& ck, const RotationOptions& options) {
  if (!ck.quantized.empty())
    return error(ErrorCode::kInvalidArgument, "{}: cannot rotate {}: it is already quantized (rotate the float model)",
                 ck.path, ck.quantized.begin()->first);
  const ModelConfig& c = ck.config;
  std::map<std::string, Matrix> w;
  for (const ExpectedTensor& e : expected_tensors(c)) {
    const RawTensor* t = ck.tensors.find(e.name);
    if (t == nullptr) return error(ErrorCode::kFormat, "{}: tensor {} is missing", ck.path, e.name);
    w[e.name] = float_values(*t);
  }
  const int64_t dim = c.dim, hd = c.head_dim, q_dim = c.q_dim();
  const Matrix q = orthogonal(dim, options.seed);
  const Matrix ones(size_t(dim), 1.0f);
  for (int l = 0; l < c.n_layers; ++l) {
    auto at = [&](const char* suffix) -> Matrix& { return w.at(tn::layer(l, suffix)); };
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
      Matrix& v = at(tn::kV);  // [kv_dim, dim]: kv head j's rows [j·hd, (j+1)·hd)
      for (int j = 0; j < c.n_kv_heads; ++j) {
        const Matrix head(v.begin() + j * hd * dim, v.begin() + (j + 1) * hd * dim);
        const Matrix rotated = rotate_rows(r, head, hd);
        std::copy(rotated.begin(), rotated.end(), v.begin() + j * hd * dim);
      }
      if (c.attention_bias) {
        Matrix& b = at(tn::kVBias);
        for (int j = 0; j < c.n_kv_heads; ++j) {
          const Matrix head(b.begin() + j * hd, b.begin() + (j + 1) * hd);
          const Matrix rotated = rotate_rows(r, head, hd);
          std::copy(rotated.begin(), rotated.end(), b.begin() + j * hd);
        }
      }
      // o's columns [h·hd, (h+1)·hd) read query head h's output, which mixes kv head h / group's
      // values: they become o_h · Rᵀ (every query head, whichever kv head it shares).
      Matrix block(size_t(dim * hd)), rotated(size_t(dim * hd));
      for (int h = 0; h < c.n_heads; ++h) {
        linalg::gemm_f32(false, true, dim, hd, hd, 1.0f, o.data() + h * hd, q_dim, r.data(), hd, 0.0f, rotated.data(),
                         hd);
        for (int64_t row = 0; row < dim; ++row)
          std::copy(rotated.begin() + row * hd, rotated.begin() + (row + 1) * hd, o.begin() + row * q_dim + h * hd);
      }
    }
    o = rotate_rows(q, o, dim);
    at(tn::kDown) = rotate_rows(q, at(tn::kDown), dim);
  }
  // The head reads the final norm's output: its gain folds in, so it leaves the embedding.
  Matrix head = c.tied_embeddings ? w.at(tn::embed()) : w.at(tn::lm_head());
  scale_columns(head, dim, w.at(tn::final_norm()));
  w[tn::lm_head()] = times_transpose(head, dim, q);
  w.at(tn::embed()) = times_transpose(w.at(tn::embed()), dim, q);
  w.at(tn::final_norm()) = ones;

  Checkpoint out;
  out.path = ck.path;
  out.format = ck.format;
  out.config = c;
  out.config.tied_embeddings = false;
  out.tokenizer = ck.tokenizer;
  out.tensors.metadata() = ck.tensors.metadata();
  for (const ExpectedTensor& e : expected_tensors(out.config)) {
    Matrix& values = w.at(e.name);
    LOWBIT_RETURN_IF_ERROR(out.tensors.add_owned(e.name, DType::kF32, e.shape, encode_floats(values, DType::kF32)));
    Matrix().swap(values);  // one copy at a time
  }
  return out;
}

}  // namespace lowbit

#include "model/forward.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

#include <cblas.h>

#include "kernels/kernels.h"

namespace lowbit {

void rms_norm(const float* x, const float* weight, int dim, float eps, float* out) {
  // Eight partial sums: one chain of dependent double additions took 2.8 us per 2048-wide norm,
  // serial work on decode's path that the other threads wait for. Each square is exact in double.
  constexpr int kChains = 8;
  double partial[kChains] = {};
  int i = 0;
  for (; i + kChains <= dim; i += kChains)
    for (int j = 0; j < kChains; ++j) partial[j] += double(x[i + j]) * x[i + j];
  for (; i < dim; ++i) partial[0] += double(x[i]) * x[i];
  double sum_sq = 0;
  for (double p : partial) sum_sq += p;
  const float inv = float(1.0 / std::sqrt(sum_sq / dim + eps));
  for (int i = 0; i < dim; ++i) out[i] = x[i] * inv * weight[i];
}

void apply_rope(float* head, int head_dim, RopeStyle style, const float* cos_row, const float* sin_row) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    // Pair i rotates by angle pos * theta^(-2i/head_dim); the pair's members differ by style.
    const int a = style == RopeStyle::kInterleaved ? 2 * i : i;
    const int b = style == RopeStyle::kInterleaved ? 2 * i + 1 : i + half;
    const float x0 = head[a], x1 = head[b], c = cos_row[i], s = sin_row[i];
    head[a] = x0 * c - x1 * s;
    head[b] = x0 * s + x1 * c;
  }
}

Session::Session(std::shared_ptr<const Model> model, int max_tokens) : model_(std::move(model)) {
  const ModelConfig& c = model_->config();
  capacity_ = max_tokens > 0 ? max_tokens : c.max_seq_len;
  key_cache_.assign(size_t(c.n_layers) * capacity_ * c.kv_dim(), 0.0f);
  value_cache_.assign(key_cache_.size(), 0.0f);
  const int half = c.head_dim / 2;
  rope_cos_.resize(size_t(capacity_) * half);
  rope_sin_.resize(rope_cos_.size());
  for (int p = 0; p < capacity_; ++p)
    for (int i = 0; i < half; ++i) {
      // Frequencies in fp32 as the reference implementations compute them, angle in double.
      const float freq = 1.0f / std::pow(c.rope_theta, float(2 * i) / float(c.head_dim));
      const double angle = double(p) * double(freq);
      rope_cos_[size_t(p) * half + i] = float(std::cos(angle));
      rope_sin_[size_t(p) * half + i] = float(std::sin(angle));
    }
}

void Session::ensure_scratch(int n) {
  if (n <= scratch_tokens_) return;
  const ModelConfig& c = model_->config();
  scratch_tokens_ = n;
  normed_.resize(size_t(n) * c.dim);
  q_.resize(size_t(n) * c.q_dim());
  k_.resize(size_t(n) * c.kv_dim());
  v_.resize(size_t(n) * c.kv_dim());
  att_out_.resize(size_t(n) * c.q_dim());
  gate_.resize(size_t(n) * c.hidden_dim);
  up_.resize(size_t(n) * c.hidden_dim);
  tmp_.resize(size_t(n) * c.dim);
}

void Session::run_linear(int layer, const Linear& l, const float* x, int n, float* y) {
  run_linears(layer, {&l}, x, n, {y});
}

void Session::run_linears(int layer, std::initializer_list<const Linear*> ls, const float* x, int n,
                          std::initializer_list<float*> ys) {
  if (hook_)
    for (const Linear* l : ls) hook_(LinearInput{layer, l, x, n});
  const std::span<const Linear* const> layers(ls.begin(), ls.size());
  const auto t0 = std::chrono::steady_clock::now();
  linear_forward_shared_input(layers, x, n, std::span<float* const>(ys.begin(), ys.size()));
  if (timer_) timer_(layers, n, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

void Session::embed(std::span<const int> tokens, float* x) const {
  const int dim = model_->config().dim;
  for (size_t t = 0; t < tokens.size(); ++t)
    std::memcpy(x + t * dim, model_->embedding() + size_t(tokens[t]) * dim, sizeof(float) * dim);
}

namespace {

// Rows of exp(score - max) / sum over the first `valid` entries of a score row; the masked tail
// (later positions, which a causal query must not see) becomes exact zeros.
void softmax_prefix(float* row, int valid, int length) {
  kernels::kernels().softmax_f32(row, valid);
  std::fill(row + valid, row + length, 0.0f);
}

// body(i) for i in [0, n), split across the threads when `threaded`. A parallel region that an
// `if (false)` clause keeps to one thread still costs ~0.3 us in libgomp (team set-up and
// teardown), and one decode layer had six of them.
template <class Body>
void for_each_index(bool threaded, int64_t n, Body&& body) {
  if (!threaded) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) body(i);
}

}  // namespace

void Session::attention(int layer, int n, int start) {
  if (n == 1) {
    attention_one_token(layer, start);
    return;
  }
  // Several tokens (prefill): per head, the scores of a chunk of queries against every cached
  // position are one matrix product Q_h K_g^T, and the output one product P V_g (BLAS, single-
  // threaded inside this parallel region), instead of one dot product per (query, position).
  // The causal mask is applied to the score rows before the second product; the masked products
  // are wasted work, a small price next to BLAS's speed over scalar loops.
  const ModelConfig& c = model_->config();
  const int hd = c.head_dim, q_dim = c.q_dim();
  const int group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(float(hd));
  // Query chunks bound the score buffer (chunk x positions) for long prompts.
  constexpr int kChunk = 64;
  const int chunks = (n + kChunk - 1) / kChunk;
  const double work = double(n) * c.n_heads * (start + n) * hd;
#pragma omp parallel if (work > 1e6)
  {
    std::vector<float> scores;
#pragma omp for collapse(2) schedule(static)
    for (int h = 0; h < c.n_heads; ++h)
      for (int ch = 0; ch < chunks; ++ch) {
        const int t0 = ch * kChunk, rows = std::min(kChunk, n - t0);
        const int length = start + t0 + rows;  // positions the chunk's last query sees
        scores.resize(size_t(rows) * length);
        const float* q = q_.data() + size_t(t0) * q_dim + size_t(h) * hd;
        const float* k = key_cache_.data() + kv_cache_at(layer, h / group, 0);
        const float* v = value_cache_.data() + kv_cache_at(layer, h / group, 0);
        // scores [rows, length] = scale * Q [rows, hd] K^T [hd, length]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, length, hd, scale, q, q_dim, k, hd, 0.0f,
                    scores.data(), length);
        for (int r = 0; r < rows; ++r) softmax_prefix(scores.data() + size_t(r) * length, start + t0 + r + 1, length);
        // out [rows, hd] = P [rows, length] V [length, hd]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, length, 1.0f, scores.data(), length, v,
                    hd, 0.0f, att_out_.data() + size_t(t0) * q_dim + size_t(h) * hd, q_dim);
      }
  }
}

void Session::attention_one_token(int layer, int start) {
  // One query per head. The query heads that share a key/value head are consecutive rows of q, so
  // per kv head the scores are one small product Q_g [group, hd] K_g^T [hd, positions] and the
  // output one P V_g (BLAS, single-threaded inside the parallel region): the key and value rows
  // are read once per group instead of once per head, with the BLAS's vector width (the loops it
  // replaced ran at the baseline ISA's 4 floats and took ~10% of W4A8 decode time on TinyLlama).
  const ModelConfig& c = model_->config();
  const int hd = c.head_dim, positions = start + 1;
  const int group = c.n_heads / c.n_kv_heads;
  const float scale = 1.0f / std::sqrt(float(hd));
  // Threads only pay off when there is real work: a tiny model's attention is done faster on one
  // core than it takes to wake the other (~10 us for a parallel region here).
  const double work = double(c.n_heads) * positions * hd;
#pragma omp parallel if (work >= double(1 << 17))
  {
    std::vector<float> scores(size_t(group) * positions);
#pragma omp for schedule(static)
    for (int g = 0; g < c.n_kv_heads; ++g) {
      const float* q = q_.data() + size_t(g) * group * hd;
      const float* k = key_cache_.data() + kv_cache_at(layer, g, 0);
      const float* v = value_cache_.data() + kv_cache_at(layer, g, 0);
      // scores [group, positions] = scale * Q_g [group, hd] K_g^T [hd, positions]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, group, positions, hd, scale, q, hd, k, hd, 0.0f,
                  scores.data(), positions);
      for (int r = 0; r < group; ++r) softmax_prefix(scores.data() + size_t(r) * positions, positions, positions);
      // out [group, hd] = P [group, positions] V_g [positions, hd]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, group, hd, positions, 1.0f, scores.data(), positions,
                  v, hd, 0.0f, att_out_.data() + size_t(g) * group * hd, hd);
    }
  }
}

void Session::forward_block(int layer, float* x, int n, int start) {
  const ModelConfig& c = model_->config();
  const LayerWeights& L = model_->layers()[size_t(layer)];
  ensure_scratch(n);
  const int dim = c.dim, hd = c.head_dim, kv_dim = c.kv_dim(), q_dim = c.q_dim(), hidden = c.hidden_dim;
  const int half = hd / 2;

  // The per-token element-wise work below is split across threads for prompts (it was a fifth of
  // W8A8 prefill time on one thread once the matrix products were fast); one token stays serial.
  const bool threaded = int64_t(n) * hidden >= (int64_t(1) << 16);

  // Attention: x += Wo · attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))
  for_each_index(threaded, n, [&](int64_t t) {
    rms_norm(x + t * dim, L.attn_norm, dim, c.norm_eps, &normed_[size_t(t * dim)]);
  });
  run_linears(layer, {&L.q, &L.k, &L.v}, normed_.data(), n, {q_.data(), k_.data(), v_.data()});
  for_each_index(threaded, n, [&](int64_t t) {
    const int pos = start + int(t);
    const float* cos_row = &rope_cos_[size_t(pos) * half];
    const float* sin_row = &rope_sin_[size_t(pos) * half];
    for (int h = 0; h < c.n_heads; ++h) apply_rope(&q_[size_t(t) * q_dim + size_t(h) * hd], hd, c.rope_style, cos_row, sin_row);
    for (int h = 0; h < c.n_kv_heads; ++h) apply_rope(&k_[size_t(t) * kv_dim + size_t(h) * hd], hd, c.rope_style, cos_row, sin_row);
    for (int h = 0; h < c.n_kv_heads; ++h) {
      const size_t slot = kv_cache_at(layer, h, pos);
      std::memcpy(&key_cache_[slot], &k_[size_t(t) * kv_dim + size_t(h) * hd], sizeof(float) * hd);
      std::memcpy(&value_cache_[slot], &v_[size_t(t) * kv_dim + size_t(h) * hd], sizeof(float) * hd);
    }
  });
  attention(layer, n, start);
  run_linear(layer, L.o, att_out_.data(), n, tmp_.data());
  for_each_index(threaded, int64_t(n) * dim, [&](int64_t i) { x[i] += tmp_[size_t(i)]; });

  // Feed-forward (SwiGLU): x += W_down · (silu(W_gate·n(x)) ⊙ W_up·n(x))
  for_each_index(threaded, n, [&](int64_t t) {
    rms_norm(x + t * dim, L.ffn_norm, dim, c.norm_eps, &normed_[size_t(t * dim)]);
  });
  run_linears(layer, {&L.gate, &L.up}, normed_.data(), n, {gate_.data(), up_.data()});
  for_each_index(threaded, n, [&](int64_t t) {
    float* g = gate_.data() + t * hidden;
    kernels::kernels().silu_mul_f32(g, up_.data() + t * hidden, hidden, g);
  });
  run_linear(layer, L.down, gate_.data(), n, tmp_.data());
  for_each_index(threaded, int64_t(n) * dim, [&](int64_t i) { x[i] += tmp_[size_t(i)]; });
}

void Session::output_logits(const float* x, int n, float* logits) {
  const ModelConfig& c = model_->config();
  ensure_scratch(n);
  for (int t = 0; t < n; ++t) rms_norm(x + size_t(t) * c.dim, model_->final_norm(), c.dim, c.norm_eps, &normed_[size_t(t) * c.dim]);
  run_linear(-1, model_->lm_head(), normed_.data(), n, logits);
}

Status Session::forward(std::span<const int> tokens, bool all_logits, std::vector<float>* logits) {
  const ModelConfig& c = model_->config();
  const int n = int(tokens.size());
  if (n == 0) return error(ErrorCode::kInvalidArgument, "forward: no tokens");
  if (position_ + n > capacity_)
    return error(ErrorCode::kInvalidArgument, "sequence of {} tokens exceeds the context of {} tokens", position_ + n,
                 capacity_);
  for (int id : tokens)
    if (id < 0 || id >= c.vocab_size)
      return error(ErrorCode::kInvalidArgument, "token id {} is outside the vocabulary [0, {})", id, c.vocab_size);
  std::vector<float> x(size_t(n) * c.dim);
  embed(tokens, x.data());
  for (int l = 0; l < c.n_layers; ++l) forward_block(l, x.data(), n, position_);
  position_ += n;
  const int rows = all_logits ? n : 1;
  logits->resize(size_t(rows) * c.vocab_size);
  output_logits(x.data() + size_t(n - rows) * c.dim, rows, logits->data());
  return Status::Ok();
}

}  // namespace lowbit

#include "model/reference_forward.h"

#include <cmath>

namespace lowbit {

namespace {

using Vec = std::vector<double>;

Vec norm(const Vec& x, const float* w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  Vec out(x.size());
  for (size_t i = 0; i < x.size(); ++i) out[i] = x[i] * inv * w[i];
  return out;
}

Vec matvec(const Linear& l, const Vec& x) {
  Vec y(size_t(l.out_features));
  for (int o = 0; o < l.out_features; ++o) {
    double s = l.bias ? double(l.bias[o]) : 0.0;
    for (int i = 0; i < l.in_features; ++i) s += double(l.weight[size_t(o) * l.in_features + i]) * x[size_t(i)];
    y[size_t(o)] = s;
  }
  return y;
}

void rope(Vec& v, int n_heads, const ModelConfig& c, int pos) {
  const int hd = c.head_dim, half = hd / 2;
  for (int h = 0; h < n_heads; ++h)
    for (int i = 0; i < half; ++i) {
      const double freq = double(1.0f / std::pow(c.rope_theta, float(2 * i) / float(hd)));
      const double a = pos * freq;
      const int j0 = h * hd + (c.rope_style == RopeStyle::kInterleaved ? 2 * i : i);
      const int j1 = h * hd + (c.rope_style == RopeStyle::kInterleaved ? 2 * i + 1 : i + half);
      const double x0 = v[size_t(j0)], x1 = v[size_t(j1)];
      v[size_t(j0)] = x0 * std::cos(a) - x1 * std::sin(a);
      v[size_t(j1)] = x0 * std::sin(a) + x1 * std::cos(a);
    }
}

}  // namespace

std::vector<double> reference_forward(const Model& model, std::span<const int> tokens) {
  const ModelConfig& c = model.config();
  const size_t n = tokens.size();
  const int hd = c.head_dim, group = c.n_heads / c.n_kv_heads;
  std::vector<Vec> x(n, Vec(size_t(c.dim)));
  for (size_t t = 0; t < n; ++t)
    for (int i = 0; i < c.dim; ++i) x[t][size_t(i)] = model.embedding()[size_t(tokens[t]) * c.dim + i];

  for (const LayerWeights& L : model.layers()) {
    std::vector<Vec> q(n), k(n), v(n);
    for (size_t t = 0; t < n; ++t) {
      Vec h = norm(x[t], L.attn_norm, c.norm_eps);
      q[t] = matvec(L.q, h);
      k[t] = matvec(L.k, h);
      v[t] = matvec(L.v, h);
      rope(q[t], c.n_heads, c, int(t));
      rope(k[t], c.n_kv_heads, c, int(t));
    }
    for (size_t t = 0; t < n; ++t) {
      Vec att(size_t(c.q_dim()), 0.0);
      for (int h = 0; h < c.n_heads; ++h) {
        const int kvh = h / group;
        Vec scores(t + 1);
        double max_s = -INFINITY;
        for (size_t p = 0; p <= t; ++p) {
          double s = 0;
          for (int i = 0; i < hd; ++i) s += q[t][size_t(h * hd + i)] * k[p][size_t(kvh * hd + i)];
          scores[p] = s / std::sqrt(double(hd));
          max_s = std::max(max_s, scores[p]);
        }
        double sum = 0;
        for (double& s : scores) sum += (s = std::exp(s - max_s));
        for (size_t p = 0; p <= t; ++p)
          for (int i = 0; i < hd; ++i) att[size_t(h * hd + i)] += scores[p] / sum * v[p][size_t(kvh * hd + i)];
      }
      Vec o = matvec(L.o, att);
      for (int i = 0; i < c.dim; ++i) x[t][size_t(i)] += o[size_t(i)];
      Vec h = norm(x[t], L.ffn_norm, c.norm_eps);
      Vec g = matvec(L.gate, h), u = matvec(L.up, h);
      for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1.0 + std::exp(-g[i])) * u[i];
      Vec d = matvec(L.down, g);
      for (int i = 0; i < c.dim; ++i) x[t][size_t(i)] += d[size_t(i)];
    }
  }
  std::vector<double> logits(n * size_t(c.vocab_size));
  for (size_t t = 0; t < n; ++t) {
    Vec h = norm(x[t], model.final_norm(), c.norm_eps);
    Vec l = matvec(model.lm_head(), h);
    std::copy(l.begin(), l.end(), logits.begin() + std::ptrdiff_t(t * c.vocab_size));
  }
  return logits;
}

}  // namespace lowbit

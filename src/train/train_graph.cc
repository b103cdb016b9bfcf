#include "train/train_graph.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace lowbit::train {

namespace {

// C [M, N] = alpha * op(A) op(B) + beta * C, row-major.
void gemm(bool ta, bool tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
          float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
              B, ldb, beta, C, ldc);
}
void gemm(bool ta, bool tb, int M, int N, int K, double alpha, const double* A, int lda, const double* B, int ldb,
          double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
              B, ldb, beta, C, ldc);
}

// y [n, out] = x [n, in] · Wᵀ, W [out, in].
template <typename T>
void linear_forward(const T* x, const T* w, int n, int out, int in, T* y) {
  gemm(false, true, n, out, in, T(1), x, in, w, in, T(0), y, out);
}
// dx [n, in] = beta * dx + dy [n, out] · W;  dW [out, in] += dyᵀ · x.
template <typename T>
void linear_backward(const T* x, const T* w, const T* dy, int n, int out, int in, T beta, T* dx, T* dw) {
  gemm(false, false, n, in, out, T(1), dy, out, w, in, beta, dx, in);
  gemm(true, false, out, in, n, T(1), dy, out, x, in, T(1), dw, in);
}

template <typename T>
void resize(std::vector<T>& v, size_t n) {
  v.assign(n, T(0));
}

// log-softmax of one row, sums in double.
template <typename T>
void log_softmax_row(const T* x, int n, std::vector<double>& out) {
  double m = -INFINITY;
  for (int i = 0; i < n; ++i) m = std::max(m, double(x[i]));
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(double(x[i]) - m);
  const double lse = m + std::log(s);
  out.resize(size_t(n));
  for (int i = 0; i < n; ++i) out[size_t(i)] = double(x[i]) - lse;
}

}  // namespace

template <typename T>
void rope_tables(const ModelConfig& c, int seq, std::vector<T>* cos, std::vector<T>* sin) {
  const int half = c.head_dim / 2;
  cos->resize(size_t(seq) * half);
  sin->resize(cos->size());
  for (int p = 0; p < seq; ++p)
    for (int i = 0; i < half; ++i) {
      // As model/forward.cc: frequency in fp32, angle in double.
      const float freq = 1.0f / std::pow(c.rope_theta, float(2 * i) / float(c.head_dim));
      const double angle = double(p) * double(freq);
      (*cos)[size_t(p) * half + i] = T(std::cos(angle));
      (*sin)[size_t(p) * half + i] = T(std::sin(angle));
    }
}

template <typename T>
void rmsnorm_forward(const T* x, const T* w, int rows, int dim, T eps, T* y, T* inv_rms) {
#pragma omp parallel for schedule(static) if (rows * dim > (1 << 18))
  for (int r = 0; r < rows; ++r) {
    const T* xr = x + size_t(r) * dim;
    double ss = 0;
    for (int i = 0; i < dim; ++i) ss += double(xr[i]) * double(xr[i]);
    const T inv = T(1.0 / std::sqrt(ss / dim + double(eps)));
    inv_rms[r] = inv;
    T* yr = y + size_t(r) * dim;
    for (int i = 0; i < dim; ++i) yr[i] = xr[i] * inv * w[i];
  }
}

template <typename T>
void rmsnorm_backward(const T* x, const T* w, const T* inv_rms, const T* dy, int rows, int dim, T* dx, T* dw) {
  // y_i = x_i r w_i with r = (mean(x²) + eps)^(-1/2), dr/dx_j = -r³ x_j / dim:
  // dx_j = r w_j dy_j − x_j r³/dim Σ_i dy_i w_i x_i;  dw_i = Σ_rows dy_i x_i r.
#pragma omp parallel for schedule(static) if (rows * dim > (1 << 18))
  for (int r = 0; r < rows; ++r) {
    const T* xr = x + size_t(r) * dim;
    const T* dyr = dy + size_t(r) * dim;
    const T inv = inv_rms[r];
    double dot = 0;
    for (int i = 0; i < dim; ++i) dot += double(dyr[i]) * double(w[i]) * double(xr[i]);
    const T k = T(dot * double(inv) * double(inv) * double(inv) / dim);
    T* dxr = dx + size_t(r) * dim;
    for (int i = 0; i < dim; ++i) dxr[i] += inv * w[i] * dyr[i] - xr[i] * k;
  }
#pragma omp parallel for schedule(static) if (rows * dim > (1 << 18))
  for (int i = 0; i < dim; ++i) {
    T s = 0;
    for (int r = 0; r < rows; ++r) s += dy[size_t(r) * dim + i] * x[size_t(r) * dim + i] * inv_rms[r];
    dw[i] += s;
  }
}

template <typename T>
void rope_apply(T* x, int rows, int seq, int n_heads, int head_dim, RopeStyle style, const T* cos, const T* sin,
                bool inverse) {
  const int half = head_dim / 2, width = n_heads * head_dim;
#pragma omp parallel for schedule(static) if (rows * width > (1 << 18))
  for (int r = 0; r < rows; ++r) {
    const int pos = r % seq;
    const T* c = cos + size_t(pos) * half;
    const T* s = sin + size_t(pos) * half;
    for (int h = 0; h < n_heads; ++h) {
      T* head = x + size_t(r) * width + size_t(h) * head_dim;
      for (int i = 0; i < half; ++i) {
        const int a = style == RopeStyle::kInterleaved ? 2 * i : i;
        const int b = style == RopeStyle::kInterleaved ? 2 * i + 1 : i + half;
        const T x0 = head[a], x1 = head[b], sn = inverse ? -s[i] : s[i];
        head[a] = x0 * c[i] - x1 * sn;
        head[b] = x0 * sn + x1 * c[i];
      }
    }
  }
}

// Attention per (sequence, head) as small matrix products through BLAS (the strided views of q,
// k, v select one head's columns): S = scale · Q Kᵀ, causal softmax row by row, O = P V. Queries
// go in blocks of kQueryBlock rows; a block [t0, t1) only needs keys [0, t1), so the products
// skip most of the masked upper triangle (seq 256: 10/16 of the full square).
constexpr int kQueryBlock = 64;

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, int batch, int seq, int n_heads, int n_kv_heads,
                       int head_dim, T* probs, T* out) {
  const int q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim, group = n_heads / n_kv_heads;
  const T scale = T(1) / std::sqrt(T(head_dim));
  // Threads only when there is enough work to pay for waking them.
  const bool threaded = double(batch) * n_heads * seq * seq * head_dim > 4e6;
#pragma omp parallel for collapse(2) schedule(static) if (threaded)
  for (int b = 0; b < batch; ++b)
    for (int h = 0; h < n_heads; ++h) {
      const int kvh = h / group;
      const T* qh = q + size_t(b) * seq * q_dim + size_t(h) * head_dim;     // [seq, hd], row stride q_dim
      const T* kh = k + size_t(b) * seq * kv_dim + size_t(kvh) * head_dim;  // [seq, hd], row stride kv_dim
      const T* vh = v + size_t(b) * seq * kv_dim + size_t(kvh) * head_dim;
      T* ph = probs + (size_t(b) * n_heads + h) * seq * seq;                // [seq, seq]
      T* oh = out + size_t(b) * seq * q_dim + size_t(h) * head_dim;
      for (int t0 = 0; t0 < seq; t0 += kQueryBlock) {
        const int t1 = std::min(seq, t0 + kQueryBlock), rows = t1 - t0;
        T* pb = ph + size_t(t0) * seq;
        gemm(false, true, rows, t1, head_dim, scale, qh + size_t(t0) * q_dim, q_dim, kh, kv_dim, T(0), pb, seq);
        for (int t = t0; t < t1; ++t) {
          T* pt = ph + size_t(t) * seq;
          T m = -INFINITY;
          for (int p = 0; p <= t; ++p) m = std::max(m, pt[p]);
          T sum = 0;
          for (int p = 0; p <= t; ++p) sum += (pt[p] = std::exp(pt[p] - m));
          const T inv = T(1) / sum;
          for (int p = 0; p <= t; ++p) pt[p] *= inv;
          std::fill(pt + t + 1, pt + seq, T(0));
        }
        gemm(false, false, rows, head_dim, t1, T(1), pb, seq, vh, kv_dim, T(0), oh + size_t(t0) * q_dim, q_dim);
      }
    }
}

template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* probs, const T* dout, int batch, int seq,
                        int n_heads, int n_kv_heads, int head_dim, T* dq, T* dk, T* dv) {
  const int q_dim = n_heads * head_dim, kv_dim = n_kv_heads * head_dim, group = n_heads / n_kv_heads;
  const T scale = T(1) / std::sqrt(T(head_dim));
  // One task per (sequence, kv head): it owns dk/dv of that head and dq of the heads sharing it.
  const bool threaded = double(batch) * n_heads * seq * seq * head_dim > 4e6;
#pragma omp parallel if (threaded)
  {
    std::vector<T> ds(size_t(kQueryBlock) * seq);  // [block rows, seq]
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < batch; ++b)
      for (int kvh = 0; kvh < n_kv_heads; ++kvh) {
        const T* kh = k + size_t(b) * seq * kv_dim + size_t(kvh) * head_dim;
        const T* vh = v + size_t(b) * seq * kv_dim + size_t(kvh) * head_dim;
        T* dkh = dk + size_t(b) * seq * kv_dim + size_t(kvh) * head_dim;
        T* dvh = dv + size_t(b) * seq * kv_dim + size_t(kvh) * head_dim;
        for (int p = 0; p < seq; ++p) {
          std::fill_n(dkh + size_t(p) * kv_dim, head_dim, T(0));
          std::fill_n(dvh + size_t(p) * kv_dim, head_dim, T(0));
        }
        for (int h = kvh * group; h < (kvh + 1) * group; ++h) {
          const T* ph = probs + (size_t(b) * n_heads + h) * seq * seq;
          const T* qh = q + size_t(b) * seq * q_dim + size_t(h) * head_dim;
          const T* doh = dout + size_t(b) * seq * q_dim + size_t(h) * head_dim;
          T* dqh = dq + size_t(b) * seq * q_dim + size_t(h) * head_dim;
          for (int t0 = 0; t0 < seq; t0 += kQueryBlock) {
            const int t1 = std::min(seq, t0 + kQueryBlock), rows = t1 - t0;
            const T* pb = ph + size_t(t0) * seq;  // [rows, t1] with row stride seq
            const T* dob = doh + size_t(t0) * q_dim;
            // O = P V:  dV[0, t1) += Pᵀ dO,  dP = dO Vᵀ.
            gemm(true, false, t1, head_dim, rows, T(1), pb, seq, dob, q_dim, T(1), dvh, kv_dim);
            gemm(false, true, rows, t1, head_dim, T(1), dob, q_dim, vh, kv_dim, T(0), ds.data(), seq);
            // Softmax rows: dS_tp = P_tp (dP_tp − Σ_p' P_tp' dP_tp'), times the score scale.
            for (int t = t0; t < t1; ++t) {
              const T* pt = ph + size_t(t) * seq;
              T* dst = ds.data() + size_t(t - t0) * seq;
              T pdp = 0;
              for (int p = 0; p <= t; ++p) pdp += pt[p] * dst[p];
              for (int p = 0; p <= t; ++p) dst[p] = pt[p] * (dst[p] - pdp) * scale;
              std::fill(dst + t + 1, dst + t1, T(0));
            }
            // S = Q Kᵀ:  dQ = dS K,  dK[0, t1) += dSᵀ Q.
            gemm(false, false, rows, head_dim, t1, T(1), ds.data(), seq, kh, kv_dim, T(0), dqh + size_t(t0) * q_dim,
                 q_dim);
            gemm(true, false, t1, head_dim, rows, T(1), ds.data(), seq, qh + size_t(t0) * q_dim, q_dim, T(1), dkh,
                 kv_dim);
          }
        }
      }
  }
}

template <typename T>
void swiglu_forward(const T* gate, const T* up, size_t n, T* act) {
#pragma omp parallel for schedule(static) if (n > (1 << 18))
  for (size_t i = 0; i < n; ++i) act[i] = gate[i] / (T(1) + std::exp(-gate[i])) * up[i];
}

template <typename T>
void swiglu_backward(const T* gate, const T* up, const T* dact, size_t n, T* dgate, T* dup) {
  // silu(g) = g σ(g), silu'(g) = σ(g) (1 + g (1 − σ(g))).
#pragma omp parallel for schedule(static) if (n > (1 << 18))
  for (size_t i = 0; i < n; ++i) {
    const T g = gate[i], sg = T(1) / (T(1) + std::exp(-g));
    dup[i] = dact[i] * g * sg;
    dgate[i] = dact[i] * up[i] * sg * (T(1) + g * (T(1) - sg));
  }
}

template <typename T>
TrainGraph<T>::TrainGraph(const ParamLayout& layout, int batch, int seq)
    : layout_(layout), c_(layout.config), batch_(batch), seq_(seq) {
  LOWBIT_CHECK(batch > 0 && seq > 0);
  const size_t N = size_t(batch) * seq;
  const size_t dim = size_t(c_.dim), qd = size_t(c_.q_dim()), kvd = size_t(c_.kv_dim()), hid = size_t(c_.hidden_dim);
  tokens_.resize(N);
  rope_tables(c_, seq, &rope_cos_, &rope_sin_);
  layers_.resize(size_t(c_.n_layers));
  for (auto& L : layers_) {
    resize(L.x_in, N * dim);
    resize(L.rms1, N);
    resize(L.xn1, N * dim);
    resize(L.q, N * qd);
    resize(L.k, N * kvd);
    resize(L.v, N * kvd);
    resize(L.probs, size_t(batch) * c_.n_heads * seq * seq);
    resize(L.att, N * qd);
    resize(L.x_mid, N * dim);
    resize(L.rms2, N);
    resize(L.xn2, N * dim);
    resize(L.gate, N * hid);
    resize(L.up, N * hid);
    resize(L.act, N * hid);
  }
  resize(x_final_, N * dim);
  resize(rms_f_, N);
  resize(xn_f_, N * dim);
  resize(logits_, N * c_.vocab_size);
  resize(dlogits_, N * c_.vocab_size);
  resize(dx_, N * dim);
  resize(dxn_, N * dim);
  resize(dq_, N * qd);
  resize(dk_, N * kvd);
  resize(dv_, N * kvd);
  resize(datt_, N * qd);
  resize(dh_, N * hid);
  resize(dg_, N * hid);
  resize(du_, N * hid);
}

template <typename T>
void TrainGraph<T>::forward(const T* params, const int32_t* tokens) {
  const int N = rows(), dim = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hid = c_.hidden_dim;
  const T eps = T(c_.norm_eps);
  std::copy(tokens, tokens + N, tokens_.begin());
  // x [N, dim] = embedding rows.
  std::vector<T> x(size_t(N) * dim), tmp(size_t(N) * dim);
  for (int r = 0; r < N; ++r)
    std::copy_n(params + layout_.embedding + size_t(tokens[r]) * dim, dim, x.data() + size_t(r) * dim);
  for (int l = 0; l < c_.n_layers; ++l) {
    const LayerOffsets& W = layout_.layers[size_t(l)];
    LayerCache& L = layers_[size_t(l)];
    L.x_in = x;
    rmsnorm_forward(L.x_in.data(), params + W.attn_norm, N, dim, eps, L.xn1.data(), L.rms1.data());
    linear_forward(L.xn1.data(), params + W.q, N, qd, dim, L.q.data());
    linear_forward(L.xn1.data(), params + W.k, N, kvd, dim, L.k.data());
    linear_forward(L.xn1.data(), params + W.v, N, kvd, dim, L.v.data());
    rope_apply(L.q.data(), N, seq_, c_.n_heads, c_.head_dim, c_.rope_style, rope_cos_.data(), rope_sin_.data(), false);
    rope_apply(L.k.data(), N, seq_, c_.n_kv_heads, c_.head_dim, c_.rope_style, rope_cos_.data(), rope_sin_.data(),
               false);
    attention_forward(L.q.data(), L.k.data(), L.v.data(), batch_, seq_, c_.n_heads, c_.n_kv_heads, c_.head_dim,
                      L.probs.data(), L.att.data());
    linear_forward(L.att.data(), params + W.o, N, dim, qd, tmp.data());
    for (size_t i = 0; i < x.size(); ++i) L.x_mid[i] = L.x_in[i] + tmp[i];
    rmsnorm_forward(L.x_mid.data(), params + W.ffn_norm, N, dim, eps, L.xn2.data(), L.rms2.data());
    linear_forward(L.xn2.data(), params + W.gate, N, hid, dim, L.gate.data());
    linear_forward(L.xn2.data(), params + W.up, N, hid, dim, L.up.data());
    swiglu_forward(L.gate.data(), L.up.data(), L.act.size(), L.act.data());
    linear_forward(L.act.data(), params + W.down, N, dim, hid, tmp.data());
    for (size_t i = 0; i < x.size(); ++i) x[i] = L.x_mid[i] + tmp[i];
  }
  x_final_ = x;
  rmsnorm_forward(x_final_.data(), params + layout_.final_norm, N, dim, eps, xn_f_.data(), rms_f_.data());
  linear_forward(xn_f_.data(), params + layout_.lm_head, N, c_.vocab_size, dim, logits_.data());
}

template <typename T>
double TrainGraph<T>::cross_entropy(const int32_t* targets) {
  const int N = rows(), V = c_.vocab_size;
  int counted = 0;
  for (int r = 0; r < N; ++r) counted += targets[r] >= 0;
  const double inv = counted > 0 ? 1.0 / counted : 0.0;
  double loss = 0;
#pragma omp parallel reduction(+ : loss) if (size_t(N) * V > (1 << 18))
  {
    std::vector<double> lp;
#pragma omp for schedule(static)
    for (int r = 0; r < N; ++r) {
      T* d = dlogits_.data() + size_t(r) * V;
      if (targets[r] < 0) {
        std::fill(d, d + V, T(0));
        continue;
      }
      log_softmax_row(logits_.data() + size_t(r) * V, V, lp);
      loss -= lp[size_t(targets[r])];
      for (int i = 0; i < V; ++i) d[i] = T(std::exp(lp[size_t(i)]) * inv);
      d[targets[r]] -= T(inv);
    }
  }
  return loss * inv;
}

template <typename T>
double TrainGraph<T>::distillation(const float* teacher_log_probs) {
  const int N = rows(), V = c_.vocab_size;
  const double inv = 1.0 / N;
  double loss = 0;
#pragma omp parallel reduction(+ : loss) if (size_t(N) * V > (1 << 18))
  {
    std::vector<double> lp;
#pragma omp for schedule(static)
    for (int r = 0; r < N; ++r) {
      log_softmax_row(logits_.data() + size_t(r) * V, V, lp);
      const float* t = teacher_log_probs + size_t(r) * V;
      T* d = dlogits_.data() + size_t(r) * V;
      // KL(p_t ‖ p_s) = Σ p_t (log p_t − log p_s);  d/dlogits_s = p_s − p_t.
      for (int i = 0; i < V; ++i) {
        const double pt = std::exp(double(t[i]));
        loss += pt * (double(t[i]) - lp[size_t(i)]);
        d[i] = T((std::exp(lp[size_t(i)]) - pt) * inv);
      }
    }
  }
  return loss * inv;
}

template <typename T>
void TrainGraph<T>::backward(const T* params, T* grads) {
  const int N = rows(), dim = c_.dim, qd = c_.q_dim(), kvd = c_.kv_dim(), hid = c_.hidden_dim;
  // Output head and final norm.
  linear_backward(xn_f_.data(), params + layout_.lm_head, dlogits_.data(), N, c_.vocab_size, dim, T(0), dxn_.data(),
                  grads + layout_.lm_head);
  std::fill(dx_.begin(), dx_.end(), T(0));
  rmsnorm_backward(x_final_.data(), params + layout_.final_norm, rms_f_.data(), dxn_.data(), N, dim, dx_.data(),
                   grads + layout_.final_norm);
  for (int l = c_.n_layers - 1; l >= 0; --l) {
    const LayerOffsets& W = layout_.layers[size_t(l)];
    LayerCache& L = layers_[size_t(l)];
    // x_out = x_mid + down(act): dx flows to x_mid unchanged, and into the feed-forward.
    linear_backward(L.act.data(), params + W.down, dx_.data(), N, dim, hid, T(0), dh_.data(), grads + W.down);
    swiglu_backward(L.gate.data(), L.up.data(), dh_.data(), dh_.size(), dg_.data(), du_.data());
    linear_backward(L.xn2.data(), params + W.gate, dg_.data(), N, hid, dim, T(0), dxn_.data(), grads + W.gate);
    linear_backward(L.xn2.data(), params + W.up, du_.data(), N, hid, dim, T(1), dxn_.data(), grads + W.up);
    rmsnorm_backward(L.x_mid.data(), params + W.ffn_norm, L.rms2.data(), dxn_.data(), N, dim, dx_.data(),
                     grads + W.ffn_norm);
    // x_mid = x_in + o(att).
    linear_backward(L.att.data(), params + W.o, dx_.data(), N, dim, qd, T(0), datt_.data(), grads + W.o);
    attention_backward(L.q.data(), L.k.data(), L.v.data(), L.probs.data(), datt_.data(), batch_, seq_, c_.n_heads,
                       c_.n_kv_heads, c_.head_dim, dq_.data(), dk_.data(), dv_.data());
    rope_apply(dq_.data(), N, seq_, c_.n_heads, c_.head_dim, c_.rope_style, rope_cos_.data(), rope_sin_.data(), true);
    rope_apply(dk_.data(), N, seq_, c_.n_kv_heads, c_.head_dim, c_.rope_style, rope_cos_.data(), rope_sin_.data(),
               true);
    linear_backward(L.xn1.data(), params + W.q, dq_.data(), N, qd, dim, T(0), dxn_.data(), grads + W.q);
    linear_backward(L.xn1.data(), params + W.k, dk_.data(), N, kvd, dim, T(1), dxn_.data(), grads + W.k);
    linear_backward(L.xn1.data(), params + W.v, dv_.data(), N, kvd, dim, T(1), dxn_.data(), grads + W.v);
    rmsnorm_backward(L.x_in.data(), params + W.attn_norm, L.rms1.data(), dxn_.data(), N, dim, dx_.data(),
                     grads + W.attn_norm);
  }
  // Embedding: scatter-add the residual gradient into the looked-up rows.
  T* de = grads + layout_.embedding;
  for (int r = 0; r < N; ++r) {
    const T* src = dx_.data() + size_t(r) * dim;
    T* dst = de + size_t(tokens_[size_t(r)]) * dim;
    for (int i = 0; i < dim; ++i) dst[i] += src[i];
  }
}

#define LOWBIT_INSTANTIATE(T)                                                                                      \
  template class TrainGraph<T>;                                                                                    \
  template void rmsnorm_forward<T>(const T*, const T*, int, int, T, T*, T*);                                       \
  template void rmsnorm_backward<T>(const T*, const T*, const T*, const T*, int, int, T*, T*);                     \
  template void rope_apply<T>(T*, int, int, int, int, RopeStyle, const T*, const T*, bool);                        \
  template void attention_forward<T>(const T*, const T*, const T*, int, int, int, int, int, T*, T*);               \
  template void attention_backward<T>(const T*, const T*, const T*, const T*, const T*, int, int, int, int, int, T*, \
                                      T*, T*);                                                                     \
  template void swiglu_forward<T>(const T*, const T*, size_t, T*);                                                 \
  template void swiglu_backward<T>(const T*, const T*, const T*, size_t, T*, T*);                                  \
  template void rope_tables<T>(const ModelConfig&, int, std::vector<T>*, std::vector<T>*);
LOWBIT_INSTANTIATE(float)
LOWBIT_INSTANTIATE(double)
#undef LOWBIT_INSTANTIATE

}  // namespace lowbit::train

// Gradients of the training graph against central finite differences, in double precision, per
// layer kind (RMSNorm, RoPE, attention, SwiGLU; head + loss and embedding through the whole
// graph) and end to end on a tiny GQA model; the double forward against the model's own
// double reference forward; the float path against the double one.
//
// Tolerance, derived per checked coordinate from the step h rather than fixed: the central
// difference D(h) = (f(x+h) − f(x−h)) / 2h has truncation error c·h² + O(h⁴) and rounding error
// about ε·|f|/h (ε = 2^-52 per evaluation, grown by the number of operations that sum into f).
// D(2h) − D(h) = 3c·h² + O(h⁴) measures the truncation term from the data itself, so
//     |analytic − D(h)| <= |D(2h) − D(h)| + kOps · ε · max|f| / h
// holds with a margin of about 3 on the truncation part; kOps = 256 bounds the error growth of the
// few hundred terms in each sum of these tiny shapes.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "model/forward.h"
#include "model/reference_forward.h"
#include "model/synthetic.h"
#include "train/train_graph.h"

namespace lowbit::train {
namespace {

constexpr double kEps = std::numeric_limits<double>::epsilon();
constexpr double kOps = 256;

std::vector<double> randn(size_t n, uint64_t seed, double std = 1.0, double mean = 0.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(mean, std);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

struct GradCheckStats {
  double max_abs_err = 0, max_rel_err = 0, max_tol = 0;
  int checked = 0;
};

// Compares grad[i] with the central difference of f along x[i] for every i in `indices` (all when
// empty); f reads x. Returns the largest errors seen.
GradCheckStats check_gradient(const std::string& what, std::vector<double>& x, const std::vector<double>& grad,
                              const std::function<double()>& f, std::vector<size_t> indices = {}) {
  if (indices.empty())
    for (size_t i = 0; i < x.size(); ++i) indices.push_back(i);
  GradCheckStats s;
  for (size_t i : indices) {
    const double x0 = x[i];
    const double h = 1e-5 * std::max(1.0, std::abs(x0));
    auto at = [&](double dx) {
      x[i] = x0 + dx;
      const double v = f();
      x[i] = x0;
      return v;
    };
    const double fp = at(h), fm = at(-h), fp2 = at(2 * h), fm2 = at(-2 * h);
    const double d1 = (fp - fm) / (2 * h), d2 = (fp2 - fm2) / (4 * h);
    const double fmax = std::max({std::abs(fp), std::abs(fm), std::abs(fp2), std::abs(fm2)});
    const double tol = std::abs(d2 - d1) + kOps * kEps * fmax / h;
    const double err = std::abs(grad[i] - d1);
    EXPECT_LE(err, tol) << what << "[" << i << "]: analytic " << grad[i] << " vs finite difference " << d1;
    s.max_abs_err = std::max(s.max_abs_err, err);
    s.max_rel_err = std::max(s.max_rel_err, err / std::max(std::abs(d1), 1e-12));
    s.max_tol = std::max(s.max_tol, tol);
    ++s.checked;
  }
  std::printf("  %-28s %5d coords, max |err| %.2e, max rel err %.2e, largest tolerance %.2e\n", what.c_str(),
              s.checked, s.max_abs_err, s.max_rel_err, s.max_tol);
  return s;
}

TEST(TrainGraphGrad, RmsNorm) {
  const int rows = 3, dim = 8;
  auto x = randn(rows * dim, 1), w = randn(dim, 2, 0.3, 1.0), dy = randn(rows * dim, 3);
  std::vector<double> y(x.size()), inv(rows), dx(x.size(), 0.0), dw(dim, 0.0);
  auto f = [&] {
    rmsnorm_forward(x.data(), w.data(), rows, dim, 1e-5, y.data(), inv.data());
    return dot(y, dy);
  };
  f();
  rmsnorm_backward(x.data(), w.data(), inv.data(), dy.data(), rows, dim, dx.data(), dw.data());
  check_gradient("rmsnorm dx", x, dx, f);
  check_gradient("rmsnorm dw", w, dw, f);
}

TEST(TrainGraphGrad, Rope) {
  for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kHalf}) {
    ModelConfig c;
    c.head_dim = 6;
    c.rope_theta = 10000.0f;
    const int batch = 2, seq = 5, heads = 3, width = heads * c.head_dim;
    std::vector<double> cos, sin;
    rope_tables(c, seq, &cos, &sin);
    auto x = randn(size_t(batch) * seq * width, 4), dy = randn(x.size(), 5);
    auto f = [&] {
      std::vector<double> y = x;
      rope_apply(y.data(), batch * seq, seq, heads, c.head_dim, style, cos.data(), sin.data(), false);
      return dot(y, dy);
    };
    std::vector<double> dx = dy;
    rope_apply(dx.data(), batch * seq, seq, heads, c.head_dim, style, cos.data(), sin.data(), true);
    check_gradient(style == RopeStyle::kInterleaved ? "rope (interleaved) dx" : "rope (half) dx", x, dx, f);
  }
}

// A causal GQA attention problem with random inputs (seeds from `seed`): the objective
// f() = <attention(q, k, v), dout> and, after backward(), its analytic gradients.
struct AttentionCase {
  int batch, seq, heads, kv_heads, hd;
  size_t nq, nkv;
  std::vector<double> q, k, v, dout, probs, out, dq, dk, dv;
  AttentionCase(int batch_, int seq_, int heads_, int kv_heads_, int hd_, uint64_t seed)
      : batch(batch_), seq(seq_), heads(heads_), kv_heads(kv_heads_), hd(hd_),
        nq(size_t(batch) * seq * heads * hd), nkv(size_t(batch) * seq * kv_heads * hd),
        q(randn(nq, seed)), k(randn(nkv, seed + 1)), v(randn(nkv, seed + 2)), dout(randn(nq, seed + 3)),
        probs(size_t(batch) * heads * seq * seq), out(nq), dq(nq), dk(nkv), dv(nkv) {}
  double f() {
    attention_forward(q.data(), k.data(), v.data(), batch, seq, heads, kv_heads, hd, probs.data(), out.data());
    return dot(out, dout);
  }
  void backward() {
    f();
    attention_backward(q.data(), k.data(), v.data(), probs.data(), dout.data(), batch, seq, heads, kv_heads, hd,
                       dq.data(), dk.data(), dv.data());
  }
};

TEST(TrainGraphGrad, CausalGqaAttention) {
  AttentionCase a(2, 5, 4, 2, 4, 6);
  a.backward();
  auto f = [&] { return a.f(); };
  check_gradient("attention dq", a.q, a.dq, f);
  check_gradient("attention dk", a.k, a.dk, f);
  check_gradient("attention dv", a.v, a.dv, f);
  // Causality: the output at position 0 depends on nothing later.
  std::vector<double> out0(a.out.begin(), a.out.begin() + a.hd);
  a.k[size_t(3) * a.kv_heads * a.hd] += 1.0;
  a.f();
  for (int i = 0; i < a.hd; ++i) EXPECT_EQ(a.out[size_t(i)], out0[size_t(i)]);
}

// Long enough for several query blocks (the kernel works in blocks of 64 queries); a seeded
// sample of coordinates keeps the finite differences cheap.
TEST(TrainGraphGrad, CausalGqaAttentionAcrossQueryBlocks) {
  AttentionCase a(1, 150, 2, 1, 4, 16);
  a.backward();
  auto f = [&] { return a.f(); };
  std::mt19937_64 rng(20);
  auto sample = [&](size_t n) {
    std::vector<size_t> idx;
    for (int i = 0; i < 80; ++i) idx.push_back(size_t(rng() % n));
    return idx;
  };
  check_gradient("attention dq (3 blocks)", a.q, a.dq, f, sample(a.nq));
  check_gradient("attention dk (3 blocks)", a.k, a.dk, f, sample(a.nkv));
  check_gradient("attention dv (3 blocks)", a.v, a.dv, f, sample(a.nkv));
}

TEST(TrainGraphGrad, SwiGlu) {
  const size_t n = 40;
  auto g = randn(n, 10, 2.0), u = randn(n, 11), dact = randn(n, 12);
  std::vector<double> act(n), dg(n), du(n);
  auto f = [&] {
    swiglu_forward(g.data(), u.data(), n, act.data());
    return dot(act, dact);
  };
  swiglu_backward(g.data(), u.data(), dact.data(), n, dg.data(), du.data());
  check_gradient("swiglu dgate", g, dg, f);
  check_gradient("swiglu dup", u, du, f);
}

ModelConfig tiny_config(bool tied, RopeStyle style) {
  ModelConfig c;
  c.dim = 16;
  c.hidden_dim = 24;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 11;
  c.max_seq_len = 8;
  c.tied_embeddings = tied;
  c.rope_style = style;
  return c;
}

// Parameters like a trained model's (std 1/sqrt(fan_in)) so activations are O(1) and the
// softmaxes are not saturated.
std::vector<double> tiny_params(const ParamLayout& layout, uint64_t seed) {
  std::vector<double> p(layout.total);
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> d(0.0, 1.0);
  for (const TensorSlot& s : layout.slots) {
    const double std = s.is_norm ? 0.2 : 1.0 / std::sqrt(double(s.shape.back()));
    for (size_t i = 0; i < s.size; ++i) p[s.offset + i] = (s.is_norm ? 1.0 : 0.0) + std * d(rng);
  }
  return p;
}

enum class Loss { kCrossEntropy, kDistillation };

void check_end_to_end(bool tied, RopeStyle style, Loss loss_kind) {
  const ParamLayout layout = make_param_layout(tiny_config(tied, style)).value();
  const ModelConfig& c = layout.config;
  const int batch = 2, seq = 5, N = batch * seq;
  std::vector<double> params = tiny_params(layout, 21);
  std::mt19937_64 rng(22);
  std::vector<int32_t> tokens(N), targets(N);
  for (auto& t : tokens) t = int32_t(rng() % uint64_t(c.vocab_size));
  for (auto& t : targets) t = int32_t(rng() % uint64_t(c.vocab_size));
  targets[3] = -1;  // an unscored position
  // A teacher distribution: log-softmax of random logits.
  std::vector<float> teacher(size_t(N) * c.vocab_size);
  {
    auto z = randn(teacher.size(), 23, 2.0);
    for (int r = 0; r < N; ++r) {
      double m = -INFINITY, s = 0;
      for (int i = 0; i < c.vocab_size; ++i) m = std::max(m, z[size_t(r) * c.vocab_size + i]);
      for (int i = 0; i < c.vocab_size; ++i) s += std::exp(z[size_t(r) * c.vocab_size + i] - m);
      for (int i = 0; i < c.vocab_size; ++i)
        teacher[size_t(r) * c.vocab_size + i] = float(z[size_t(r) * c.vocab_size + i] - m - std::log(s));
    }
  }
  TrainGraph<double> graph(layout, batch, seq);
  auto f = [&] {
    graph.forward(params.data(), tokens.data());
    return loss_kind == Loss::kCrossEntropy ? graph.cross_entropy(targets.data()) : graph.distillation(teacher.data());
  };
  const double loss = f();
  EXPECT_GT(loss, 0.0);
  std::vector<double> grads(layout.total, 0.0);
  graph.backward(params.data(), grads.data());
  const std::string tag = std::string(tied ? "tied" : "untied") + (style == RopeStyle::kHalf ? " half-rope" : "") +
                          (loss_kind == Loss::kCrossEntropy ? " CE " : " KL ");
  for (const TensorSlot& s : layout.slots) {
    std::vector<size_t> idx;
    for (size_t i = 0; i < s.size; ++i) idx.push_back(s.offset + i);
    check_gradient(tag + s.name, params, grads, f, idx);
  }
}

TEST(TrainGraphGrad, EndToEndTiedCrossEntropy) { check_end_to_end(true, RopeStyle::kInterleaved, Loss::kCrossEntropy); }
TEST(TrainGraphGrad, EndToEndUntiedDistillation) { check_end_to_end(false, RopeStyle::kInterleaved, Loss::kDistillation); }
TEST(TrainGraphGrad, EndToEndHalfRopeCrossEntropy) { check_end_to_end(false, RopeStyle::kHalf, Loss::kCrossEntropy); }

// The training forward computes what the model's double reference forward computes.
TEST(TrainGraph, ForwardMatchesReferenceForward) {
  ModelConfig c = tiny_test_config();
  Checkpoint ck = make_random_checkpoint(c, 5);
  auto model = Model::from_checkpoint(ck).value();
  const ParamLayout layout = make_param_layout(c).value();
  const std::vector<float> pf = params_from_model(layout, *model);
  const std::vector<double> pd(pf.begin(), pf.end());
  const int seq = 100;  // two query blocks of the attention kernel
  std::vector<int32_t> tokens(seq);
  for (int t = 0; t < seq; ++t) tokens[size_t(t)] = int32_t((t * 37 + 5) % c.vocab_size);
  const std::vector<int> ids(tokens.begin(), tokens.end());
  const std::vector<double> ref = reference_forward(*model, ids);
  TrainGraph<double> graph(layout, 1, seq);
  graph.forward(pd.data(), tokens.data());
  double max_ref = 0, max_err = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    max_ref = std::max(max_ref, std::abs(ref[i]));
    max_err = std::max(max_err, std::abs(ref[i] - graph.logits()[i]));
  }
  // Both sum the same terms in double, in different orders: error ~ ε · (terms per sum) · scale.
  const double tol = kEps * 4 * std::max(c.dim, c.hidden_dim) * c.n_layers * std::max(1.0, max_ref) * 8;
  EXPECT_LE(max_err, tol);
  std::printf("  double forward vs reference_forward: max |diff| %.2e (tolerance %.2e)\n", max_err, tol);

  // The float graph against the double one: fp32 rounding, relative 2^-24 per operation.
  TrainGraph<float> fgraph(layout, 1, seq);
  fgraph.forward(pf.data(), tokens.data());
  double max_ferr = 0;
  for (size_t i = 0; i < ref.size(); ++i) max_ferr = std::max(max_ferr, std::abs(ref[i] - double(fgraph.logits()[i])));
  const double ftol = 0x1p-24 * 4 * std::max(c.dim, c.hidden_dim) * c.n_layers * std::max(1.0, max_ref) * 8;
  EXPECT_LE(max_ferr, ftol);
  std::printf("  float forward vs reference_forward: max |diff| %.2e (tolerance %.2e)\n", max_ferr, ftol);
}

}  // namespace
}  // namespace lowbit::train

// Decode of a stack of transformer layers' linear products against the machine's read bandwidth,
// for A/B runs of kernel changes without a model, the rest of the forward pass or fork/IPC:
//
//   decode_layers_bench FORMAT [--int8-activations] [--layers N] [--rounds R] [--tokens T]
//
// FORMAT is a weight format (int4g128, int8_sym, int2g128, ...). The layers have TinyLlama-1.1B's
// shapes (q 2048x2048, k and v 256x2048, o 2048x2048, gate and up 5632x2048, down 2048x5632) and
// run as lowbit's decode runs them: q+k+v and gate+up each as one threaded product (gemv_parts),
// packed as the runtime packs them (VNNI panels for dynamic int8 activations and, as two int8
// slices, for weight-only int4/3/2; lane panels for weight-only int2 / int3 with
// LOWBIT_EXACT_ACTIVATIONS=1; each where the kernel table prefers them). Each round probes the read
// bandwidth (kernels/bandwidth_probe.h, the roof lowbit bench uses) and then decodes T tokens;
// the round's figure is the products' read rate as a share of that probe. The median over rounds
// is the result: this machine's bandwidth drifts from one second to the next, so compare two
// binaries by alternating them, round for round, rather than by one run each.
//
// Sharper: scripts/kernel_ab.sh links this program with several builds of one kernel source
// (variants, e.g. prefetch distances) and it then swaps the kernel table between them within each
// round, in a rotating order; it prints each variant's median share and the median over rounds of
// its share over variant 0's in the same round (session 17: two identical builds read 0.98-1.03).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kernels/bandwidth_probe.h"
#include "kernels/kernels.h"
#include "kernels/packed_matmul.h"
#include "random_weights.h"

// Defined only when scripts/kernel_ab.sh links variant builds in: how many, and variant i's
// table (the selected table with the variant's fill function applied over it).
extern "C" __attribute__((weak)) int lowbit_kernel_variants();
extern "C" __attribute__((weak)) void lowbit_fill_kernel_variant(int i, lowbit::kernels::KernelTable& table);

namespace {

using namespace lowbit;
using namespace lowbit::kernels;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Layer {
  std::shared_ptr<const PackedWeight> q, k, v, o, gate, up, down;
};

constexpr int64_t kDim = 2048, kKvDim = 256, kHidden = 5632;

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s FORMAT [--int8-activations] [--layers N (22)] [--rounds R (5)] [--tokens T (3)]\n"
               "  e.g. %s int4g128; %s int2g128 --int8-activations\n",
               argv0, argv0, argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return usage(argv[0]);
  const std::string spec = argv[1];
  bool qd8 = false;
  int layers = 22, rounds = 5, tokens = 3;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--int8-activations") {
      qd8 = true;
    } else if ((a == "--layers" || a == "--rounds" || a == "--tokens") && i + 1 < argc) {
      const int v = std::atoi(argv[++i]);
      if (v <= 0) return usage(argv[0]);
      (a == "--layers" ? layers : a == "--rounds" ? rounds : tokens) = v;
    } else {
      return usage(argv[0]);
    }
  }
  Result<FormatSpec> parsed = parse_format_spec(spec);
  if (!parsed.ok()) {
    std::fprintf(stderr, "%s\n", parsed.status().message().c_str());
    return 2;
  }
  if (qd8 && !supports_qd8_format(*parsed)) {
    std::fprintf(stderr, "%s: no dynamic int8 kernel takes this format\n", spec.c_str());
    return 2;
  }
  const KernelTable& table = lowbit::kernels::kernels();
  // Weight-only int4/3/2 run as two int8 slices where the table says so (LOWBIT_EXACT_ACTIVATIONS=1:
  // the fp32 kernels), as the runtime does (model/linear.cc).
  const bool sliced = !qd8 && weight_only_on_int8_slices(*parsed, table.weight_only_int8_slices);
  const int slices = qd8 ? 1 : sliced ? 2 : 0;
  const std::string layout =
      (qd8 || sliced) && table.prefers_panels ? ":panels" : !qd8 && table.prefers_lut_panels ? ":lut" : "";
  std::vector<Layer> stack;
  double bytes = 0;
  for (int l = 0; l < layers; ++l) {
    const auto make = [&](int64_t rows, int64_t cols, uint32_t which) {
      auto p = bench::random_packed(spec + layout, rows, cols, uint32_t(7 * l) + which);
      bytes += double(p->bytes());
      return p;
    };
    stack.push_back({make(kDim, kDim, 1), make(kKvDim, kDim, 2), make(kKvDim, kDim, 3), make(kDim, kDim, 4),
                     make(kHidden, kDim, 5), make(kHidden, kDim, 6), make(kDim, kHidden, 7)});
  }
  const std::vector<float> x = bench::random_floats(kHidden, 1, 1.0f);
  std::vector<float> q(kDim), k(kKvDim), v(kKvDim), o(kDim), gate(kHidden), up(kHidden), down(kDim);
  const auto token = [&] {
    for (const Layer& L : stack) {
      const GemvPart qkv[3] = {{L.q.get(), slices, nullptr, kDim, kDim, q.data()},
                               {L.k.get(), slices, nullptr, kKvDim, kDim, k.data()},
                               {L.v.get(), slices, nullptr, kKvDim, kDim, v.data()}};
      gemv_parts(qkv, x.data());
      const GemvPart out[1] = {{L.o.get(), slices, nullptr, kDim, kDim, o.data()}};
      gemv_parts(out, x.data());
      const GemvPart ffn[2] = {{L.gate.get(), slices, nullptr, kHidden, kDim, gate.data()},
                               {L.up.get(), slices, nullptr, kHidden, kDim, up.data()}};
      gemv_parts(ffn, x.data());
      const GemvPart d[1] = {{L.down.get(), slices, nullptr, kDim, kHidden, down.data()}};
      gemv_parts(d, x.data());
    }
  };
  const int threads = omp_get_max_threads();
  std::printf("%d layers of %s%s (packed as %s, kernels %s, %d threads): %.1f MB per token\n", layers, spec.c_str(),
              qd8 ? " x int8 activations" : sliced ? " weight-only (activations as two int8 slices)" : " weight-only",
              packed_kind_name(stack[0].q->kind), table.name, threads, bytes / 1e6);
  token();  // first touch and thread start-up
  const ProbeBuffer probe(int64_t(1) << 30, threads);
  // Variant 0 alone unless kernel_ab.sh linked variants in; the selected table is static and not
  // const (kernels/dispatch.cc), and no product runs while it is swapped.
  const int variants = lowbit_kernel_variants != nullptr ? lowbit_kernel_variants() : 1;
  const size_t n_variants = size_t(variants);
  const KernelTable selected = table;
  std::vector<KernelTable> tables(n_variants, selected);
  for (int v = 0; v < variants && lowbit_kernel_variants != nullptr; ++v)
    lowbit_fill_kernel_variant(v, tables[size_t(v)]);
  std::vector<std::vector<double>> shares(n_variants), rates(n_variants), ratios(n_variants);
  for (int r = 0; r < rounds; ++r) {
    std::vector<double> round_share(n_variants);
    for (int j = 0; j < variants; ++j) {
      const int v = (r + j) % variants;
      const_cast<KernelTable&>(table) = tables[size_t(v)];
      // Read by this process's own OpenMP threads (kernels/bandwidth_probe.h says why).
      const ReadBandwidth bw = measure_read_bandwidth(probe, threads, ProbeThreads::kOpenMp);
      const double t0 = now();
      for (int t = 0; t < tokens; ++t) token();
      const double rate = tokens * bytes / (now() - t0);
      round_share[size_t(v)] = rate / bw.bytes_per_s;
      shares[size_t(v)].push_back(rate / bw.bytes_per_s);
      rates[size_t(v)].push_back(rate);
      std::printf("  round %d%s: probe %.1f GB/s (4 prefetched streams %.1f, 1 stream %.1f), products %.1f GB/s = "
                  "%.0f%%\n",
                  r + 1, variants > 1 ? fmt::format(", variant {}", v).c_str() : "", bw.bytes_per_s / 1e9,
                  bw.four_prefetched_streams_bytes_per_s / 1e9, bw.one_stream_bytes_per_s / 1e9, rate / 1e9,
                  100 * rate / bw.bytes_per_s);
    }
    for (int v = 0; v < variants; ++v) ratios[size_t(v)].push_back(round_share[size_t(v)] / round_share[0]);
  }
  const_cast<KernelTable&>(table) = selected;
  for (int v = 0; v < variants; ++v) {
    const std::vector<double>& s = shares[size_t(v)];
    std::printf("%smedian: products %.1f GB/s, %.0f%% of the probe (min %.0f%%, max %.0f%%)", variants > 1 ?
                fmt::format("variant {} ", v).c_str() : "", median(rates[size_t(v)]) / 1e9, 100 * median(s),
                100 * *std::min_element(s.begin(), s.end()), 100 * *std::max_element(s.begin(), s.end()));
    if (variants > 1) std::printf("; paired ratio to variant 0: median %.3f", median(ratios[size_t(v)]));
    std::printf("\n");
  }
  return 0;
}

// Kernel benchmarks at LLM layer shapes, every kernel against FP32 in the same run.
//
//   decode   one token: BLAS sgemv (fp32 baseline) vs the gemv / qd8 kernels
//   prefill  128 tokens: BLAS sgemm (fp32 baseline) vs dequant tiles + sgemm / qd8 gemm
//
// Shapes [out, in]: 4096x4096 (7B attention), 11008x4096 (7B MLP up), 2048x5632 (TinyLlama MLP
// down). Kernels run through the threaded drivers of kernels/packed_matmul.h with the table the
// runtime would pick (LOWBIT_ISA=ref|avx2|avx512 forces one). Weights are random codes and scales:
// speed does not depend on the values. After the usual Google Benchmark output a table gives
// each kernel's time as a ratio to FP32 for the same operation and shape.
//
//   build-kern/bench/kernels_bench [--benchmark_filter=decode/.*4096x4096] [--benchmark_min_time=0.5]
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <unistd.h>

#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/packed_matmul.h"
#include "random_weights.h"

namespace {

using namespace lowbit;
using namespace lowbit::kernels;
using lowbit::bench::random_floats;

struct Shape {
  int64_t rows, cols;
  std::string name() const { return std::to_string(rows) + "x" + std::to_string(cols); }
};
const Shape kShapes[] = {{4096, 4096}, {11008, 4096}, {2048, 5632}};
constexpr int64_t kPrefillTokens = 128;

struct Operand {
  std::vector<float> weight;                 // fp32 baseline
  std::shared_ptr<const PackedWeight> packed;  // everything else
};

// One cached operand per (format, shape): 11008x4096 fp32 is 180 MB, built once.
const Operand& operand(const std::string& format, const Shape& s) {
  static std::map<std::string, Operand> cache;
  const std::string key = format + "/" + s.name();
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Operand op;
  if (format == "f32") {
    op.weight = random_floats(s.rows * s.cols, 1, 0.02f);
  } else if (format == "f16" || format == "bf16") {
    const std::vector<float> w = random_floats(s.rows * s.cols, 1, 0.02f);
    op.packed = pack_dense(w.data(), s.rows, s.cols, format == "f16" ? PackedKind::kF16 : PackedKind::kBF16);
  } else {
    op.packed = lowbit::bench::random_packed(format, s.rows, s.cols);
  }
  return cache.emplace(key, std::move(op)).first->second;
}

// format: "f32" (BLAS), "f16", "bf16" or a quantized spec; qd8: dynamic int8 activations.
void run(benchmark::State& state, const std::string& format, bool qd8, const Shape& s, int64_t tokens) {
  const Operand& op = operand(format, s);
  const std::vector<float> x = random_floats(tokens * s.cols, 2, 1.0f);
  std::vector<float> y(size_t(tokens * s.rows));
  for (auto _ : state) {
    if (format == "f32" && tokens == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, int(s.rows), int(s.cols), 1.0f, op.weight.data(), int(s.cols),
                  x.data(), 1, 0.0f, y.data(), 1);
    } else if (format == "f32") {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(tokens), int(s.rows), int(s.cols), 1.0f, x.data(),
                  int(s.cols), op.weight.data(), int(s.cols), 0.0f, y.data(), int(s.rows));
    } else if (qd8) {
      matmul_qd8(*op.packed, x.data(), tokens, y.data());
    } else {
      matmul_f32(*op.packed, x.data(), tokens, y.data());
    }
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  const double bytes = op.packed ? double(op.packed->bytes()) : 4.0 * double(s.rows * s.cols);
  state.SetBytesProcessed(int64_t(bytes) * state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(s.rows * s.cols * tokens) * double(state.iterations()),
                                                 benchmark::Counter::kIsRate, benchmark::Counter::kIs1000);
}

// (label, format, qd8): label names the kernel by contract.
struct Case {
  const char* label;
  const char* format;
  bool qd8;
};
const Case kCases[] = {
    {"f32_blas", "f32", false},           {"f16", "f16", false},
    {"bf16", "bf16", false},              {"q8c", "int8_sym", false},
    {"q4g128", "int4g128", false},        {"q3g128", "int3g128", false},
    {"q2g64", "int2g64", false},          {"q2g128", "int2g128", false},
    {"q3l_g128", "int3g128:lut", false},  {"q2l_g128", "int2g128:lut", false},  // table lookups, lane panels
    {"nf4g64", "nf4", false},
    {"fp8c", "fp8_e4m3", false},          {"qd8_q8c", "int8_sym", true},  // W8A8
    {"qd8_q4g128", "int4g128", true},  // W4A8
    {"qd8_q3g128", "int3g128", true},  // W3A8
    {"qd8_q2g128", "int2g128", true},  // W2A8
    {"qd8_q8p", "int8_sym:panels", true},  // W8A8, kQ8P panels
    {"qd8_q4p", "int4g128:panels", true},  // W4A8, kQ4P panels
    {"qd8_q3p", "int3g128:panels", true},  // W3A8, kQ3P panels
    {"qd8_q2p", "int2g128:panels", true},  // W2A8, kQ2P panels
};

// Collects real time per benchmark and prints each as a ratio to f32_blas of the same op/shape.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  RatioReporter() : ConsoleReporter(isatty(1) ? OO_Defaults : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& r : runs)
      if (r.run_type == Run::RT_Iteration) times_[r.benchmark_name()] = r.GetAdjustedRealTime();
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::printf("\nTime relative to FP32 (BLAS) for the same operation and shape (< 1 is faster), kernels %s:\n",
                lowbit::kernels::kernels().name);
    for (const auto& [name, time] : times_) {
      // "op/kernel/shape[/real_time]" -> "op/f32_blas/shape[/real_time]"
      const size_t a = name.find('/'), b = name.find('/', a + 1);
      const std::string base = name.substr(0, a) + "/f32_blas" + name.substr(b);
      auto it = times_.find(base);
      if (it != times_.end()) std::printf("  %-44s %8.3f  (%.2fx speed)\n", name.c_str(), time / it->second, it->second / time);
    }
  }

 private:
  std::map<std::string, double> times_;
};

}  // namespace

int main(int argc, char** argv) {
  for (const Shape& s : kShapes)
    for (const Case& c : kCases) {
      benchmark::RegisterBenchmark(("decode/" + std::string(c.label) + "/" + s.name()).c_str(),
                                   [c, s](benchmark::State& st) { run(st, c.format, c.qd8, s, 1); })
          ->Unit(benchmark::kMicrosecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("prefill/" + std::string(c.label) + "/" + s.name()).c_str(),
                                   [c, s](benchmark::State& st) { run(st, c.format, c.qd8, s, kPrefillTokens); })
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

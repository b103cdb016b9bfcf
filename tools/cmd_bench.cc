// lowbit bench MODEL...: prefill and decode speed, weight bytes, peak memory and the decode
// roofline, for several models (FP32 and quantized side by side) in one run.
//
// Each model runs in a forked child, so peak resident memory (getrusage ru_maxrss, which is
// per process) is that model's alone; the child sends its figures back through a pipe. The
// parent never enters an OpenMP region (libgomp's threads do not survive fork); the bandwidth
// probe runs in a process of its own (ProbeServer, std::thread only), forked once before the
// models and asked for a measurement right before each decode repeat.
//
// Roofline: decode reads every weight once per token, so tokens/s <= read bandwidth / bytes read
// per token (weights as the kernels hold them + norms + one embedding row + the KV cache at the
// mean decode position). Bandwidth is measured in the same run, right before each decode repeat,
// by threaded streaming sums over a buffer of at least 1 GiB and 4x the last-level cache, in two
// read patterns, the better of which counts (kernels/bandwidth_probe.h): the
// machine's bandwidth drifts with its neighbours' load (32-50 GB/s on the machine measured), so
// each decode is compared with the probe taken just before it, and the median over repeats of
// those ratios is the reported % of the roof.
// Dequant share (weight-only kernels only): the decode kernel itself on cache-resident rows, less
// the same product on cache-resident fp16 weights (about the arithmetic alone), gives the CPU cost
// of decoding a weight; times the weights read per token, divided by the threads and by the
// measured decode time per token. Decode overlaps this work with memory stalls, so it is the share
// of the threads' time spent decoding weights, not time it adds. (Until session 6 an unpack-only pass, the dequant kernel storing every weight
// to a buffer, stood in for it: slower than the fused kernel, it gave shares above 100%.)
// CPU utilization while decoding (process CPU time / wall time / threads) says whether a low
// figure was the kernels or the machine: on a shared machine other processes take the cores.
#include <cblas.h>
#include <omp.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "cli_common.h"
#include "commands.h"
#include "kernels/bandwidth_probe.h"
#include "kernels/kernels.h"
#include "kernels/packed_matmul.h"
#include "model/forward.h"

namespace lowbit::cli {

namespace {

using nlohmann::json;

struct BenchOptions {
  std::vector<std::string> models;
  std::string tokenizer, dense = "auto";
  int threads = 0, prompt_tokens = 128, decode_tokens = 32, repeats = 3;
  bool json = false, int8_activations = false, breakdown = false;
  uint64_t seed = 1;
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// CPU seconds this process has used (all threads, user + system).
double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

// Writes all of `text` to `fd`; false when the reader is gone.
bool write_all(int fd, const std::string& text) {
  for (size_t done = 0; done < text.size();) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) return false;
    done += size_t(n);
  }
  return true;
}

// Runs `fn` in a forked child and returns its JSON (or {"error": ...} when it failed or died).
json run_in_child(const std::function<json()>& fn) {
  std::fflush(stdout);
  std::fflush(stderr);
  int fds[2];
  if (::pipe(fds) != 0) return {{"error", "pipe failed"}};
  const pid_t pid = ::fork();
  if (pid < 0) return {{"error", "fork failed"}};
  if (pid == 0) {
    ::close(fds[0]);
    json r;
    try {
      r = fn();
    } catch (const std::exception& e) {
      r = {{"error", e.what()}};
    }
    write_all(fds[1], r.dump());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, size_t(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status))
    return {{"error", fmt::format("benchmark process killed by signal {} (out of memory?)", WTERMSIG(status))}};
  json r = json::parse(text, nullptr, false);
  return r.is_discarded() ? json{{"error", "benchmark process sent no result"}} : r;
}

int64_t llc_bytes() {
  std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index3/size");
  std::string s;
  if (!(f >> s) || s.empty()) return 0;
  const char unit = s.back();
  const int64_t v = std::atoll(s.c_str());
  return unit == 'K' ? v << 10 : unit == 'M' ? v << 20 : v;
}

std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

// The roof's bandwidth (kernels/bandwidth_probe.h) as a process of its own, forked once before
// any model: it allocates and first-touches its buffer (at least 1 GiB and 4x the last-level
// cache) once and measures on request, so that no probe buffer is allocated or freed next to a
// decode (on the Zen 4 VM a fresh 1 GiB buffer before each decode made the products 35% slower,
// bandwidth_probe.h), and its buffer counts in no model's peak memory. Requests and replies go
// through pipes: a model's process writes its thread count, the server answers one JSON line.
class ProbeServer {
 public:
  ProbeServer() {
    int request[2], reply[2];
    if (::pipe(request) != 0 || ::pipe(reply) != 0) throw std::runtime_error("bandwidth probe: pipe failed");
    std::fflush(stdout);
    std::fflush(stderr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("bandwidth probe: fork failed");
    if (pid_ == 0) {
      ::close(request[1]);
      ::close(reply[0]);
      serve(request[0], reply[1]);
      ::_exit(0);
    }
    ::close(request[0]);
    ::close(reply[1]);
    request_ = request[1];
    reply_ = reply[0];
  }
  ~ProbeServer() {
    ::close(request_);  // end of requests: the server exits
    ::close(reply_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  ProbeServer(const ProbeServer&) = delete;
  ProbeServer& operator=(const ProbeServer&) = delete;

  // Measured now with `threads` threads (from a model's process, forked after the server).
  json measure(int threads) const {
    const int32_t n = threads;
    if (::write(request_, &n, sizeof n) != sizeof n) return {{"error", "probe process gone"}};
    std::string line;
    char c;
    while (::read(reply_, &c, 1) == 1 && c != '\n') line.push_back(c);
    json r = json::parse(line, nullptr, false);
    return r.is_discarded() ? json{{"error", "probe process sent no result"}} : r;
  }

 private:
  static void serve(int requests, int replies) {
    std::unique_ptr<kernels::ProbeBuffer> buffer;
    int32_t threads = 0;
    while (::read(requests, &threads, sizeof threads) == sizeof threads) {
      json r;
      try {
        const int64_t bytes = std::max<int64_t>(int64_t(1) << 30, 4 * llc_bytes());
        if (!buffer) buffer = std::make_unique<kernels::ProbeBuffer>(bytes, threads);
        const kernels::ReadBandwidth bw = kernels::measure_read_bandwidth(*buffer, threads);
        r = {{"bandwidth_bytes_per_s", bw.bytes_per_s},
             {"four_prefetched_streams_bytes_per_s", bw.four_prefetched_streams_bytes_per_s},
             {"one_stream_bytes_per_s", bw.one_stream_bytes_per_s},
             {"buffer_bytes", bw.buffer_bytes},
             {"checksum", bw.checksum & 0xff}};
      } catch (const std::exception& e) {
        r = {{"error", e.what()}};
      }
      if (!write_all(replies, r.dump() + "\n")) return;
    }
  }

  pid_t pid_ = -1;
  int request_ = -1, reply_ = -1;
};

// Bytes of a linear's weight as linear_forward reads it.
uint64_t linear_bytes(const Linear& l) {
  if (const kernels::PackedWeight* p = active_packed(l)) return p->bytes();
  if (l.is_quantized()) return format_bytes(l.quantized->spec, l.out_features, l.in_features);
  return uint64_t(l.out_features) * uint64_t(l.in_features) * 4;
}

// Seconds per call of `fn`: the best of 5 windows of at least 2 ms (after a warm-up call), so a
// neighbour's burst on a shared machine does not inflate it.
double seconds_per_call(const std::function<void()>& fn) {
  fn();
  double best = 1e30;
  for (int window = 0; window < 5; ++window) {
    int64_t reps = 0;
    const double t0 = now();
    double t = t0;
    for (; t - t0 < 2e-3; t = now(), ++reps) fn();
    best = std::min(best, (t - t0) / double(reps));
  }
  return best;
}

// CPU seconds per weight that decoding the format adds to a matrix-vector product: the table's
// gemv kernel on cache-resident rows (one thread, ~64 Ki weights, within L2) less the same product
// on fp16 weights (gemv_f16_f32, one conversion instruction per 16 weights: about the fp32
// arithmetic alone), also cache-resident.
// int8_slices: 2 for a weight-only weight that runs on the int8 kernels as two int8 slices
// (gemv_parts: the token is rounded twice per call, a per-token cost, made small here by timing
// 16x the weights, ~0.5 MiB of int4 codes, on one thread), else 0.
double decode_seconds_per_weight(const kernels::PackedWeight& p, int int8_slices) {
  const kernels::KernelTable& table = kernels::kernels();
  const kernels::GemvF32Fn gemv = kernels::gemv_for(table, p.kind);
  if (gemv == nullptr || table.gemv_f16_f32 == nullptr) return 0.0;
  const auto rows_for = [&](int64_t weights) {
    return std::min<int64_t>(p.rows, std::max<int64_t>(1, weights / p.k_padded));
  };
  const int64_t rows = rows_for(65536), kernel_rows = int8_slices > 0 ? rows_for(int64_t(1) << 20) : rows;
  std::vector<float> x(static_cast<size_t>(p.k_padded), 0.5f), y(static_cast<size_t>(kernel_rows));
  const std::vector<float> dense(static_cast<size_t>(rows * p.k_padded), 0.25f);
  const auto f16 = kernels::pack_dense(dense.data(), rows, p.k_padded, kernels::PackedKind::kF16);
  double kernel = 0;
  if (int8_slices > 0) {
    const int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    const kernels::GemvPart part{&p, int8_slices, nullptr, kernel_rows, p.cols, y.data()};
    kernel = seconds_per_call([&] { kernels::gemv_parts(std::span(&part, 1), x.data()); }) * double(rows) /
             double(kernel_rows);
    omp_set_num_threads(threads);
  } else {
    kernel = seconds_per_call([&] { gemv(p.view(), 0, rows, x.data(), y.data()); });
  }
  const double half = seconds_per_call([&] { table.gemv_f16_f32(f16->view(), 0, rows, x.data(), y.data()); });
  return std::max(0.0, kernel - half) / double(rows * p.k_padded);
}

json bench_model(const std::string& path, const BenchOptions& o, const ProbeServer& bandwidth_probe) {
  set_threads(o.threads);
  const double t_load = now();
  Result<Checkpoint> ckpt = load_checkpoint(path, o.tokenizer);
  if (!ckpt.ok()) return {{"error", ckpt.status().message()}};
  Result<std::shared_ptr<Model>> loaded = Model::from_checkpoint(*ckpt);
  if (!loaded.ok()) return {{"error", loaded.status().message()}};
  std::shared_ptr<Model> model = *loaded;
  ckpt = Status(ErrorCode::kInternal, "released");  // drop the checkpoint's own references
  const double load_seconds = now() - t_load;

  std::vector<Linear*> linears;
  for (LayerWeights& L : model->mutable_layers())
    for (Linear* l : L.linears()) linears.push_back(l);
  // Model exposes the head read-only; the object itself is not const.
  linears.push_back(const_cast<Linear*>(&model->lm_head()));
  for (Linear* l : linears) {
    // --int8-activations switches on the W8A8 / W4A8 / W3A8 / W2A8 kernels where the weight has
    // one; a dynamically quantized checkpoint (--method dynamic) has its layers switched on already.
    // Weight-only layers may sit in layouts the W8A8 kernels do not read (kQ2L, kQ3L): repacked for
    // dynamic activations first, and back when no qd8 kernel takes the result.
    if (o.int8_activations && l->is_quantized() && active_packed(*l) != nullptr && !l->dynamic_int8_activations) {
      l->dynamic_int8_activations = true;
      prepare_linear(*l);  // int8 per channel and int4/3/2 are repacked in VNNI panels where preferred
      const kernels::PackedWeight* p = active_packed(*l);
      if (p == nullptr || !kernels::supports_qd8(*p)) {
        l->dynamic_int8_activations = false;
        prepare_linear(*l);
      }
    }
    if (o.dense == "f32" && !l->is_quantized()) l->packed = nullptr;  // BLAS on the fp32 copy
    if (o.dense == "f16" || o.dense == "bf16")
      pack_dense_linear(*l, o.dense == "f16" ? kernels::PackedKind::kF16 : kernels::PackedKind::kBF16);
  }

  const ModelConfig& c = model->config();
  const int threads = omp_get_max_threads();
  uint64_t linear_total = 0;
  double dequant_seconds = 0;
  bool weight_only_kernels = false;
  std::string format = "f32";
  // The decode cost depends on the kind and the row length only: measured once per pair (a model
  // has a handful; measuring each of its 155 linears took ~1.5 s).
  std::map<std::pair<kernels::PackedKind, int64_t>, double> decode_cost;
  // The block linears' format ("mixed" when they differ), and the head's when it differs from it.
  std::set<std::string> block_formats;
  const auto format_of = [&](const Linear& l) {
    if (l.is_quantized()) return format_spec_name(l.quantized->spec);
    const kernels::PackedWeight* p = active_packed(l);
    return std::string(p != nullptr ? kernels::packed_kind_name(p->kind) : "f32");
  };
  for (const Linear* l : linears) {
    if (l != &model->lm_head()) block_formats.insert(format_of(*l));
    linear_total += linear_bytes(*l);
    const kernels::PackedWeight* p = active_packed(*l);
    if (p != nullptr && p->scales.size() > 0 && !(l->dynamic_int8_activations && kernels::supports_qd8(*p))) {
      weight_only_kernels = true;
      const auto key = std::pair{p->kind, p->k_padded};
      if (!decode_cost.count(key)) decode_cost[key] = decode_seconds_per_weight(*p, int8_slices(*l, *p));
      dequant_seconds += decode_cost[key] * double(p->rows * p->k_padded);
    }
  }
  format = block_formats.size() == 1 ? *block_formats.begin() : "mixed";
  if (format_of(model->lm_head()) != format) format += ", head " + format_of(model->lm_head());
  const uint64_t norms = uint64_t(4) * uint64_t(c.dim) * uint64_t(2 * c.n_layers + 1);
  const uint64_t embedding = uint64_t(4) * uint64_t(c.vocab_size) * uint64_t(c.dim);
  const double mean_position = o.prompt_tokens + 0.5 * o.decode_tokens;
  const double kv_bytes = 2.0 * 4.0 * c.n_layers * c.kv_dim() * mean_position;
  const double bytes_per_token = double(linear_total + norms) + 4.0 * c.dim + kv_bytes;

  const int capacity = o.prompt_tokens + o.decode_tokens + 1;
  if (capacity > c.max_seq_len)
    return {{"error", fmt::format("{} prompt + decode tokens exceed the model's context of {}", capacity, c.max_seq_len)}};
  Session session(model, capacity);
  std::mt19937 rng(uint32_t(o.seed));
  std::uniform_int_distribution<int> id(0, c.vocab_size - 1);
  std::vector<int> prompt(size_t(o.prompt_tokens)), next(size_t(o.decode_tokens));
  for (int& t : prompt) t = id(rng);
  for (int& t : next) t = id(rng);
  std::vector<float> logits;
  auto forward = [&](std::span<const int> tokens) {
    const Status s = session.forward(tokens, false, &logits);
    if (!s.ok()) throw std::runtime_error(s.message());
  };
  // Warm-up: threads started, caches and page tables touched.
  forward(std::span<const int>(prompt).first(std::min<size_t>(16, prompt.size())));
  forward(std::span<const int>(next).first(1));
  // Decode time per kind of linear (q, k, ..., head), summed over layers and repeats: where the
  // time goes, and how close each kind of product comes to the bandwidth probe.
  std::map<const Linear*, std::string> role;
  for (const LayerWeights& L : model->layers())
    for (const auto& [l, name] : {std::pair{&L.q, "q"}, {&L.k, "k"}, {&L.v, "v"}, {&L.o, "o"}, {&L.gate, "gate"},
                                  {&L.up, "up"}, {&L.down, "down"}})
      role[l] = name;
  role[&model->lm_head()] = "head";
  // role ("q+k+v" for products run together) -> (seconds, bytes)
  std::map<std::string, std::pair<double, double>> decode_linears;
  const LinearTimer decode_timer = [&](std::span<const Linear* const> ls, int, double seconds) {
    std::string name;
    double read = 0;
    for (const Linear* l : ls) {
      name += (name.empty() ? "" : "+") + role.at(l);
      read += double(linear_bytes(*l));
    }
    auto& [t, bytes] = decode_linears[name];
    t += seconds;
    bytes += read;
  };
  std::vector<double> prefill, decode, bandwidth, roof_fraction;
  json probe_patterns = json::array();
  double decode_wall = 0, decode_cpu = 0, probe_buffer_bytes = 0;
  for (int r = 0; r < o.repeats; ++r) {
    session.reset();
    const double t0 = now();
    forward(prompt);
    prefill.push_back(double(o.prompt_tokens) / (now() - t0));
    // The roof's bandwidth, probed right before the decode it is compared with (by the probe's
    // own process, ProbeServer). This process's OpenMP threads are released first: with
    // OMP_WAIT_POLICY=active they would spin through the probe on its cores (measured: 17-20 GB/s
    // against 31-33, "% of roof" above 100%); the decode's first parallel region starts them again.
    omp_pause_resource_all(omp_pause_soft);
    const json bw = bandwidth_probe.measure(threads);
    if (bw.contains("error")) throw std::runtime_error("bandwidth probe: " + bw["error"].get<std::string>());
    bandwidth.push_back(bw["bandwidth_bytes_per_s"].get<double>());
    probe_buffer_bytes = bw["buffer_bytes"].get<double>();
    probe_patterns.push_back({{"four_prefetched_streams", bw["four_prefetched_streams_bytes_per_s"]},
                              {"one_stream", bw["one_stream_bytes_per_s"]}});
    session.set_linear_timer(decode_timer);
    const double t1 = now(), c1 = cpu_seconds();
    for (int i = 0; i < o.decode_tokens; ++i) forward(std::span<const int>(next).subspan(size_t(i), 1));
    const double wall = now() - t1;
    session.set_linear_timer(nullptr);
    decode_cpu += cpu_seconds() - c1;
    decode_wall += wall;
    decode.push_back(double(o.decode_tokens) / wall);
    roof_fraction.push_back(decode.back() / (bandwidth.back() / bytes_per_token));
  }
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  const double decode_tps = median(decode);
  const Linear& probe = model->layers()[0].q;
  json r = {{"model", path},
            {"format", format},
            {"isa", kernels::kernels().name},
            {"blas_core", std::string(openblas_get_corename())},
            {"threads", threads},
            {"decode_path", linear_path(probe, 1)},
            {"prefill_path", linear_path(probe, o.prompt_tokens)},
            {"prompt_tokens", o.prompt_tokens},
            {"decode_tokens", o.decode_tokens},
            {"repeats", o.repeats},
            {"load_seconds", load_seconds},
            {"prefill_tokens_per_s", median(prefill)},
            {"decode_tokens_per_s", decode_tps},
            {"prefill_tokens_per_s_all", prefill},
            {"decode_tokens_per_s_all", decode},
            {"weight_bytes", linear_total + norms + embedding},
            {"linear_weight_bytes", linear_total},
            {"bytes_per_token", bytes_per_token},
            // Median of the probes taken right before each decode repeat; the roof fraction is the
            // median of each repeat's decode against its own probe.
            {"bandwidth_bytes_per_s", median(bandwidth)},
            {"bandwidth_bytes_per_s_all", bandwidth},
            {"bandwidth_by_pattern", probe_patterns},
            {"bandwidth_buffer_bytes", probe_buffer_bytes},
            {"roof_tokens_per_s", median(bandwidth) / bytes_per_token},
            {"decode_roof_fraction", median(roof_fraction)},
            {"decode_roof_fraction_all", roof_fraction},
            {"peak_rss_bytes", int64_t(usage.ru_maxrss) * 1024},
            {"dequant_share", nullptr},
            // CPU time over wall time x threads while decoding: below 1 when the threads were off
            // the CPU (neighbours on a shared machine, or waiting between parallel regions).
            {"decode_cpu_utilization", decode_cpu / (decode_wall * threads)}};
  if (weight_only_kernels) r["dequant_share"] = dequant_seconds / threads * decode_tps;
  json breakdown = json::object();
  double in_linears = 0;
  for (const auto& [name, tb] : decode_linears) {
    breakdown[name] = {{"share", tb.first / decode_wall}, {"bytes_per_s", tb.second / tb.first}};
    in_linears += tb.first;
  }
  // Everything else: norms, RoPE, attention, SwiGLU, residuals, sampling, and the gaps between
  // parallel regions.
  breakdown["other"] = {{"share", 1.0 - in_linears / decode_wall}};
  r["decode_breakdown"] = breakdown;
  return r;
}

void print_table(const std::vector<json>& rows) {
  std::printf("machine:   %s, %d threads, kernels %s%s, BLAS core %s\n", cpu_name().c_str(),
              rows[0]["threads"].get<int>(), rows[0]["isa"].get<std::string>().c_str(),
              kernels::kernel_selection_note().empty() ? "" : (" (" + kernels::kernel_selection_note() + ")").c_str(),
              rows[0]["blas_core"].get<std::string>().c_str());
  // OpenBLAS 0.3.21 does not recognize newer Xeons (e.g. family 6 model 207) and falls back to
  // its SSE3 "Prescott" kernels, which makes the FP32 baseline several times slower than it
  // should be. Say so rather than report an inflated speedup.
  if (rows[0]["blas_core"] == "Prescott" && kernels::isa_supported(kernels::Isa::kAvx2))
    std::printf("warning:   OpenBLAS chose its SSE3 Prescott kernels on an AVX2 CPU; FP32 figures are too slow.\n"
                "           Rerun with OPENBLAS_CORETYPE=SkylakeX (AVX-512) or Haswell (AVX2).\n");
  std::printf("bandwidth: read, summed over %s in huge pages, best of 5 passes of each of 2 patterns (4 prefetched\n"
              "           streams per thread; 1 plain stream per thread), probed right before each decode repeat;\n"
              "           GB/s = median probe, %% roof = median over repeats\n"
              "           of decode / (that repeat's probe / bytes read per token)\n",
              human_bytes(rows[0]["bandwidth_buffer_bytes"].get<double>()).c_str());
  std::printf("protocol:  prefill = one %d-token prompt, decode = %d single-token steps after it; median of %d; random ids\n",
              rows[0]["prompt_tokens"].get<int>(), rows[0]["decode_tokens"].get<int>(), rows[0]["repeats"].get<int>());
  std::printf("cpu:       CPU time / (wall time x threads) while decoding; well below 100%% means the threads were\n"
              "           off the CPU (other processes on a shared machine), so decode and roof figures are low\n\n");
  std::printf("%-28s %-24s %-22s %10s %9s %9s %6s %9s %7s %7s %7s %8s %10s\n", "model", "format", "decode kernel",
              "weights", "prefill/s", "decode/s", "GB/s", "roof/s", "% roof", "dequant", "cpu", "vs first", "peak RSS");
  const double first = rows[0]["decode_tokens_per_s"].get<double>();
  for (const json& r : rows) {
    std::string name = r["model"].get<std::string>();
    if (name.size() > 28) name = "…" + name.substr(name.size() - 27);
    const double decode = r["decode_tokens_per_s"].get<double>(), roof = r["roof_tokens_per_s"].get<double>();
    const std::string dequant = r["dequant_share"].is_null() ? "-" : fmt::format("{:.0f}%", 100 * r["dequant_share"].get<double>());
    std::printf("%-28s %-24s %-22s %10s %9.1f %9.2f %6.1f %9.2f %6.0f%% %7s %6.0f%% %7.2fx %10s\n", name.c_str(),
                r["format"].get<std::string>().c_str(), r["decode_path"].get<std::string>().c_str(),
                human_bytes(r["weight_bytes"].get<double>()).c_str(), r["prefill_tokens_per_s"].get<double>(), decode,
                r["bandwidth_bytes_per_s"].get<double>() / 1e9, roof, 100 * r["decode_roof_fraction"].get<double>(),
                dequant.c_str(),
                100 * r["decode_cpu_utilization"].get<double>(), decode / first,
                human_bytes(r["peak_rss_bytes"].get<double>()).c_str());
  }
}

// Per model: each kind of linear's share of decode time and its read rate as % of the probe.
void print_breakdown(const std::vector<json>& rows) {
  std::printf("\ndecode time by product (share of decode wall time; read rate as %% of the row's GB/s):\n");
  for (const json& r : rows) {
    std::string line;
    const double probe = r["bandwidth_bytes_per_s"].get<double>();
    for (const auto& [name, b] : r["decode_breakdown"].items()) {
      if (name == "other") continue;
      line += fmt::format(" {} {:.0f}% ({:.0f}%)", name, 100 * b["share"].get<double>(),
                          100 * b["bytes_per_s"].get<double>() / probe);
    }
    line += fmt::format(" other {:.0f}%", 100 * r["decode_breakdown"]["other"]["share"].get<double>());
    std::printf("%s:%s\n", r["model"].get<std::string>().c_str(), line.c_str());
  }
}

void run_bench(const BenchOptions& o) {
  if (o.dense != "auto" && o.dense != "f32" && o.dense != "f16" && o.dense != "bf16")
    fail(error(ErrorCode::kInvalidArgument, "--dense {}: expected auto, f32, f16 or bf16", o.dense));
  if (o.prompt_tokens < 1 || o.decode_tokens < 1 || o.repeats < 1)
    fail(error(ErrorCode::kInvalidArgument, "--prompt-tokens, --decode-tokens and --repeats must be positive"));
  std::vector<json> rows;
  const ProbeServer probe;  // before any model's process, which inherits its pipes
  for (const std::string& path : o.models) {
    json r = run_in_child([&] { return bench_model(path, o, probe); });
    if (r.contains("error")) fail(error(ErrorCode::kInvalidArgument, "{}: {}", path, r["error"].get<std::string>()));
    r["cpu"] = cpu_name();
    rows.push_back(std::move(r));
  }
  if (o.json) {
    std::printf("%s\n", json(rows).dump(1).c_str());
  } else {
    print_table(rows);
    if (o.breakdown) print_breakdown(rows);
  }
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* cmd = app.add_subcommand("bench", "Prefill/decode speed, memory and decode roofline of one or more models");
  cmd->add_option("models", o->models, "Models to compare (any supported format), e.g. FP32 and quantized")->required();
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  cmd->add_option("--prompt-tokens", o->prompt_tokens, "Prefill prompt length")->capture_default_str();
  cmd->add_option("--decode-tokens", o->decode_tokens, "Decode steps after the prompt")->capture_default_str();
  cmd->add_option("--repeats", o->repeats, "Timed repetitions (the median is reported)")->capture_default_str();
  cmd->add_flag("--int8-activations", o->int8_activations,
                "Quantize activations per token to int8 (W8A8 / W4A8 / W3A8 / W2A8 kernels for int8 / 4 / 3 / 2 "
                "bit weights)");
  cmd->add_option("--dense", o->dense,
                  "Kernel format for unquantized linears: auto (as run/eval: a quantized checkpoint's F16/BF16 "
                  "tensors at their stored precision, everything else fp32), f32 (BLAS), f16 or bf16")
      ->capture_default_str();
  cmd->add_flag("--breakdown", o->breakdown,
                "Also print each kind of linear's share of decode time and its read rate against the probe "
                "(always in --json as decode_breakdown)");
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer file for llama2.c models");
  cmd->add_option("--seed", o->seed, "Seed of the random token ids")->capture_default_str();
  cmd->add_flag("--json", o->json,
                "Print a JSON list, one object per model: model, prefill_tokens_per_s, decode_tokens_per_s, "
                "weight_bytes, peak_rss_bytes, roof_tokens_per_s, ...");
  cmd->footer(
      "Example:\n  lowbit synth --shape tinyllama-1.1b -o tl && lowbit quantize tl -o tl-q4 --bits 4 --group 128\n"
      "  lowbit bench tl tl-q4 --threads 2\n"
      "Kernels: LOWBIT_ISA=ref|avx2|avx512 forces an ISA (default: the best this CPU runs).\n"
      "On AVX-512 VNNI, weight-only int4/int3/int2 run on the int8 kernels with each token as two int8\n"
      "slices (every input exact to 1/64516 of its 32-input block's max; decode path gemv_qd8x2_...);\n"
      "LOWBIT_EXACT_ACTIVATIONS=1 runs them on the fp32 kernels instead.");
  cmd->callback([o] { run_bench(*o); });
}

}  // namespace lowbit::cli

#include "cli_common.h"

#include <cblas.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>

#include "model/checkpoint.h"

namespace lowbit::cli {

void fail(const Status& status) {
  std::fprintf(stderr, "lowbit: %s\n", status.message().c_str());
  std::exit(exit_code(status.code()));
}

std::shared_ptr<Model> load_model(const std::string& path, const std::string& tokenizer_path) {
  Checkpoint ckpt = unwrap(load_checkpoint(path, tokenizer_path));
  return unwrap(Model::from_checkpoint(ckpt));
}

void set_threads(int threads) {
  if (threads <= 0) return;
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

std::string with_commas(int64_t v) {
  std::string s = std::to_string(v < 0 ? -v : v);
  for (int i = int(s.size()) - 3; i > 0; i -= 3) s.insert(size_t(i), ",");
  return v < 0 ? "-" + s : s;
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (bytes >= 1000 && u < 4) bytes /= 1000, ++u;
  return u == 0 ? fmt::format("{:.0f} {}", bytes, units[u]) : fmt::format("{:.2f} {}", bytes, units[u]);
}

}  // namespace lowbit::cli

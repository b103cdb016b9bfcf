// Shared pieces of the lowbit CLI: loading models with one-line errors, failing with the
// documented exit status, thread settings.
#pragma once

#include <memory>
#include <string>

#include "base/status.h"
#include "model/model.h"

namespace lowbit::cli {

// Prints "lowbit: <message>" to stderr and exits with the status's documented code.
[[noreturn]] void fail(const Status& status);

template <typename T>
T unwrap(Result<T> r) {
  if (!r.ok()) fail(r.status());
  return std::move(r).value();
}
inline void check(const Status& s) {
  if (!s.ok()) fail(s);
}

// Loads a checkpoint of any supported format and builds its runtime model.
std::shared_ptr<Model> load_model(const std::string& path, const std::string& tokenizer_path = "");

// Sets OpenMP and OpenBLAS thread counts (0 = leave the defaults: all cores).
void set_threads(int threads);

// "1,234,567"
std::string with_commas(int64_t v);
// "1.05 MB" (decimal units, as disk sizes are quoted)
std::string human_bytes(double bytes);

}  // namespace lowbit::cli

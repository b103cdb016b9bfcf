// Helpers shared by all tests: a scratch directory per test, and the optional ../shared folder.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace lowbit::testing {

// A fresh directory removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "lowbit_test_XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), std::streamsize(n));
}
inline void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_bytes(path, bytes.data(), bytes.size());
}
inline void write_text(const std::string& path, const std::string& text) { write_bytes(path, text.data(), text.size()); }
inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// ../shared/models/stories260K when present, else "" (tests then GTEST_SKIP with a message).
inline std::string stories260k_dir() {
  const char* env = std::getenv("LOWBIT_SHARED_DIR");
  std::string base = env ? env : "../shared";
  std::string dir = base + "/models/stories260K";
  return std::filesystem::exists(dir + "/stories260K.bin") ? dir : "";
}

}  // namespace lowbit::testing

#define LOWBIT_REQUIRE_STORIES260K(var)                                                      \
  const std::string var = ::lowbit::testing::stories260k_dir();                              \
  if (var.empty()) GTEST_SKIP() << "../shared/models/stories260K not present; skipping test"

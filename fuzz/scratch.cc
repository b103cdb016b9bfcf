#include "fuzz/scratch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace lowbit::fuzz {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "lowbit fuzz harness: %s\n", what.c_str());
  std::abort();
}

class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    const fs::path base = fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
                              ? fs::path("/dev/shm")
                              : fs::temp_directory_path();
    std::string tmpl = (base / "lowbit_fuzz_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) die("cannot create a scratch directory under " + base.string());
    path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace

const std::string& scratch_dir() {
  static ScratchDir dir;
  return dir.path();
}

std::string scratch_subdir(const std::string& sub) {
  const std::string path = scratch_dir() + "/" + sub;
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) die("cannot create " + path + ": " + ec.message());
  return path;
}

std::string write_scratch_file(const std::string& relative, std::span<const uint8_t> bytes) {
  const std::string path = scratch_dir() + "/" + relative;
  const fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!fs::is_directory(parent, ec)) fs::create_directories(parent, ec);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) die("cannot write " + path);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n <= 0) die("short write to " + path);
    done += size_t(n);
  }
  ::close(fd);
  return path;
}

std::vector<uint8_t> read_whole_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) die("cannot read " + path);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace lowbit::fuzz

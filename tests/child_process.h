// Starts the lowbit binary as a child process directly (fork + exec, no shell) so a test can
// set resource limits on it, signal it while it runs and read its peak memory when it ends.
// tests/cli_runner.h is the simpler form for commands that just run to completion.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "testing/testing.h"

namespace lowbit::testing {

struct ChildOptions {
  std::map<std::string, std::string> env;  // added to the environment
  uint64_t file_size_limit = 0;            // RLIMIT_FSIZE, with SIGXFSZ ignored (writes fail EFBIG)
  uint64_t data_limit = 0;                 // RLIMIT_DATA: heap and private writable mappings
  std::string stdout_path = "/dev/null", stderr_path = "/dev/null";
  std::string binary = LOWBIT_BINARY;  // another lowbit build, e.g. a baseline to compare with
};

struct ChildResult {
  bool exited = false;     // exited normally (else killed by a signal)
  int exit_code = -1;      // when exited
  int signal = 0;          // when killed
  int64_t max_rss_kb = 0;  // peak resident set (getrusage of the child)
};

inline pid_t start_lowbit(const std::vector<std::string>& args, const ChildOptions& o = {}) {
  std::fflush(stdout);  // the child would otherwise write the parent's buffered output again
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // Child: only async-signal-safe calls until exec would be ideal; the test binary is
  // single-threaded here, so the usual calls are fine.
  for (const auto& [k, v] : o.env) ::setenv(k.c_str(), v.c_str(), 1);
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  if (o.file_size_limit > 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // inherited through exec: the write fails with EFBIG instead
    struct rlimit rl = {o.file_size_limit, o.file_size_limit};
    ::setrlimit(RLIMIT_FSIZE, &rl);
  }
  if (o.data_limit > 0) {
    struct rlimit rl = {o.data_limit, o.data_limit};
    ::setrlimit(RLIMIT_DATA, &rl);
  }
  if (!std::freopen(o.stdout_path.c_str(), "w", stdout) || !std::freopen(o.stderr_path.c_str(), "w", stderr))
    ::_exit(127);
  std::vector<char*> argv;
  std::string binary = o.binary;
  argv.push_back(binary.data());
  std::vector<std::string> copy = args;
  for (std::string& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(binary.c_str(), argv.data());
  ::_exit(127);
}

inline ChildResult wait_lowbit(pid_t pid) {
  int status = 0;
  struct rusage usage {};
  ChildResult r;
  if (::wait4(pid, &status, 0, &usage) != pid) return r;
  r.exited = WIFEXITED(status);
  r.exit_code = r.exited ? WEXITSTATUS(status) : -1;
  r.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  r.max_rss_kb = usage.ru_maxrss;
  return r;
}

inline ChildResult run_lowbit_child(const std::vector<std::string>& args, const ChildOptions& o = {}) {
  return wait_lowbit(start_lowbit(args, o));
}

inline void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, long(ms % 1000) * 1000000L};
  ::nanosleep(&ts, nullptr);
}

// Every file under `root` (relative path -> bytes): directory contents compared byte for byte.
inline std::map<std::string, std::vector<uint8_t>> read_tree(const std::string& root) {
  std::map<std::string, std::vector<uint8_t>> out;
  std::error_code ec;
  if (!std::filesystem::exists(root, ec)) return out;
  if (std::filesystem::is_regular_file(root, ec)) {
    out[""] = read_bytes(root);
    return out;
  }
  for (const auto& e : std::filesystem::recursive_directory_iterator(root, ec))
    if (e.is_regular_file()) out[std::filesystem::relative(e.path(), root).string()] = read_bytes(e.path().string());
  return out;
}

// FNV-1a over every file of a tree (names and bytes): "the input did not change".
inline uint64_t hash_tree(const std::string& root) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  };
  for (const auto& [name, bytes] : read_tree(root)) {
    mix(reinterpret_cast<const uint8_t*>(name.data()), name.size());
    mix(bytes.data(), bytes.size());
  }
  return h;
}

// Names under `dir` (recursively) that look like lowbit temporaries: "*.tmp.*" or "*.old.*".
inline std::vector<std::string> stray_temporaries(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.find(".tmp.") != std::string::npos || name.find(".old.") != std::string::npos)
      out.push_back(e.path().string());
  }
  return out;
}

}  // namespace lowbit::testing

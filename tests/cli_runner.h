// Runs the lowbit binary in a shell and captures exit status, stdout and stderr.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <string>

#include "testing/testing.h"

namespace lowbit::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out, err;
  // Number of non-empty lines on stderr (an error must be exactly one clear line).
  int err_lines() const {
    int n = 0;
    bool in_line = false;
    for (char c : err) {
      if (c == '\n') n += in_line, in_line = false;
      else in_line = true;
    }
    return n + in_line;
  }
};

inline CommandResult run_lowbit(const std::string& args) {
  TempDir tmp;
  const std::string cmd = std::string(LOWBIT_BINARY) + " " + args + " >" + tmp.file("out") + " 2>" + tmp.file("err");
  int status = std::system(cmd.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  auto out = read_bytes(tmp.file("out")), err = read_bytes(tmp.file("err"));
  r.out.assign(out.begin(), out.end());
  r.err.assign(err.begin(), err.end());
  return r;
}

}  // namespace lowbit::testing

// No partial output after an interruption (SIGINT, SIGTERM, SIGHUP) or an early exit().
//
// Every temporary path lowbit writes — AtomicFile's "<path>.tmp.<pid>.<n>" and AtomicDirectory's
// staging directory "<dir>.tmp.<pid>.<n>" — is recorded in a fixed-size registry for as long as it
// exists. install_interrupt_cleanup() (called once by the CLI) installs signal handlers that
// remove the registered paths and then re-raise the signal with its default action, so the
// process still dies of the signal (a shell reports 128 + N) and the destination keeps its
// previous contents. It also removes them at exit(): the CLI's fail() exits without unwinding the
// stack, so destructors of live writers would not run.
//
// The handler is async-signal-safe: the registry is a fixed array of slots claimed with atomics
// (no allocation, no locks), and removal uses only unlink, rmdir, open, getdents64, unlinkat and
// write. A staging directory holds plain files only, so emptying it one level deep is enough.
//
// Publishing an output (the renames at the end) runs inside a CommitSection: a signal arriving
// then, on any thread, is deferred until the section ends, and the process dies of it right
// after. So a destination is never seen half-replaced: it holds the previous output or the new
// one.
#pragma once

#include <string>

namespace lowbit {

// Installs the handlers for SIGINT, SIGTERM and SIGHUP (a signal the process ignores, as under
// nohup, stays ignored) and the exit-time cleanup. Idempotent.
void install_interrupt_cleanup();

// A registered temporary path: removed by the handler if the process is interrupted while the
// registration lives. `directory`: remove its files, then the directory itself. A path that does
// not fit a slot (or a full registry) is simply not registered; the writer's own error paths
// still remove it.
class TempPathRegistration {
 public:
  TempPathRegistration() = default;
  TempPathRegistration(const std::string& path, bool directory);
  TempPathRegistration(TempPathRegistration&& other) noexcept : slot_(other.slot_) { other.slot_ = -1; }
  TempPathRegistration& operator=(TempPathRegistration&& other) noexcept;
  TempPathRegistration(const TempPathRegistration&) = delete;
  TempPathRegistration& operator=(const TempPathRegistration&) = delete;
  ~TempPathRegistration() { release(); }
  // The path no longer needs cleaning up (it was renamed into place or removed).
  void release();

 private:
  int slot_ = -1;
};

// Defers SIGINT/SIGTERM/SIGHUP handling while the renames that publish an output run (nests).
class CommitSection {
 public:
  CommitSection();
  ~CommitSection();
  CommitSection(const CommitSection&) = delete;
  CommitSection& operator=(const CommitSection&) = delete;
};

// Test-only hook (tests/atomic_output_test.cc): when LOWBIT_TEST_HOLD_BEFORE_COMMIT names a file,
// a top-level output about to be renamed into place (not a file inside a staging directory)
// first creates that file, then waits while it exists (at most 60 s), so a test can interrupt
// the process at exactly that point or delete the file to let it go on. Unset: does nothing.
void test_hold_before_commit(const std::string& destination);

}  // namespace lowbit

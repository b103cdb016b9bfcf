#include "io/interrupt_cleanup.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace lowbit {

namespace {

constexpr int kSlots = 128;
constexpr size_t kMaxPath = 4096;
enum SlotState : int { kFree = 0, kClaimed = 1, kLive = 2 };

struct Slot {
  std::atomic<int> state{kFree};
  bool directory = false;
  char path[kMaxPath];
};
Slot g_slots[kSlots];

std::atomic<int> g_commit_depth{0};     // open CommitSections (all threads)
std::atomic<int> g_deciding{0};         // handlers that have not yet deferred
std::atomic<int> g_pending_signal{0};   // a signal deferred by a CommitSection
std::atomic<bool> g_cleaning{false};    // one thread removes the registered paths

void write_stderr(const char* text) {
  ssize_t ignored = ::write(STDERR_FILENO, text, std::strlen(text));
  (void)ignored;
}

// Removes the plain files of a directory (one level), then the directory. Async-signal-safe:
// raw getdents64 instead of opendir (which allocates).
void remove_flat_directory(const char* path) {
  const int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    alignas(8) static char buf[8192];  // only one thread ever cleans (g_cleaning)
    for (;;) {
      const long n = ::syscall(SYS_getdents64, fd, buf, sizeof(buf));
      if (n <= 0) break;
      for (long off = 0; off < n;) {
        // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, char name[]
        unsigned short reclen;
        std::memcpy(&reclen, buf + off + 16, sizeof(reclen));
        const char* name = buf + off + 19;
        if (std::strcmp(name, ".") != 0 && std::strcmp(name, "..") != 0) ::unlinkat(fd, name, 0);
        off += reclen;
      }
    }
    ::close(fd);
  }
  ::rmdir(path);
}

void remove_registered_paths() {
  // Newest first: files inside a staging directory go before the directory.
  for (int i = kSlots - 1; i >= 0; --i) {
    Slot& s = g_slots[i];
    if (s.state.load(std::memory_order_acquire) != kLive) continue;
    if (s.directory) remove_flat_directory(s.path);
    else ::unlink(s.path);
  }
}

[[noreturn]] void die_of(int sig) {
  if (!g_cleaning.exchange(true)) {
    remove_registered_paths();
    write_stderr("lowbit: interrupted; partial output removed, previous output left as it was\n");
  } else {
    for (;;) ::pause();  // another thread is cleaning up and will end the process
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
  // raise() from inside a handler is delivered when the handler returns; make sure it is.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, sig);
  ::pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
  ::_exit(128 + sig);
}

extern "C" void on_interrupt(int sig) {
  const int saved_errno = errno;
  g_deciding.fetch_add(1);
  if (g_commit_depth.load() > 0) {  // renames in progress: finish them first
    g_pending_signal.store(sig);
    g_deciding.fetch_sub(1);
    errno = saved_errno;
    return;
  }
  die_of(sig);  // g_deciding stays raised: a CommitSection starting now waits for the end
}

extern "C" void cleanup_at_exit() {
  if (!g_cleaning.exchange(true)) remove_registered_paths();
}

}  // namespace

void install_interrupt_cleanup() {
  static std::atomic<bool> installed{false};
  if (installed.exchange(true)) return;
  std::atexit(cleanup_at_exit);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_interrupt;
  sa.sa_flags = SA_RESTART;  // a deferred signal must not make a write fail with EINTR
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&sa.sa_mask, sig);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old;
    if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_IGN) continue;
    ::sigaction(sig, &sa, nullptr);
  }
}

TempPathRegistration::TempPathRegistration(const std::string& path, bool directory) {
  if (path.size() >= kMaxPath) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = kFree;
    if (!g_slots[i].state.compare_exchange_strong(expected, kClaimed)) continue;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    g_slots[i].directory = directory;
    g_slots[i].state.store(kLive, std::memory_order_release);
    slot_ = i;
    return;
  }
}

TempPathRegistration& TempPathRegistration::operator=(TempPathRegistration&& other) noexcept {
  if (this != &other) {
    release();
    slot_ = other.slot_;
    other.slot_ = -1;
  }
  return *this;
}

void TempPathRegistration::release() {
  if (slot_ >= 0) g_slots[slot_].state.store(kFree, std::memory_order_release);
  slot_ = -1;
}

CommitSection::CommitSection() {
  g_commit_depth.fetch_add(1);
  // A handler that started before we entered either defers (and steps back) or ends the process.
  while (g_deciding.load() != 0) {
    struct timespec ts = {0, 1000000};
    ::nanosleep(&ts, nullptr);
  }
}

CommitSection::~CommitSection() {
  if (g_commit_depth.fetch_sub(1) != 1) return;
  if (const int sig = g_pending_signal.exchange(0); sig != 0) die_of(sig);
}

void test_hold_before_commit(const std::string& destination) {
  const char* marker = std::getenv("LOWBIT_TEST_HOLD_BEFORE_COMMIT");
  if (marker == nullptr || *marker == '\0' || destination.find(".tmp.") != std::string::npos) return;
  const int fd = ::open(marker, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return;
  ssize_t ignored = ::write(fd, destination.data(), destination.size());
  (void)ignored;
  ::close(fd);
  struct stat st;
  for (int i = 0; i < 6000 && ::stat(marker, &st) == 0; ++i) {
    struct timespec ts = {0, 10000000};
    ::nanosleep(&ts, nullptr);
  }
}

}  // namespace lowbit

#include "io/atomic_directory.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace lowbit {

namespace {

namespace fs = std::filesystem;

// "out/" and "out" name the same destination.
fs::path normalized(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::absolute(fs::path(dir), ec);
  if (p.filename().empty()) p = p.parent_path();
  return p;
}

std::string sibling(const fs::path& target, const char* kind) {
  static std::atomic<int> counter{0};
  return (target.parent_path() / (target.filename().string() + "." + kind + "." + std::to_string(::getpid()) + "." +
                                  std::to_string(counter++)))
      .string();
}

}  // namespace

Result<AtomicDirectory> AtomicDirectory::create(const std::string& dir, Mode mode) {
  const fs::path target = normalized(dir);
  std::error_code ec;
  if (mode == Mode::kMerge) fs::create_directories(target.parent_path(), ec);
  if (ec) return error(ErrorCode::kIo, "{}: cannot create parent directory: {}", dir, ec.message());
  if (!fs::is_directory(target.parent_path(), ec))
    return error(ErrorCode::kIo, "{}: parent directory {} does not exist", dir, target.parent_path().string());
  if (fs::exists(target, ec) && !fs::is_directory(target, ec))
    return error(ErrorCode::kInvalidArgument, "{}: exists and is not a directory", dir);
  AtomicDirectory d;
  d.path_ = target.string();
  d.staging_ = sibling(target, "tmp");
  d.mode_ = mode;
  d.registration_ = TempPathRegistration(d.staging_, /*directory=*/true);
  if (::mkdir(d.staging_.c_str(), 0755) != 0)
    return error(ErrorCode::kIo, "{}: cannot create {}: {}", dir, d.staging_, std::strerror(errno));
  d.live_ = true;
  return d;
}

AtomicDirectory::AtomicDirectory(AtomicDirectory&& o) noexcept
    : path_(std::move(o.path_)),
      staging_(std::move(o.staging_)),
      mode_(o.mode_),
      live_(o.live_),
      registration_(std::move(o.registration_)) {
  o.live_ = false;
}

AtomicDirectory::~AtomicDirectory() {
  if (live_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
  registration_.release();
}

Status AtomicDirectory::commit(const std::string& last, const std::vector<std::string>& remove) {
  LOWBIT_CHECK(live_);
  test_hold_before_commit(path_);
  Status s = mode_ == Mode::kReplace ? commit_replace() : commit_merge(last, remove);
  return s;
}

Status AtomicDirectory::commit_replace() {
  std::error_code ec;
  const bool exists = fs::exists(path_, ec);
  if (!exists) {
    CommitSection section;
    if (::rename(staging_.c_str(), path_.c_str()) != 0)
      return error(ErrorCode::kIo, "{}: cannot rename into place: {}", path_, std::strerror(errno));
    live_ = false;
    registration_.release();
    return Status::Ok();
  }
  // After the swap the staging name holds the previous output; it stays registered, so an
  // interruption while it is being removed still removes it.
  {
    CommitSection section;
    if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, path_.c_str(), RENAME_EXCHANGE) != 0) {
      if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return error(ErrorCode::kIo, "{}: cannot replace: {}", path_, std::strerror(errno));
      // No atomic exchange here: move the old one aside, then the new one in (still deferred).
      const std::string old = sibling(fs::path(path_), "old");
      TempPathRegistration old_registration(old, /*directory=*/true);
      if (::rename(path_.c_str(), old.c_str()) != 0)
        return error(ErrorCode::kIo, "{}: cannot replace: {}", path_, std::strerror(errno));
      if (::rename(staging_.c_str(), path_.c_str()) != 0) {
        const int e = errno;
        ::rename(old.c_str(), path_.c_str());
        return error(ErrorCode::kIo, "{}: cannot replace: {}", path_, std::strerror(e));
      }
      staging_ = old;
      registration_ = std::move(old_registration);
    }
  }
  fs::remove_all(staging_, ec);
  live_ = false;
  registration_.release();
  return Status::Ok();
}

Status AtomicDirectory::commit_merge(const std::string& last, const std::vector<std::string>& remove) {
  std::error_code ec;
  if (!fs::exists(path_, ec)) return commit_replace();
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(staging_, ec)) names.push_back(entry.path().filename().string());
  if (ec) return error(ErrorCode::kIo, "{}: cannot list {}: {}", path_, staging_, ec.message());
  auto publish = [&](const std::string& name) -> Status {
    const std::string from = staging_ + "/" + name, to = path_ + "/" + name;
    if (::rename(from.c_str(), to.c_str()) != 0)
      return error(ErrorCode::kIo, "{}: cannot rename into place: {}", to, std::strerror(errno));
    return Status::Ok();
  };
  {
    CommitSection section;
    bool has_last = false;
    for (const std::string& name : names) {
      if (name == last) {
        has_last = true;
        continue;
      }
      LOWBIT_RETURN_IF_ERROR(publish(name));
    }
    for (const std::string& name : remove) {
      const std::string p = path_ + "/" + name;
      if (::unlink(p.c_str()) != 0 && errno != ENOENT)
        return error(ErrorCode::kIo, "{}: cannot remove stale file: {}", p, std::strerror(errno));
    }
    if (has_last) LOWBIT_RETURN_IF_ERROR(publish(last));
  }
  ::rmdir(staging_.c_str());
  live_ = false;
  registration_.release();
  return Status::Ok();
}

}  // namespace lowbit

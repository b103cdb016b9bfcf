#include "io/atomic_file.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace lowbit {

Result<AtomicFile> AtomicFile::create(const std::string& path) {
  static std::atomic<int> counter{0};
  AtomicFile f;
  f.path_ = path;
  f.tmp_path_ = fmt::format("{}.tmp.{}.{}", path, ::getpid(), counter++);
  // Registered before it exists, so there is no moment when an interruption would miss it.
  f.registration_ = TempPathRegistration(f.tmp_path_, /*directory=*/false);
  f.file_ = std::fopen(f.tmp_path_.c_str(), "wb");
  if (f.file_ == nullptr)
    return error(ErrorCode::kIo, "{}: cannot create: {}", path, std::strerror(errno));
  return f;
}

AtomicFile::AtomicFile(AtomicFile&& o) noexcept
    : path_(std::move(o.path_)),
      tmp_path_(std::move(o.tmp_path_)),
      file_(o.file_),
      written_(o.written_),
      registration_(std::move(o.registration_)) {
  o.file_ = nullptr;
  o.tmp_path_.clear();
}

AtomicFile::~AtomicFile() {
  if (file_ != nullptr) {
    std::fclose(file_);
    std::remove(tmp_path_.c_str());
  }
  registration_.release();
}

Status AtomicFile::write_error(int err) const {
  if (err == ENOSPC || err == EDQUOT || err == EFBIG)
    return error(ErrorCode::kIo, "{}: write failed: {} (out of disk space or over the file size limit); nothing was "
                 "replaced", path_, std::strerror(err));
  return error(ErrorCode::kIo, "{}: write failed: {}", path_, std::strerror(err));
}

Status AtomicFile::write(std::span<const uint8_t> bytes) {
  LOWBIT_CHECK(file_ != nullptr);
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), file_) != bytes.size()) return write_error(errno);
  written_ += bytes.size();
  return Status::Ok();
}

Status AtomicFile::write_at(uint64_t offset, std::span<const uint8_t> bytes) {
  LOWBIT_CHECK(file_ != nullptr);
  if (std::fflush(file_) != 0) return write_error(errno);
  const int fd = ::fileno(file_);
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return write_error(n < 0 ? errno : ENOSPC);
    bytes = bytes.subspan(size_t(n));
    offset += uint64_t(n);
  }
  return Status::Ok();
}

Status AtomicFile::write_zeros(size_t n) {
  static const uint8_t zeros[64] = {};
  while (n > 0) {
    size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
    LOWBIT_RETURN_IF_ERROR(write(zeros, k));
    n -= k;
  }
  return Status::Ok();
}

Status AtomicFile::commit() {
  LOWBIT_CHECK(file_ != nullptr);
  bool ok = std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0;
  int e = errno;
  ok = (std::fclose(file_) == 0) && ok;
  file_ = nullptr;
  if (!ok) {
    std::remove(tmp_path_.c_str());
    registration_.release();
    return write_error(e);
  }
  test_hold_before_commit(path_);
  {
    CommitSection section;
    if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
      e = errno;
      std::remove(tmp_path_.c_str());
      registration_.release();
      return error(ErrorCode::kIo, "{}: cannot rename into place: {}", path_, std::strerror(e));
    }
    registration_.release();
  }
  return Status::Ok();
}

Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes) {
  LOWBIT_ASSIGN_OR_RETURN(auto f, AtomicFile::create(path));
  LOWBIT_RETURN_IF_ERROR(f.write(bytes));
  return f.commit();
}

Status write_text_file_atomic(const std::string& path, const std::string& text) {
  return write_file_atomic(
      path, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

}  // namespace lowbit

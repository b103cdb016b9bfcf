// Writes a file so that it either appears complete or not at all: data goes to a temporary
// name in the destination's directory and is renamed over the destination by commit().
// If commit() is never reached (error, exception), the destructor removes the temporary; if the
// process is interrupted first, the signal handler does (io/interrupt_cleanup.h).
//
// Out of disk space (ENOSPC, EDQUOT) or over the file size limit (EFBIG) is one clear kIo error
// (exit status 3) naming the destination; the temporary is removed and the destination keeps
// its previous contents.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>

#include "base/status.h"
#include "io/interrupt_cleanup.h"

namespace lowbit {

class AtomicFile {
 public:
  // Opens "<path>.tmp.<pid>.<n>" for writing.
  static Result<AtomicFile> create(const std::string& path);
  AtomicFile(AtomicFile&& other) noexcept;
  AtomicFile& operator=(AtomicFile&&) = delete;
  ~AtomicFile();

  Status write(std::span<const uint8_t> bytes);
  Status write(const void* data, size_t n) {
    return write(std::span<const uint8_t>(static_cast<const uint8_t*>(data), n));
  }
  Status write_zeros(size_t n);
  // Writes at an absolute offset (pwrite) for writers that fill a precomputed layout out of
  // order; bytes_written() then counts sequential writes only. Grows the file as needed.
  Status write_at(uint64_t offset, std::span<const uint8_t> bytes);
  uint64_t bytes_written() const { return written_; }
  // Flushes, fsyncs and renames onto the destination.
  Status commit();
  const std::string& path() const { return path_; }

 private:
  AtomicFile() = default;
  Status write_error(int err) const;
  std::string path_, tmp_path_;
  std::FILE* file_ = nullptr;
  uint64_t written_ = 0;
  TempPathRegistration registration_;
};

// Convenience: whole-buffer atomic write.
Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);
Status write_text_file_atomic(const std::string& path, const std::string& text);

}  // namespace lowbit

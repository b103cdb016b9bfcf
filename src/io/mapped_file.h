// Read-only memory map of a whole file. Inputs are opened O_RDONLY and mapped PROT_READ, so
// lowbit can never modify a user's checkpoint. Empty files map to an empty span.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/status.h"

namespace lowbit {

class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::string& path() const { return path_; }
  // Whether `bytes` lies inside this mapping.
  bool contains(std::span<const uint8_t> bytes) const {
    return !bytes.empty() && bytes.data() >= data_ && bytes.data() + bytes.size() <= data_ + size_;
  }
  // Drops the pages holding `bytes` (inside this mapping) from the process's resident set, so a
  // reader that walks a large file tensor by tensor keeps a bounded footprint. Safe because the
  // mapping is read-only and private: MADV_DONTNEED only unmaps the pages, and touching them
  // again reads them back from the file (usually from the page cache).
  void release(std::span<const uint8_t> bytes) const;

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file into a string: config.json, tokenizer.json, recipes. A file larger
// than `max_bytes` is refused (kResource) before anything is allocated.
Result<std::string> read_text_file(const std::string& path, uint64_t max_bytes = UINT64_MAX);

}  // namespace lowbit

// Bounds-checked little-endian cursor over untrusted bytes. Every read checks the remaining
// length first and reports the byte offset of the problem, so parsers of hostile files
// (GGUF, llama2.c, tokenizer.bin) never read past the end and name where they stopped.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>

#include "base/status.h"

namespace lowbit {

class ByteReader {
 public:
  ByteReader(std::span<const uint8_t> bytes, std::string what)
      : bytes_(bytes), what_(std::move(what)) {}

  size_t offset() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }
  size_t size() const { return bytes_.size(); }
  const uint8_t* current() const { return bytes_.data() + pos_; }

  template <typename T>
  Result<T> read() {
    static_assert(std::is_trivially_copyable_v<T>);
    if (remaining() < sizeof(T)) return truncated(sizeof(T));
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  // Returns a view of the next n bytes and advances past them.
  Result<std::span<const uint8_t>> take(uint64_t n) {
    if (n > remaining()) return truncated(n);
    auto s = bytes_.subspan(pos_, size_t(n));
    pos_ += size_t(n);
    return s;
  }

  Result<std::string> read_string(uint64_t n) {
    LOWBIT_ASSIGN_OR_RETURN(auto s, take(n));
    return std::string(reinterpret_cast<const char*>(s.data()), s.size());
  }

  Status seek(uint64_t offset) {
    if (offset > bytes_.size())
      return error(ErrorCode::kFormat, "{}: offset {} is past the end of the data ({} bytes)", what_,
                   offset, bytes_.size());
    pos_ = size_t(offset);
    return Status::Ok();
  }

  Status truncated(uint64_t wanted) const {
    return error(ErrorCode::kFormat, "{}: truncated: needs {} bytes at offset {} but only {} remain",
                 what_, wanted, pos_, remaining());
  }

 private:
  std::span<const uint8_t> bytes_;
  std::string what_;
  size_t pos_ = 0;
};

// Overflow-checked arithmetic for sizes declared by files.
inline bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}
inline bool add_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_add_overflow(a, b, out);
}

}  // namespace lowbit

// Status and Result<T>: how lowbit reports failures that come from input (files, flags, data).
// Invariants that only a bug can break use LOWBIT_CHECK instead (always on, aborts with a message).
//
// Every error carries a code; the CLI maps the code to its documented exit status
// (see exit_code() and docs/cli.md), so scripts can tell a bad file from a bad flag.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace lowbit {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,  // a flag or parameter is wrong (exit 2)
  kIo,               // a file cannot be opened, read or written (exit 3)
  kFormat,           // a file's content is malformed or hostile (exit 4)
  kUnsupported,      // well-formed but not something lowbit handles (exit 5)
  kNotFound,         // a required tensor, key or file is missing (exit 4, a malformed input)
  kResource,         // would exceed memory or another limit (exit 6)
  kInternal,         // a bug (exit 70)
};

// Documented process exit status for each error code (docs/cli.md).
int exit_code(ErrorCode code);
const char* error_code_name(ErrorCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::kOk; }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "path: problem" style prefixing, so errors name the file they are about.
  Status with_context(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

template <typename... Args>
Status error(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  return Status(code, fmt::format(f, std::forward<Args>(args)...));
}

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status status) : v_(std::move(status)) {
    if (std::get<Status>(v_).ok()) v_ = Status(ErrorCode::kInternal, "Result built from an OK status");
  }
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return check(), std::get<T>(v_); }
  const T& value() const& { return check(), std::get<T>(v_); }
  T&& value() && { return check(), std::move(std::get<T>(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  void check() const {
    if (!ok()) {
      std::fprintf(stderr, "lowbit: value() of a failed Result: %s\n", std::get<Status>(v_).message().c_str());
      std::abort();
    }
  }
  std::variant<T, Status> v_;
};

}  // namespace lowbit

#define LOWBIT_CONCAT_INNER(a, b) a##b
#define LOWBIT_CONCAT(a, b) LOWBIT_CONCAT_INNER(a, b)

// Returns the status from the enclosing function if `expr` (a Status) failed.
#define LOWBIT_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::lowbit::Status lowbit_status_ = (expr);        \
    if (!lowbit_status_.ok()) return lowbit_status_; \
  } while (0)

// `LOWBIT_ASSIGN_OR_RETURN(auto x, MakeX());` unwraps a Result or returns its status.
#define LOWBIT_ASSIGN_OR_RETURN(lhs, expr) \
  LOWBIT_ASSIGN_OR_RETURN_IMPL(LOWBIT_CONCAT(lowbit_result_, __LINE__), lhs, expr)
#define LOWBIT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

// Always-on invariant check: a failure is a bug in lowbit, never bad input.
#define LOWBIT_CHECK(cond)                                                                   \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "lowbit: internal check failed at %s:%d: %s\n", __FILE__, __LINE__, \
                   #cond);                                                                   \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

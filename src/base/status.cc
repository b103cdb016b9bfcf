#include "base/status.h"

namespace lowbit {

int exit_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 0;
    case ErrorCode::kInvalidArgument: return 2;
    case ErrorCode::kIo: return 3;
    case ErrorCode::kFormat: return 4;
    case ErrorCode::kNotFound: return 4;
    case ErrorCode::kUnsupported: return 5;
    case ErrorCode::kResource: return 6;
    case ErrorCode::kInternal: return 70;
  }
  return 70;
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kIo: return "i/o error";
    case ErrorCode::kFormat: return "malformed input";
    case ErrorCode::kNotFound: return "not found";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kResource: return "resource limit";
    case ErrorCode::kInternal: return "internal error";
  }
  return "internal error";
}

}  // namespace lowbit

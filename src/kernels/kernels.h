// Kernel selection: one table per ISA, the best one the CPU supports chosen once at start-up
// (XNNPACK gemm-config style), with LOWBIT_ISA=ref|avx2|avx512 forcing one (FBGEMM
// fbgemmForceIsa style) so tests and benchmarks can cover every path the machine can run.
//
//   ref     scalar C++, always built, the definition every fast path is tested against
//   avx2    AVX2 + FMA + F16C (maddubs/madd for int8 dot products)
//   avx512  AVX-512 F/BW/VL/DQ; with AVX512-VNNI the int8 kernels use vpdpbusd ("avx512_vnni")
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "kernels/kernel_table.h"

namespace lowbit::kernels {

const char* isa_name(Isa isa);
Result<Isa> parse_isa(std::string_view name);
// Whether this CPU (and OS) can run `isa`'s kernels.
bool isa_supported(Isa isa);
std::vector<Isa> supported_isas();

// The table for a supported `isa` (CHECK-fails otherwise). Built once per ISA.
const KernelTable& kernels_for(Isa isa);
// The table in use: LOWBIT_ISA when set and supported, else the best supported ISA.
// LOWBIT_EXACT_ACTIVATIONS=1 clears its weight_only_int8_slices (kernel_table.h).
const KernelTable& kernels();
// Empty, or why LOWBIT_ISA was not honoured (unknown name, ISA not supported by this CPU).
const std::string& kernel_selection_note();

// Table entries by weight kind (null when the table has none).
GemvF32Fn gemv_for(const KernelTable& table, PackedKind kind);
DequantFn dequant_for(const KernelTable& table, PackedKind kind);
GemmQd8Fn gemm_qd8_for(const KernelTable& table, PackedKind kind);
const char* packed_kind_name(PackedKind kind);  // "f16", "q4g", ...

}  // namespace lowbit::kernels

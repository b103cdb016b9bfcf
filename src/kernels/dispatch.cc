#include "kernels/kernels.h"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>
#include <mutex>

namespace lowbit::kernels {

namespace {

bool cpu_has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
bool cpu_has_avx512() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}
bool cpu_has_avx512_vnni() { return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni"); }

// AMX-INT8: cpuid leaf 7 EDX bits 24 (AMX-TILE) and 25 (AMX-INT8), and Linux must grant the
// process the tile data state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 18) before
// the first tile instruction, or that instruction faults. LOWBIT_NO_AMX=1 leaves it off.
bool amx_int8_ready() {
  static const bool ready = [] {
    const char* off = std::getenv("LOWBIT_NO_AMX");
    if (off != nullptr && *off != '\0' && *off != '0') return false;
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    if ((edx >> 24 & 1u) == 0 || (edx >> 25 & 1u) == 0) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ready;
}

KernelTable build_table(Isa isa) {
  KernelTable t;
  fill_ref_kernels(t);
  if (isa == Isa::kRef) return t;
  fill_avx2_kernels(t);
  if (isa == Isa::kAvx2) return t;
  fill_avx512_kernels(t);
  if (cpu_has_avx512_vnni()) fill_avx512_vnni_kernels(t);
  if (cpu_has_avx512_vnni() && amx_int8_ready()) fill_amx_kernels(t);
  const char* exact = std::getenv("LOWBIT_EXACT_ACTIVATIONS");
  if (exact != nullptr && *exact != '\0' && *exact != '0') t.weight_only_int8_slices = false;
  return t;
}

struct Selection {
  Isa isa;
  std::string note;
};

Selection select_isa() {
  const std::vector<Isa> supported = supported_isas();
  Selection s{supported.back(), ""};
  const char* forced = std::getenv("LOWBIT_ISA");
  if (forced == nullptr || *forced == '\0') return s;
  Result<Isa> isa = parse_isa(forced);
  if (!isa.ok()) {
    s.note = std::string("LOWBIT_ISA=") + forced + " is not one of ref, avx2, avx512; using " + isa_name(s.isa);
  } else if (!isa_supported(*isa)) {
    s.note = std::string("LOWBIT_ISA=") + forced + " is not supported by this CPU; using " + isa_name(s.isa);
  } else {
    s.isa = *isa;
  }
  return s;
}

const Selection& selection() {
  static const Selection s = select_isa();
  return s;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kRef: return "ref";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
  }
  return "?";
}

Result<Isa> parse_isa(std::string_view name) {
  for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512})
    if (name == isa_name(isa)) return isa;
  return error(ErrorCode::kInvalidArgument, "unknown ISA '{}' (expected ref, avx2 or avx512)", name);
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::kRef: return true;
    case Isa::kAvx2: return cpu_has_avx2();
    case Isa::kAvx512: return cpu_has_avx512();
  }
  return false;
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512})
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

const KernelTable& kernels_for(Isa isa) {
  LOWBIT_CHECK(isa_supported(isa));
  static KernelTable tables[3];
  static std::once_flag once[3];
  const int i = int(isa);
  std::call_once(once[i], [&] { tables[i] = build_table(isa); });
  return tables[i];
}

const KernelTable& kernels() {
  static const KernelTable& table = kernels_for(selection().isa);
  return table;
}

const std::string& kernel_selection_note() { return selection().note; }

GemvF32Fn gemv_for(const KernelTable& t, PackedKind kind) {
  switch (kind) {
    case PackedKind::kF16: return t.gemv_f16_f32;
    case PackedKind::kBF16: return t.gemv_bf16_f32;
    case PackedKind::kQ8: return t.gemv_q8g_f32;
    case PackedKind::kQ4: return t.gemv_q4g_f32;
    case PackedKind::kQ3: return t.gemv_q3g_f32;
    case PackedKind::kQ2: return t.gemv_q2g_f32;
    case PackedKind::kNF4: return t.gemv_nf4g_f32;
    case PackedKind::kFP8: return t.gemv_fp8c_f32;
    case PackedKind::kQ8P: return t.gemv_q8p_f32;
    case PackedKind::kQ4P: return t.gemv_q4p_f32;
    case PackedKind::kQ2P: return t.gemv_q2p_f32;
    case PackedKind::kQ3P: return t.gemv_q3p_f32;
    case PackedKind::kQ2L: return t.gemv_q2l_f32;
    case PackedKind::kQ3L: return t.gemv_q3l_f32;
  }
  return nullptr;
}

DequantFn dequant_for(const KernelTable& t, PackedKind kind) {
  switch (kind) {
    case PackedKind::kF16: return t.dequant_f16_f32;
    case PackedKind::kBF16: return t.dequant_bf16_f32;
    case PackedKind::kQ8: return t.dequant_q8g_f32;
    case PackedKind::kQ4: return t.dequant_q4g_f32;
    case PackedKind::kQ3: return t.dequant_q3g_f32;
    case PackedKind::kQ2: return t.dequant_q2g_f32;
    case PackedKind::kNF4: return t.dequant_nf4g_f32;
    case PackedKind::kFP8: return t.dequant_fp8c_f32;
    case PackedKind::kQ8P: return t.dequant_q8p_f32;
    case PackedKind::kQ4P: return t.dequant_q4p_f32;
    case PackedKind::kQ2P: return t.dequant_q2p_f32;
    case PackedKind::kQ3P: return t.dequant_q3p_f32;
    case PackedKind::kQ2L: return t.dequant_q2l_f32;
    case PackedKind::kQ3L: return t.dequant_q3l_f32;
  }
  return nullptr;
}

GemmQd8Fn gemm_qd8_for(const KernelTable& t, PackedKind kind) {
  switch (kind) {
    case PackedKind::kQ8: return t.gemm_qd8_q8g_f32;
    case PackedKind::kQ4: return t.gemm_qd8_q4g_f32;
    case PackedKind::kQ3: return t.gemm_qd8_q3g_f32;
    case PackedKind::kQ2: return t.gemm_qd8_q2g_f32;
    case PackedKind::kQ8P: return t.gemm_qd8_q8p_f32;
    case PackedKind::kQ4P: return t.gemm_qd8_q4p_f32;
    case PackedKind::kQ2P: return t.gemm_qd8_q2p_f32;
    case PackedKind::kQ3P: return t.gemm_qd8_q3p_f32;
    default: return nullptr;
  }
}

const char* packed_kind_name(PackedKind kind) {
  switch (kind) {
    case PackedKind::kF16: return "f16";
    case PackedKind::kBF16: return "bf16";
    case PackedKind::kQ8: return "q8g";
    case PackedKind::kQ4: return "q4g";
    case PackedKind::kQ3: return "q3g";
    case PackedKind::kQ2: return "q2g";
    case PackedKind::kNF4: return "nf4g";
    case PackedKind::kFP8: return "fp8c";
    case PackedKind::kQ8P: return "q8p";
    case PackedKind::kQ4P: return "q4p";
    case PackedKind::kQ2P: return "q2p";
    case PackedKind::kQ3P: return "q3p";
    case PackedKind::kQ2L: return "q2l";
    case PackedKind::kQ3L: return "q3l";
  }
  return "?";
}

}  // namespace lowbit::kernels

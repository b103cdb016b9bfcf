// ISA selection: names round-trip, the reference is always available, every supported table is
// complete, and the active table is one of the supported ones.
#include "kernels/kernels.h"

#include <gtest/gtest.h>

namespace lowbit::kernels {
namespace {

TEST(Dispatch, NamesRoundTrip) {
  for (Isa isa : {Isa::kRef, Isa::kAvx2, Isa::kAvx512}) EXPECT_EQ(*parse_isa(isa_name(isa)), isa);
  EXPECT_FALSE(parse_isa("sse9").ok());
}

TEST(Dispatch, SupportedTablesAreComplete) {
  ASSERT_TRUE(isa_supported(Isa::kRef));
  for (Isa isa : supported_isas()) {
    const KernelTable& t = kernels_for(isa);
    EXPECT_EQ(t.isa, isa);
    for (int k = 0; k < kPackedKindCount; ++k) {
      EXPECT_NE(gemv_for(t, PackedKind(k)), nullptr) << t.name << " " << packed_kind_name(PackedKind(k));
      EXPECT_NE(dequant_for(t, PackedKind(k)), nullptr) << t.name;
    }
    EXPECT_NE(t.quantize_f32_qd8, nullptr);
    EXPECT_NE(t.quantize_f32_qd8x2, nullptr);
    EXPECT_NE(gemm_qd8_for(t, PackedKind::kQ8), nullptr);
    EXPECT_NE(gemm_qd8_for(t, PackedKind::kQ4), nullptr);
    EXPECT_EQ(gemm_qd8_for(t, PackedKind::kNF4), nullptr);
  }
}

TEST(Dispatch, ActiveTableHonoursLowbitIsa) {
  const KernelTable& active = kernels();
  EXPECT_TRUE(isa_supported(active.isa));
  const char* forced = std::getenv("LOWBIT_ISA");
  if (forced != nullptr && parse_isa(forced).ok() && isa_supported(*parse_isa(forced))) {
    EXPECT_EQ(active.isa, *parse_isa(forced));
    EXPECT_TRUE(kernel_selection_note().empty());
  } else if (forced == nullptr) {
    EXPECT_EQ(active.isa, supported_isas().back());
  }
}

}  // namespace
}  // namespace lowbit::kernels

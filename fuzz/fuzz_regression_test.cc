// Replays every input under tests/fuzz_regressions/<target>/ (crashes the fuzzers once found,
// now fixed) through the same entry points the fuzzers use, and checks that each target accepts
// the seeds lowbit's own writers produce. Built by the normal build; run by ctest.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "fuzz/fuzz_entry_points.h"

namespace lowbit::fuzz {
namespace {

namespace fs = std::filesystem;

const fs::path kRegressions = LOWBIT_FUZZ_REGRESSIONS_DIR;

std::vector<uint8_t> read_file(const fs::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

class FuzzTargetTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FuzzTargetTest, RegressionInputsAreHandled) {
  const FuzzTarget* target = find_fuzz_target(GetParam());
  ASSERT_NE(target, nullptr);
  const fs::path dir = kRegressions / GetParam();
  std::vector<fs::path> files;
  if (fs::is_directory(dir))
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    // Reaching the next line is the test: a crash, a sanitizer report or a hang fails it.
    (void)target->run(read_file(file));
  }
  RecordProperty("inputs", int(files.size()));
}

TEST_P(FuzzTargetTest, AcceptsWhatLowbitWrites) {
  const FuzzTarget* target = find_fuzz_target(GetParam());
  ASSERT_NE(target, nullptr);
  const std::vector<Seed> seeds = generate_seeds(GetParam());
  EXPECT_FALSE(seeds.empty());
  for (const Seed& seed : seeds) EXPECT_TRUE(target->run(seed.bytes)) << seed.name;
}

std::vector<std::string> target_names() {
  std::vector<std::string> names;
  for (const FuzzTarget& t : fuzz_targets()) names.push_back(t.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzTargetTest, ::testing::ValuesIn(target_names()),
                         [](const auto& info) { return info.param; });

TEST(FuzzRegressions, EveryDirectoryNamesATarget) {
  if (!fs::is_directory(kRegressions)) GTEST_SKIP() << kRegressions << " is absent";
  for (const auto& e : fs::directory_iterator(kRegressions)) {
    if (e.is_directory()) {
      EXPECT_NE(find_fuzz_target(e.path().filename().string()), nullptr) << e.path();
    }
  }
}

}  // namespace
}  // namespace lowbit::fuzz

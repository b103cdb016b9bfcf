// make_fuzz_seeds OUT_DIR [TARGET...]: writes the seed corpus of each fuzz target (all of them
// when none is named) to OUT_DIR/<target>/<seed>, using lowbit's own writers.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "fuzz/fuzz_entry_points.h"

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  using namespace lowbit::fuzz;
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s OUT_DIR [TARGET...]\n", argv[0]);
    return 2;
  }
  std::vector<std::string> names;
  for (int i = 2; i < argc; ++i) names.push_back(argv[i]);
  if (names.empty())
    for (const FuzzTarget& t : fuzz_targets()) names.push_back(t.name);
  for (const std::string& name : names) {
    const FuzzTarget* target = find_fuzz_target(name);
    if (target == nullptr) {
      std::fprintf(stderr, "unknown fuzz target %s\n", name.c_str());
      return 2;
    }
    const fs::path dir = fs::path(argv[1]) / name;
    fs::create_directories(dir);
    int accepted = 0, n = 0;
    for (const Seed& seed : generate_seeds(name)) {
      std::ofstream(dir / seed.name, std::ios::binary)
          .write(reinterpret_cast<const char*>(seed.bytes.data()), std::streamsize(seed.bytes.size()));
      accepted += target->run(seed.bytes) ? 1 : 0;
      ++n;
    }
    std::printf("%-18s %d seeds (%d accepted) in %s\n", name.c_str(), n, accepted, dir.c_str());
    if (accepted != n) return 1;
  }
  return 0;
}

// A per-process scratch directory for parsers that take a path (fuzz entry points and seeds).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace lowbit::fuzz {

// Under /dev/shm when it exists (no disk traffic at thousands of inputs per second), else the
// system temporary directory. Created on first use, removed at normal process exit.
const std::string& scratch_dir();
// "<scratch>/<sub>", created when missing.
std::string scratch_subdir(const std::string& sub);
// Writes `bytes` to "<scratch>/<relative>" (replacing it) and returns the full path. Aborts on an
// I/O error: that is the harness failing, not the parser.
std::string write_scratch_file(const std::string& relative, std::span<const uint8_t> bytes);
std::vector<uint8_t> read_whole_file(const std::string& path);

}  // namespace lowbit::fuzz

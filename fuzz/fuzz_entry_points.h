// One entry point per parser of untrusted input, shared by the libFuzzer targets (fuzz/fuzzer.cc,
// built with clang under LOWBIT_FUZZ=ON by scripts/fuzz.sh) and by the regression test
// (fuzz/fuzz_regression_test.cc, built by the normal g++ build and run by ctest), which replays
// every file under tests/fuzz_regressions/<target>/ and every generated seed.
//
// Each entry point takes arbitrary bytes, runs the same code the CLI runs on a file of that kind,
// and then checks invariants on what was accepted (spans inside the input, sizes that agree,
// writer -> reader round trips). A violated invariant aborts with a message, so the fuzzer
// reports it as a crash. It returns true when the input was accepted as a valid file.
//
// Parsers that take a path see the bytes through a file in a per-process scratch directory
// (under /dev/shm when it exists), removed at exit.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lowbit::fuzz {

using Bytes = std::span<const uint8_t>;

bool fuzz_safetensors(Bytes data);        // parse_safetensors: header, tensor table, coverage
bool fuzz_gguf(Bytes data);               // GgufFile + load_gguf_checkpoint (config, vocabulary)
bool fuzz_llama2c(Bytes data);            // load_checkpoint on a llama2.c .bin (both versions)
bool fuzz_hf_config(Bytes data);          // parse_hf_config (config.json)
bool fuzz_tokenizer_json(Bytes data);     // load_tokenizer_json, then encode/decode a fixed text
bool fuzz_tokenizer_bin(Bytes data);      // load_llama2c_tokenizer, then encode/decode
bool fuzz_recipe(Bytes data);             // parse_recipe + resolve_plan on a fixed tensor list
bool fuzz_token_file(Bytes data);         // read_token_file + window_starts
// A safetensors image whose __metadata__ may carry "quantization_config" (the config.json block
// as JSON text): extract_quantized_tensors on its tensors, then validate and dequantize.
bool fuzz_quantized_tensors(Bytes data);

struct FuzzTarget {
  const char* name;  // directory name under tests/fuzz_regressions/ and fuzzer suffix
  bool (*run)(Bytes data);
};
// Every target, in a fixed order.
const std::vector<FuzzTarget>& fuzz_targets();
const FuzzTarget* find_fuzz_target(std::string_view name);

// Valid small inputs for a target, written by lowbit's own writers (fuzz/fuzz_seeds.cc): the seed
// corpus of the fuzzers, and a test that the entry points accept what lowbit writes.
struct Seed {
  std::string name;
  std::vector<uint8_t> bytes;
};
std::vector<Seed> generate_seeds(std::string_view target);

}  // namespace lowbit::fuzz

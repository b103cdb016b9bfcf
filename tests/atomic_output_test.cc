// Atomic outputs (issue #8, part 3): a full disk or an interruption (SIGINT, SIGTERM) while
// `lowbit convert` or `lowbit quantize` writes leaves the previous output byte for byte as it
// was, no temporaries beside or inside it, and the input unchanged.
//
// A full disk is simulated with RLIMIT_FSIZE in the child (SIGXFSZ ignored, so the write fails
// with EFBIG as it would with ENOSPC). Interruptions are sent at several delays into a run on a
// model large enough that writing takes a moment; whatever the delay, the destination must hold
// either the previous output or the complete new one. One run uses the test-only hook
// LOWBIT_TEST_HOLD_BEFORE_COMMIT (io/interrupt_cleanup.h) to interrupt exactly before the final
// rename, and one lets the held run go on to check that it then publishes the new output.
#include <gtest/gtest.h>

#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include "child_process.h"
#include "model/checkpoint.h"
#include "model/hf_checkpoint.h"
#include "model/synthetic.h"

namespace lowbit {
namespace {

namespace fs = std::filesystem;
using testing::ChildOptions;
using testing::ChildResult;
using testing::read_tree;
using testing::run_lowbit_child;
using testing::stray_temporaries;

std::string read_text(const std::string& path) {
  auto b = testing::read_bytes(path);
  return std::string(b.begin(), b.end());
}

int lines(const std::string& s) {
  int n = 0;
  bool in_line = false;
  for (char c : s) {
    if (c == '\n') n += in_line, in_line = false;
    else in_line = true;
  }
  return n + in_line;
}

// A small HF model (F16) written with the library.
void write_model(const std::string& dir, const ModelConfig& c, uint64_t seed) {
  HfSaveOptions save;
  save.dtype = DType::kF16;
  ASSERT_TRUE(save_hf_checkpoint(dir, make_random_checkpoint(c, seed), save).ok());
}

class FullDisk : public ::testing::Test {
 protected:
  void SetUp() override { write_model(dir_.file("model"), tiny_test_config(), 3); }
  // Runs under a file size limit far below the new output's size; expects exit status 3, one
  // line naming the problem, the previous output unchanged and no temporaries.
  void expect_fails_cleanly(const std::vector<std::string>& args, const std::string& output) {
    const auto before = read_tree(output);
    ASSERT_FALSE(before.empty());
    const uint64_t input_hash = testing::hash_tree(dir_.file("model"));
    ChildOptions o;
    o.file_size_limit = 16 << 10;  // 16 KiB: the outputs here are 100-500 KiB
    o.stderr_path = dir_.file("err");
    const ChildResult r = run_lowbit_child(args, o);
    ASSERT_TRUE(r.exited) << "killed by signal " << r.signal;
    EXPECT_EQ(r.exit_code, 3);
    const std::string err = read_text(dir_.file("err"));
    EXPECT_EQ(lines(err), 1) << err;
    EXPECT_NE(err.find("out of disk space or over the file size limit"), std::string::npos) << err;
    EXPECT_TRUE(read_tree(output) == before) << output << " changed";
    EXPECT_EQ(stray_temporaries(dir_.path()), std::vector<std::string>{});
    EXPECT_EQ(testing::hash_tree(dir_.file("model")), input_hash);
  }
  testing::TempDir dir_;
};

TEST_F(FullDisk, ConvertToHfKeepsThePreviousDirectory) {
  const std::string out = dir_.file("hf");
  ASSERT_EQ(run_lowbit_child({"convert", dir_.file("model"), "--to", "hf", "--dtype", "f16", "-o", out}).exit_code, 0);
  expect_fails_cleanly({"convert", dir_.file("model"), "--to", "hf", "--dtype", "f32", "--force", "-o", out}, out);
}

TEST_F(FullDisk, ConvertToOneFileKeepsThePreviousFile) {
  const std::string out = dir_.file("m.gguf");
  ASSERT_EQ(run_lowbit_child({"convert", dir_.file("model"), "--to", "gguf", "--dtype", "f16", "-o", out}).exit_code, 0);
  expect_fails_cleanly({"convert", dir_.file("model"), "--to", "gguf", "--dtype", "f32", "--force", "-o", out}, out);
}

TEST_F(FullDisk, QuantizeKeepsThePreviousDirectory) {
  const std::string out = dir_.file("q");
  ASSERT_EQ(run_lowbit_child({"quantize", dir_.file("model"), "--bits", "4", "--group", "32", "-o", out}).exit_code, 0);
  expect_fails_cleanly(
      {"quantize", dir_.file("model"), "--bits", "8", "--group", "32", "--dtype", "f32", "--force", "-o", out}, out);
}

// A model whose quantization takes about a second, an output of the previous run (int8) and
// the complete new output (int4) to compare against.
class Interrupt : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    ModelConfig c = tiny_test_config();
    c.dim = 512;
    c.hidden_dim = 1376;
    c.n_layers = 8;
    c.n_heads = 8;
    c.n_kv_heads = 8;
    c.head_dim = 64;
    c.vocab_size = 2048;
    write_model(dir_->file("model"), c, 11);
    ASSERT_EQ(run_lowbit_child(new_args(dir_->file("reference"))).exit_code, 0);
    ASSERT_EQ(run_lowbit_child({"convert", dir_->file("model"), "--to", "hf", "--dtype", "f32", "-o",
                                dir_->file("reference_hf")})
                  .exit_code,
              0);
  }
  static void TearDownTestSuite() { delete dir_; }

  static std::vector<std::string> new_args(const std::string& out) {
    return {"quantize", dir_->file("model"), "--bits", "4", "--group", "128", "--force", "-o", out};
  }
  static std::vector<std::string> convert_args(const std::string& out) {
    return {"convert", dir_->file("model"), "--to", "hf", "--dtype", "f32", "--force", "-o", out};
  }
  // Writes the "previous output" at `out`: an int8 quantization or an f16 conversion.
  static void write_previous(const std::string& out, bool quantize) {
    std::vector<std::string> args =
        quantize ? std::vector<std::string>{"quantize", dir_->file("model"), "--bits", "8", "--force", "-o", out}
                 : std::vector<std::string>{"convert", dir_->file("model"), "--to", "hf", "--dtype", "f16", "--force",
                                            "-o", out};
    ASSERT_EQ(run_lowbit_child(args).exit_code, 0);
  }

  // After a run that was signalled (or finished first): the destination holds the previous
  // output or the new one, nothing else is left, the input is unchanged.
  void check_outcome(const ChildResult& r, int sig, const std::string& out,
                     const std::map<std::string, std::vector<uint8_t>>& previous,
                     const std::map<std::string, std::vector<uint8_t>>& complete, uint64_t input_hash) {
    EXPECT_TRUE((r.exited && r.exit_code == 0) || (!r.exited && r.signal == sig))
        << "exit " << r.exit_code << " signal " << r.signal;
    const auto now = read_tree(out);
    if (r.exited) EXPECT_TRUE(now == complete) << out << ": finished but is not the new output";
    else EXPECT_TRUE(now == previous || now == complete) << out << ": neither the previous nor the new output";
    EXPECT_EQ(stray_temporaries(dir_->path()), std::vector<std::string>{});
    EXPECT_EQ(testing::hash_tree(dir_->file("model")), input_hash);
  }

  static testing::TempDir* dir_;
};
testing::TempDir* Interrupt::dir_ = nullptr;

TEST_F(Interrupt, QuantizeAtSeveralDelaysLeavesPreviousOrNewOutput) {
  const std::string out = dir_->file("q");
  const auto complete = read_tree(dir_->file("reference"));
  const uint64_t input_hash = testing::hash_tree(dir_->file("model"));
  int interrupted = 0;
  for (int sig : {SIGINT, SIGTERM}) {
    for (int delay_ms : {30, 200, 600}) {
      SCOPED_TRACE(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + " after " + std::to_string(delay_ms) + " ms");
      write_previous(out, /*quantize=*/true);
      const auto previous = read_tree(out);
      const pid_t pid = testing::start_lowbit(new_args(out));
      testing::sleep_ms(delay_ms);
      ::kill(pid, sig);
      const ChildResult r = testing::wait_lowbit(pid);
      interrupted += !r.exited;
      check_outcome(r, sig, out, previous, complete, input_hash);
    }
  }
  // Not an assertion on timing: just make sure the test exercised interruptions at all.
  RecordProperty("interrupted_runs", interrupted);
  EXPECT_GT(interrupted, 0) << "every run finished before its signal; the model is too small to test interruption";
}

TEST_F(Interrupt, ConvertAtSeveralDelaysLeavesPreviousOrNewOutput) {
  const std::string out = dir_->file("hf");
  const auto complete = read_tree(dir_->file("reference_hf"));
  const uint64_t input_hash = testing::hash_tree(dir_->file("model"));
  for (int sig : {SIGINT, SIGTERM}) {
    for (int delay_ms : {20, 150}) {
      SCOPED_TRACE(std::string(sig == SIGINT ? "SIGINT" : "SIGTERM") + " after " + std::to_string(delay_ms) + " ms");
      write_previous(out, /*quantize=*/false);
      const auto previous = read_tree(out);
      const pid_t pid = testing::start_lowbit(convert_args(out));
      testing::sleep_ms(delay_ms);
      ::kill(pid, sig);
      check_outcome(testing::wait_lowbit(pid), sig, out, previous, complete, input_hash);
    }
  }
}

// Waits (at most 60 s) until the child has created the hook's marker file.
bool wait_for_marker(const std::string& marker) {
  for (int i = 0; i < 6000; ++i) {
    if (fs::exists(marker)) return true;
    testing::sleep_ms(10);
  }
  return false;
}

TEST_F(Interrupt, JustBeforeTheFinalRenameKeepsThePreviousOutput) {
  const uint64_t input_hash = testing::hash_tree(dir_->file("model"));
  for (bool quantize : {true, false}) {
    SCOPED_TRACE(quantize ? "quantize" : "convert");
    const std::string out = dir_->file(quantize ? "held_q" : "held_hf");
    const std::string marker = dir_->file("marker");
    write_previous(out, quantize);
    const auto previous = read_tree(out);
    ChildOptions o;
    o.env["LOWBIT_TEST_HOLD_BEFORE_COMMIT"] = marker;
    o.stderr_path = dir_->file("held_err");
    const pid_t pid = testing::start_lowbit(quantize ? new_args(out) : convert_args(out), o);
    ASSERT_TRUE(wait_for_marker(marker));
    ::kill(pid, quantize ? SIGINT : SIGTERM);
    const ChildResult r = testing::wait_lowbit(pid);
    fs::remove(marker);
    EXPECT_FALSE(r.exited);
    EXPECT_EQ(r.signal, quantize ? SIGINT : SIGTERM);
    EXPECT_TRUE(read_tree(out) == previous);
    EXPECT_NE(read_text(dir_->file("held_err")).find("interrupted; partial output removed"), std::string::npos);
    EXPECT_EQ(stray_temporaries(dir_->path()), std::vector<std::string>{});
    EXPECT_EQ(testing::hash_tree(dir_->file("model")), input_hash);
  }
}

TEST_F(Interrupt, HeldRunThatGoesOnPublishesTheNewOutput) {
  const std::string out = dir_->file("released_q"), marker = dir_->file("marker2");
  write_previous(out, /*quantize=*/true);
  ChildOptions o;
  o.env["LOWBIT_TEST_HOLD_BEFORE_COMMIT"] = marker;
  const pid_t pid = testing::start_lowbit(new_args(out), o);
  ASSERT_TRUE(wait_for_marker(marker));
  fs::remove(marker);
  const ChildResult r = testing::wait_lowbit(pid);
  EXPECT_TRUE(r.exited && r.exit_code == 0);
  EXPECT_TRUE(read_tree(out) == read_tree(dir_->file("reference")));
  EXPECT_EQ(stray_temporaries(dir_->path()), std::vector<std::string>{});
}

}  // namespace
}  // namespace lowbit

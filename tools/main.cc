// lowbit: quantize large language models, measure what it cost, run them fast on a CPU.
// One thin CLI over the libraries; each subcommand lives in its own cmd_*.cc.
#include <CLI/CLI.hpp>

#include "runtime_environment.h"
#include "commands.h"
#include "io/interrupt_cleanup.h"

int main(int argc, char** argv) {
  lowbit::cli::tune_runtime_environment(argv);
  // Ctrl-C / SIGTERM / early exit: remove partial outputs, keep the previous ones (issue #8).
  lowbit::install_interrupt_cleanup();
  CLI::App app{
      "lowbit — make LLMs small and fast by quantization, and measure the cost.\n"
      "Models: llama2.c .bin (+ tokenizer.bin beside it), Hugging Face directories (config.json +\n"
      "model.safetensors or shards, tokenizer.json), GGUF v3 files."};
  app.footer(
      "Examples:\n"
      "  lowbit inspect ../shared/models/stories260K\n"
      "  lowbit eval ../shared/models/stories260K --tokens eval_tokens.bin --window 256\n"
      "  lowbit run ../shared/models/stories260K --prompt \"Once upon a time\" --steps 64\n"
      "Exit status: 0 ok, 2 bad flag or argument, 3 file i/o error, 4 malformed input file,\n"
      "5 unsupported input, 6 resource limit, 70 internal error. Run 'lowbit COMMAND --help' for more.");
  app.require_subcommand(1);
  lowbit::cli::add_demo_command(app);
  lowbit::cli::add_inspect_command(app);
  lowbit::cli::add_eval_command(app);
  lowbit::cli::add_run_command(app);
  lowbit::cli::add_quantize_command(app);
  lowbit::cli::add_bench_command(app);
  lowbit::cli::add_synth_command(app);
  lowbit::cli::add_report_command(app);
  lowbit::cli::add_sensitivity_command(app);
  lowbit::cli::add_train_command(app);
  lowbit::cli::add_qat_command(app);
  lowbit::cli::add_tokenizer_commands(app);
  lowbit::cli::add_convert_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;  // usage error, same status as an invalid argument
  }
  return 0;
}

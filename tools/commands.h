// Subcommand registration: each adds itself to the app with its options and callback.
#pragma once

#include <CLI/CLI.hpp>

namespace lowbit::cli {

void add_demo_command(CLI::App& app);
void add_inspect_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_run_command(CLI::App& app);
void add_convert_command(CLI::App& app);
void add_quantize_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_synth_command(CLI::App& app);
void add_report_command(CLI::App& app);
void add_sensitivity_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_qat_command(CLI::App& app);
void add_tokenizer_commands(CLI::App& app);  // tokenizer train, tokenize

}  // namespace lowbit::cli

// lowbit train --tokens FILE -o model.bin: train a small Llama from random initialisation on a
// raw int32 token file (cross-entropy, AdamW, warm-up + cosine), with held-out perplexity, a
// progress line, resumable state, and a llama2.c checkpoint (+ tokenizer beside it) at the end.
#include <filesystem>

#include "cli_common.h"
#include "commands.h"
#include "eval/token_data.h"
#include "io/atomic_file.h"
#include "model/tokenizer_io.h"
#include "train/lm_data.h"
#include "train/train_graph.h"
#include "train/trainer.h"

namespace lowbit::cli {

namespace {

namespace fs = std::filesystem;

struct TrainCliOptions {
  std::string tokens, eval_tokens, tokenizer, output;
  int vocab = 0, dim = 64, layers = 4, heads = 8, kv_heads = 0, hidden = 0, seq = 256, context = 0;
  bool untied = false;
  int64_t steps = 2000;
  int batch = 16;
  double lr = 2e-3, min_lr_ratio = 0.1, weight_decay = 0.1, clip = 1.0;
  int64_t warmup = -1;
  uint64_t seed = 1;
  int64_t eval_every = 0, save_every = 0;
  int eval_windows = 32;
  bool resume = false, force = false;
  int threads = 0;
};

// Llama's feed-forward size: 2/3 of 4·dim, rounded up to a multiple of 32.
int default_hidden(int dim) { return (8 * dim / 3 + 31) / 32 * 32; }

void run_train(const TrainCliOptions& o) {
  set_threads(o.threads);
  if (o.output.empty()) fail(error(ErrorCode::kInvalidArgument, "train needs -o OUT.bin"));
  if (fs::exists(o.output) && !o.force && !o.resume)
    fail(error(ErrorCode::kInvalidArgument, "{}: output exists; use --force to replace it", o.output));
  std::shared_ptr<const Tokenizer> tokenizer;
  int vocab = o.vocab;
  if (!o.tokenizer.empty()) {
    // llama2.c tokenizer.bin: the vocabulary size is whatever the file holds.
    auto probe = load_llama2c_tokenizer(o.tokenizer, o.vocab > 0 ? o.vocab : -1);
    if (!probe.ok()) fail(probe.status());
    tokenizer = std::move(probe).value();
    vocab = tokenizer->vocab_size();
  }
  if (vocab <= 0) fail(error(ErrorCode::kInvalidArgument, "train needs --tokenizer FILE or --vocab N"));

  ModelConfig c;
  c.dim = o.dim;
  c.n_layers = o.layers;
  c.n_heads = o.heads;
  c.n_kv_heads = o.kv_heads > 0 ? o.kv_heads : o.heads;
  c.head_dim = o.heads > 0 ? o.dim / o.heads : 0;
  c.hidden_dim = o.hidden > 0 ? o.hidden : default_hidden(o.dim);
  c.vocab_size = vocab;
  c.max_seq_len = o.context > 0 ? o.context : o.seq;
  c.tied_embeddings = !o.untied;
  c.rope_style = RopeStyle::kInterleaved;
  if (tokenizer) {
    if (tokenizer->bos_id() >= 0) c.bos_id = tokenizer->bos_id();
    if (tokenizer->eos_id() >= 0) c.eos_id = tokenizer->eos_id();
  }
  if (o.heads <= 0 || o.dim % o.heads != 0)
    fail(error(ErrorCode::kInvalidArgument, "--dim {} must be a multiple of --heads {}", o.dim, o.heads));
  if (c.n_heads % c.n_kv_heads != 0)
    fail(error(ErrorCode::kInvalidArgument, "--heads {} must be a multiple of --kv-heads {}", c.n_heads, c.n_kv_heads));
  if (o.seq < 2 || o.seq > c.max_seq_len)
    fail(error(ErrorCode::kInvalidArgument, "--seq {}: need 2 <= seq <= context {}", o.seq, c.max_seq_len));
  if (o.batch <= 0 || o.steps <= 0 || !(o.lr > 0))
    fail(error(ErrorCode::kInvalidArgument, "--batch, --steps and --lr must be positive"));
  const train::ParamLayout layout = unwrap(train::make_param_layout(c));

  const std::vector<int32_t> stream = unwrap(read_token_file(o.tokens, vocab));
  if (stream.size() <= size_t(o.seq))
    fail(error(ErrorCode::kInvalidArgument, "{}: {} tokens, need more than --seq {}", o.tokens, stream.size(), o.seq));
  std::vector<int32_t> eval_stream;
  if (!o.eval_tokens.empty()) {
    eval_stream = unwrap(read_token_file(o.eval_tokens, vocab));
    if (eval_stream.size() < size_t(o.seq))
      fail(error(ErrorCode::kInvalidArgument, "{}: {} tokens, fewer than one --seq {} window", o.eval_tokens,
                 eval_stream.size(), o.seq));
  }

  const std::string state_path = o.output + ".state";
  const uint64_t fingerprint =
      train::run_fingerprint(layout, fmt::format("train seed {} tokens {} batch {} seq {}", o.seed, stream.size(), o.batch, o.seq));
  train::TrainState state;
  if (o.resume && fs::exists(state_path)) {
    state = unwrap(train::load_train_state(state_path, fingerprint, layout.total));
    std::printf("resuming from %s at step %lld\n", state_path.c_str(), (long long)state.step);
  } else {
    state.params = train::random_init_params(layout, o.seed);
  }
  std::printf("model: dim %d, hidden %d, %d layers, %d heads (%d kv), head_dim %d, vocab %d, context %d, %s head: %s parameters\n",
              c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size, c.max_seq_len,
              c.tied_embeddings ? "tied" : "untied", with_commas(c.parameter_count()).c_str());
  std::printf("data: %s tokens from %s; %lld steps × %d × %d tokens = %.2f epochs\n", with_commas(int64_t(stream.size())).c_str(),
              o.tokens.c_str(), (long long)o.steps, o.batch, o.seq,
              double(o.steps) * o.batch * o.seq / double(stream.size()));

  train::TrainGraph<float> graph(layout, o.batch, o.seq);
  std::vector<int32_t> tokens(size_t(o.batch) * o.seq), targets(tokens.size());
  auto loss_and_grad = [&](int64_t step, const std::vector<float>& params, std::vector<float>& grads) {
    train::sample_lm_batch(stream, o.batch, o.seq, train::step_seed(o.seed, step), tokens.data(), targets.data());
    graph.forward(params.data(), tokens.data());
    const double loss = graph.cross_entropy(targets.data());
    graph.backward(params.data(), grads.data());
    return loss;
  };
  train::EvalFn eval;
  if (!eval_stream.empty())
    eval = [&](int64_t, const std::vector<float>& params) {
      const auto r = train::held_out_nll(layout, params, eval_stream, o.seq, o.eval_windows);
      return fmt::format("held-out perplexity {:.4f} (mean NLL {:.4f} over {} tokens in {} windows of {})",
                         std::exp(r.mean_nll), r.mean_nll, r.tokens_scored, r.windows, o.seq);
    };

  train::TrainLoopOptions loop;
  loop.steps = o.steps;
  loop.lr.peak = o.lr;
  loop.lr.min_ratio = o.min_lr_ratio;
  loop.lr.warmup = o.warmup >= 0 ? o.warmup : std::min<int64_t>(200, o.steps / 10);
  loop.adamw.weight_decay = o.weight_decay;
  loop.grad_clip = o.clip;
  loop.tokens_per_step = int64_t(o.batch) * o.seq;
  loop.eval_every = o.eval_every;
  loop.save_every = o.save_every > 0 ? o.save_every : std::max<int64_t>(50, o.steps / 10);
  loop.state_path = state_path;
  loop.label = "train";
  const auto r = unwrap(train::run_train_loop(layout, loop, train::weight_decay_mask(layout), fingerprint, state,
                                              loss_and_grad, eval));

  Checkpoint ck = train::checkpoint_from_params(layout, state.params);
  ck.path = o.output;
  check(save_llama2c_checkpoint(o.output, ck, /*version1=*/false));
  if (!o.tokenizer.empty()) {
    const fs::path beside = fs::path(o.output).parent_path() / "tokenizer.bin";
    std::error_code ec;
    if (!fs::exists(beside) || !fs::equivalent(beside, o.tokenizer, ec)) {
      const std::string bytes = unwrap(read_text_file(o.tokenizer));
      check(write_text_file_atomic(beside.string(), bytes));
    }
  }
  std::printf("trained %lld steps in %.1f s (%.0f tokens/s); final training loss %.4f\n",
              (long long)(state.step), r.seconds, r.tokens_per_second, r.final_loss);
  if (!r.last_eval.empty()) std::printf("%s\n", r.last_eval.c_str());
  std::printf("wrote %s (llama2.c)%s; resumable state in %s\n", o.output.c_str(),
              o.tokenizer.empty() ? "" : " and tokenizer.bin beside it", state_path.c_str());
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto o = std::make_shared<TrainCliOptions>();
  auto* cmd = app.add_subcommand("train", "Train a small Llama from random initialisation on a token file");
  cmd->add_option("--tokens", o->tokens, "Training tokens: raw little-endian int32 file")->required();
  cmd->add_option("--eval-tokens", o->eval_tokens, "Held-out tokens (int32) for perplexity during and after training");
  cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin (sets the vocabulary; copied beside the output)");
  cmd->add_option("--vocab", o->vocab, "Vocabulary size when there is no --tokenizer");
  cmd->add_option("-o,--output", o->output, "Output llama2.c checkpoint (.bin)");
  auto* arch = cmd->add_option_group("Architecture");
  arch->add_option("--dim", o->dim, "Model width")->capture_default_str();
  arch->add_option("--layers", o->layers, "Transformer blocks")->capture_default_str();
  arch->add_option("--heads", o->heads, "Attention heads")->capture_default_str();
  arch->add_option("--kv-heads", o->kv_heads, "Key/value heads (default: --heads; fewer = grouped-query attention)");
  arch->add_option("--hidden", o->hidden, "Feed-forward size (default: 8·dim/3 rounded up to 32)");
  arch->add_option("--context", o->context, "Context length stored in the checkpoint (default: --seq)");
  arch->add_flag("--untied", o->untied, "Separate output head (default: shares the token embedding)");
  auto* opt = cmd->add_option_group("Optimization");
  opt->add_option("--seq", o->seq, "Tokens per training sequence")->capture_default_str();
  opt->add_option("--batch", o->batch, "Sequences per step")->capture_default_str();
  opt->add_option("--steps", o->steps, "Optimizer steps")->capture_default_str();
  opt->add_option("--lr", o->lr, "Peak learning rate (AdamW)")->capture_default_str();
  opt->add_option("--min-lr-ratio", o->min_lr_ratio, "Cosine floor as a fraction of --lr")->capture_default_str();
  opt->add_option("--warmup", o->warmup, "Linear warm-up steps (default: min(200, steps/10))");
  opt->add_option("--weight-decay", o->weight_decay, "Decoupled weight decay (not on norms)")->capture_default_str();
  opt->add_option("--clip", o->clip, "Global gradient-norm clip (0 = off)")->capture_default_str();
  opt->add_option("--seed", o->seed, "Seed for initialisation and batch sampling")->capture_default_str();
  cmd->add_option("--eval-every", o->eval_every, "Held-out evaluation every N steps (default: at the end)");
  cmd->add_option("--eval-windows", o->eval_windows, "Held-out windows of --seq tokens (0 = all)")->capture_default_str();
  cmd->add_option("--save-every", o->save_every, "Save resumable state (OUT.state) every N steps (default: steps/10)");
  cmd->add_flag("--resume", o->resume, "Continue from OUT.state when it exists");
  cmd->add_flag("--force", o->force, "Replace an existing output");
  cmd->add_option("--threads", o->threads, "Threads (default: all cores)");
  cmd->footer(
      "Examples:\n"
      "  lowbit train --tokens train.bin --eval-tokens heldout.bin --tokenizer tok.bin \\\n"
      "      --dim 128 --layers 4 --heads 8 --kv-heads 4 --seq 256 --steps 3000 -o model.bin\n"
      "  lowbit train ... --resume            # continue an interrupted run from model.bin.state\n"
      "The model is a Llama (RMSNorm, RoPE, SwiGLU, grouped-query attention), initialised like\n"
      "llama2.c/GPT-2 (N(0, 0.02), residual projections scaled by 1/sqrt(2·layers)); the result loads\n"
      "in every lowbit command and in llama2.c's run.c.\n"
      "On a busy machine set OMP_WAIT_POLICY=passive: threads that spin between the many small\n"
      "parallel steps of a training step otherwise steal the cores from the working ones.");
  cmd->callback([o] { run_train(*o); });
}

}  // namespace lowbit::cli

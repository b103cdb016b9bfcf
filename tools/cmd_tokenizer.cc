// lowbit tokenizer train --text FILE --vocab N -o tokenizer.bin: learns a small SentencePiece-style
// BPE vocabulary (model/tokenizer_train.h) and writes it as a llama2.c tokenizer.bin.
// lowbit tokenize --tokenizer tokenizer.bin --text FILE -o tokens.bin: the raw int32 token file
// that eval, quantize --calib and train read (eval/token_data.h).
//
// Documents: both commands cut the text at blank lines ("\n\n"); each paragraph is one document.
// Training learns from every paragraph with the encoder's dummy-prefix space; tokenize writes each
// paragraph as BOS + its tokens (the stories260K token-file convention), so a paragraph is the
// unit a model learns to start after BOS.
#include <chrono>

#include "cli_common.h"
#include "commands.h"
#include "eval/token_data.h"
#include "io/atomic_file.h"
#include "io/mapped_file.h"
#include "model/tokenizer_io.h"
#include "model/tokenizer_train.h"

namespace lowbit::cli {

namespace {

constexpr uint64_t kMaxTextBytes = uint64_t(1) << 30;  // training keeps every distinct word in memory

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::unique_ptr<Tokenizer> load_any_tokenizer(const std::string& path) {
  if (path.ends_with(".json")) return unwrap(load_tokenizer_json(path));
  return unwrap(load_llama2c_tokenizer(path, 0));
}

struct TrainOptions {
  std::string text, output;
  int vocab = 512;
};

void run_train(const TrainOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  const std::string text = unwrap(read_text_file(o.text, kMaxTextBytes));
  const std::vector<std::string> paragraphs = split_paragraphs(text);
  if (paragraphs.empty()) fail(error(ErrorCode::kInvalidArgument, "{}: no text to train a tokenizer on", o.text));
  BpeTrainOptions options;
  options.vocab_size = o.vocab;
  if (o.vocab < kMinTrainedVocab || o.vocab > kMaxTrainedVocab)  // before the progress line
    fail(error(ErrorCode::kInvalidArgument, "--vocab {}: vocabulary size must be in [{}, {}]", o.vocab,
               kMinTrainedVocab, kMaxTrainedVocab));
  std::fprintf(stderr, "tokenizer: learning up to %d tokens from %s paragraphs (%s)...\n", o.vocab,
               with_commas(int64_t(paragraphs.size())).c_str(), human_bytes(double(text.size())).c_str());
  BpeTrainResult r = unwrap(train_bpe_tokenizer(paragraphs, options));
  const double train_s = seconds_since(start);
  check(save_llama2c_tokenizer(o.output, r.vocab));
  // Measure through the written file, as every later command will read it.
  auto tokenizer = unwrap(load_llama2c_tokenizer(o.output, int(r.vocab.tokens.size())));
  int64_t tokens = 0, bytes = 0;
  for (const std::string& p : paragraphs) {
    tokens += int64_t(tokenizer->encode(p, false).size());
    bytes += int64_t(p.size());
  }
  std::printf("wrote %s: %d tokens = 3 special + 256 byte + %d merges + %d characters%s\n", o.output.c_str(),
              int(r.vocab.tokens.size()), r.merges, r.base_characters,
              int(r.vocab.tokens.size()) < o.vocab ? " (every word is one token: nothing left to merge)" : "");
  std::printf("text:  %s paragraphs, %s words (%s distinct), %s characters\n", with_commas(r.documents).c_str(),
              with_commas(r.words).c_str(), with_commas(r.distinct_words).c_str(), with_commas(r.characters).c_str());
  std::printf("check: %s tokens without BOS, %.3f bytes per token; trained in %.2f s\n", with_commas(tokens).c_str(),
              double(bytes) / double(std::max<int64_t>(tokens, 1)), train_s);
}

struct TokenizeOptions {
  std::string tokenizer, text, output;
};

void run_tokenize(const TokenizeOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  auto tokenizer = load_any_tokenizer(o.tokenizer);
  if (tokenizer->bos_id() < 0)
    fail(error(ErrorCode::kUnsupported, "{}: the vocabulary has no BOS token to start paragraphs with", o.tokenizer));
  const std::vector<int32_t> tokens = unwrap(tokenize_text_file(o.text, *tokenizer));
  static_assert(std::endian::native == std::endian::little, "token files are little-endian int32");
  check(write_file_atomic(o.output, std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(tokens.data()),
                                                             tokens.size() * sizeof(int32_t))));
  int64_t bos = 0;
  for (int32_t t : tokens) bos += t == tokenizer->bos_id();
  const uint64_t text_bytes = unwrap(read_text_file(o.text, kMaxTextBytes)).size();
  std::printf("wrote %s: %s tokens (%s paragraphs, each BOS + tokens), int32 little-endian, %s\n", o.output.c_str(),
              with_commas(int64_t(tokens.size())).c_str(), with_commas(bos).c_str(),
              human_bytes(4.0 * double(tokens.size())).c_str());
  std::printf("%.3f text bytes per token (BOS included), %d-token vocabulary, %.2f s\n",
              double(text_bytes) / double(tokens.size()), tokenizer->vocab_size(), seconds_since(start));
}

}  // namespace

void add_tokenizer_commands(CLI::App& app) {
  auto* group = app.add_subcommand("tokenizer", "Train a small BPE tokenizer (llama2.c tokenizer.bin)");
  group->require_subcommand(1);
  group->footer(
      "Example:\n  lowbit tokenizer train --text train.txt --vocab 1024 -o tokenizer.bin\n"
      "Then: lowbit tokenize --tokenizer tokenizer.bin --text train.txt -o train_tokens.bin");
  auto t = std::make_shared<TrainOptions>();
  auto* train = group->add_subcommand("train", "Learn a SentencePiece-style BPE vocabulary from a text file");
  train->add_option("--text", t->text, "UTF-8 text; blank lines separate paragraphs")->required();
  train->add_option("--vocab", t->vocab, "Vocabulary size, at least 260")->capture_default_str();
  train->add_option("-o,--output", t->output, "tokenizer.bin to write (llama2.c format)")->required();
  train->footer(
      "Example:\n"
      "  lowbit tokenizer train --text train.txt --vocab 512 -o tokenizer.bin\n"
      "Layout (Llama 2's): 0 <unk>, 1 <s>, 2 </s>, 3..258 bytes <0x00>..<0xFF>, then merges in the\n"
      "order learned (score -rank), then the text's characters. Spaces are spelled \"▁\" and every\n"
      "paragraph gets a leading space, as SentencePiece does; words never merge across a space, a\n"
      "newline or a change between letters, digits and punctuation. Deterministic.");
  train->callback([t] { run_train(*t); });

  auto k = std::make_shared<TokenizeOptions>();
  auto* tok = app.add_subcommand("tokenize", "Tokenize a text file into a raw int32 token file");
  tok->add_option("--tokenizer", k->tokenizer, "tokenizer.bin (llama2.c) or tokenizer.json")->required();
  tok->add_option("--text", k->text, "UTF-8 text; blank lines separate paragraphs")->required();
  tok->add_option("-o,--output", k->output, "Token file to write (int32 little-endian)")->required();
  tok->footer(
      "Example:\n"
      "  lowbit tokenize --tokenizer models/kjv/tokenizer.bin --text heldout.txt -o heldout_tokens.bin\n"
      "Each blank-line-separated paragraph becomes BOS + its tokens (no EOS), the convention of the\n"
      "stories260K token files and of 'lowbit eval --text'.");
  tok->callback([k] { run_tokenize(*k); });
}

}  // namespace lowbit::cli

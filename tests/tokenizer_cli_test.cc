// lowbit tokenizer train / lowbit tokenize through the binary: the files they write load and
// agree with the libraries, the same input gives the same bytes, and bad input fails with one
// line and the documented exit status.
#include <gtest/gtest.h>

#include "cli_runner.h"
#include "eval/token_data.h"
#include "model/tokenizer_io.h"

namespace lowbit {
namespace {

using testing::run_lowbit;
using testing::TempDir;

std::string sample_text() {
  std::string text;
  const char* verses[] = {"In the beginning God created the heaven and the earth.",
                          "And the earth was without form, and void; and darkness was upon the face of the deep.",
                          "And God said, Let there be light: and there was light.",
                          "And God saw the light, that it was good: and God divided the light from the darkness."};
  for (int chapter = 0; chapter < 12; ++chapter) {
    if (chapter > 0) text += "\n\n";
    for (int v = 0; v < 4; ++v) text += std::string(v ? "\n" : "") + verses[(chapter + v) % 4];
  }
  return text + "\n";
}

TEST(TokenizerCli, TrainThenTokenize) {
  TempDir dir;
  testing::write_text(dir.file("text.txt"), sample_text());
  auto r = run_lowbit("tokenizer train --text " + dir.file("text.txt") + " --vocab 300 -o " + dir.file("tok.bin"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("300 tokens"), std::string::npos) << r.out;
  auto tok = load_llama2c_tokenizer(dir.file("tok.bin"), 300);
  ASSERT_TRUE(tok.ok()) << tok.status().message();

  r = run_lowbit("tokenize --tokenizer " + dir.file("tok.bin") + " --text " + dir.file("text.txt") + " -o " +
                 dir.file("tokens.bin"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto tokens = read_token_file(dir.file("tokens.bin"), 300);
  ASSERT_TRUE(tokens.ok()) << tokens.status().message();
  auto expected = tokenize_text_file(dir.file("text.txt"), **tok);
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(*tokens, *expected);
  EXPECT_EQ(std::count(tokens->begin(), tokens->end(), (*tok)->bos_id()), 12);  // one BOS per paragraph
  // Decoding gives the paragraphs back, joined without their blank lines.
  std::string joined, text = sample_text();
  for (size_t p = 0, e; p < text.size(); p = e + 2) {
    e = std::min(text.find("\n\n", p), text.size());
    std::string para = text.substr(p, e - p);
    while (!para.empty() && para.back() == '\n') para.pop_back();
    joined += para;
  }
  EXPECT_EQ((*tok)->decode(std::vector<int>(tokens->begin(), tokens->end())), joined);

  // Same text, same bytes.
  r = run_lowbit("tokenizer train --text " + dir.file("text.txt") + " --vocab 300 -o " + dir.file("again.bin"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(testing::read_bytes(dir.file("tok.bin")), testing::read_bytes(dir.file("again.bin")));
}

TEST(TokenizerCli, BadInputFailsWithOneLine) {
  TempDir dir;
  testing::write_text(dir.file("text.txt"), sample_text());
  testing::write_text(dir.file("blank.txt"), "\n\n\n");
  testing::write_text(dir.file("junk.bin"), std::string("\x05\x00\x00\x00\x00\x00", 6));  // truncated token
  struct Case {
    std::string args;
    int exit_code;
    const char* says;
  } cases[] = {
      {"tokenizer train --text " + dir.file("text.txt") + " --vocab 100 -o " + dir.file("t.bin"), 2, "vocabulary size"},
      {"tokenizer train --text " + dir.file("blank.txt") + " -o " + dir.file("t.bin"), 2, "no text"},
      {"tokenizer train --text " + dir.file("missing.txt") + " -o " + dir.file("t.bin"), 3, "missing.txt"},
      {"tokenize --tokenizer " + dir.file("junk.bin") + " --text " + dir.file("text.txt") + " -o " + dir.file("x.bin"),
       4, "junk.bin"},
  };
  for (const Case& c : cases) {
    auto r = run_lowbit(c.args);
    EXPECT_EQ(r.exit_code, c.exit_code) << c.args << "\n" << r.err;
    EXPECT_EQ(r.err_lines(), 1) << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
  }
}

}  // namespace
}  // namespace lowbit

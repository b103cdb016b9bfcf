// Chooses a loader by looking at the path (see checkpoint.h).
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "io/mapped_file.h"
#include "model/checkpoint.h"

namespace lowbit {

namespace {

// True when the file's first bytes are a llama2.c header whose implied size is the file's size.
bool looks_like_llama2c(const std::string& path) {
  auto file = MappedFile::open(path);
  if (!file.ok() || (*file)->size() < 28) return false;
  int32_t h[7];
  std::memcpy(h, (*file)->data(), sizeof(h));
  size_t offset = 28;
  if (uint32_t(h[0]) == 0x616b3432) {  // version 1: magic, version, 7 ints at offset 8
    if ((*file)->size() < 256) return false;
    std::memcpy(h, (*file)->data() + 8, sizeof(h));
    offset = 256;
  }
  if (h[5] == INT32_MIN) return false;  // -h[5] would overflow
  ModelConfig c;
  c.dim = h[0], c.hidden_dim = h[1], c.n_layers = h[2], c.n_heads = h[3], c.n_kv_heads = h[4];
  c.vocab_size = h[5] < 0 ? -h[5] : h[5], c.max_seq_len = h[6];
  c.tied_embeddings = h[5] > 0;
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  if (!c.validate(path).ok()) return false;
  const uint64_t legacy = offset + 4 * (uint64_t(c.parameter_count()) + uint64_t(c.max_seq_len) * c.head_dim);
  const uint64_t v1 = offset + 4 * uint64_t(c.parameter_count());
  return (*file)->size() == legacy || (*file)->size() == v1;
}

}  // namespace

Result<Checkpoint> load_checkpoint(const std::string& path, const std::string& tokenizer_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return error(ErrorCode::kIo, "{}: no such file or directory", path);
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "config.json")) return load_hf_checkpoint(path);
    // A llama2.c directory: exactly one .bin whose header describes its own size (token files
    // and tokenizers beside it do not), or exactly one .gguf.
    std::vector<std::string> models, ggufs;
    for (auto& e : fs::directory_iterator(path, ec)) {
      if (e.path().extension() == ".gguf") ggufs.push_back(e.path().string());
      else if (e.path().extension() == ".bin" && looks_like_llama2c(e.path().string())) models.push_back(e.path().string());
    }
    if (ggufs.size() == 1 && models.empty()) return load_gguf_checkpoint(ggufs[0]);
    if (models.size() == 1 && ggufs.empty()) return load_llama2c_checkpoint(models[0], tokenizer_path);
    return error(ErrorCode::kInvalidArgument,
                 "{}: a directory needs config.json (Hugging Face), or exactly one .gguf or one llama2.c .bin", path);
  }
  LOWBIT_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  if (file->size() >= 4 && std::memcmp(file->data(), "GGUF", 4) == 0) return load_gguf_checkpoint(path);
  if (fs::path(path).filename() == "model.safetensors" || fs::path(path).extension() == ".safetensors")
    return load_hf_checkpoint(fs::path(path).parent_path().string());
  return load_llama2c_checkpoint(path, tokenizer_path);
}

}  // namespace lowbit

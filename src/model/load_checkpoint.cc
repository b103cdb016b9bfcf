// Chooses a loader by looking at the path (see checkpoint.h).
#include <cstring>
#include <filesystem>

#include "io/mapped_file.h"
#include "model/checkpoint.h"

namespace lowbit {

Result<Checkpoint> load_checkpoint(const std::string& path, const std::string& tokenizer_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return error(ErrorCode::kIo, "{}: no such file or directory", path);
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "config.json")) return load_hf_checkpoint(path);
    // A llama2.c directory: exactly one model .bin beside its tokenizer.
    std::vector<std::string> models, ggufs;
    for (auto& e : fs::directory_iterator(path, ec)) {
      const std::string name = e.path().filename().string();
      if (e.path().extension() == ".gguf") ggufs.push_back(e.path().string());
      else if (e.path().extension() == ".bin" && name.rfind("tok", 0) != 0) models.push_back(e.path().string());
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

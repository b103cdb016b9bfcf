// llama2.c checkpoints (Karpathy's llama2.c, run.c / export.py).
//
// Legacy layout (no magic):
//   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//     (vocab_size < 0 means a separate classifier `wcls` follows; > 0 means it is shared)
//   float32 token_embedding [vocab, dim]
//   float32 rms_att [L, dim], wq [L, q_dim, dim], wk [L, kv_dim, dim], wv [L, kv_dim, dim],
//           wo [L, dim, q_dim], rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden],
//           w3 [L, hidden, dim], rms_final [dim],
//           freq_cis_real [seq_len, head_dim/2], freq_cis_imag [seq_len, head_dim/2] (ignored:
//           RoPE is recomputed), then wcls [vocab, dim] when not shared.
// Version 1 (export.py --version 1): uint32 magic 0x616b3432 ("ak42"), int32 version = 1, the same
//   7 int32 (vocab_size positive), uint8 shared_classifier, zero padding to a 256-byte header, then
//   float32: rms_att [L, dim], rms_ffn [L, dim], rms_final [dim], token_embedding, wq, wk, wv, wo,
//   w1, w2, w3 (each [L, ...]), then wcls when not shared.
// RoPE is interleaved (RopeStyle::kInterleaved), theta 10000, RMSNorm eps 1e-5, BOS 1, EOS 2.
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "io/atomic_file.h"
#include "io/byte_reader.h"
#include "model/checkpoint.h"
#include "model/float_values.h"
#include "model/rope_permute.h"
#include "model/tokenizer_io.h"

namespace lowbit {

namespace {

constexpr uint32_t kVersion1Magic = 0x616b3432;
constexpr size_t kVersion1HeaderBytes = 256;

struct Header {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

// Where each llama2.c array goes: canonical name pattern per layer, or a single tensor.
struct Section {
  enum Kind { kEmbed, kAttnNorm, kQ, kK, kV, kO, kFfnNorm, kGate, kDown, kUp, kFinalNorm, kFreqs, kHead };
  Kind kind;
};

std::vector<Section::Kind> legacy_order() {
  using S = Section;
  return {S::kEmbed, S::kAttnNorm, S::kQ, S::kK, S::kV, S::kO, S::kFfnNorm,
          S::kGate,  S::kDown,     S::kUp, S::kFinalNorm, S::kFreqs, S::kFreqs};
}
std::vector<Section::Kind> version1_order() {
  using S = Section;
  return {S::kAttnNorm, S::kFfnNorm, S::kFinalNorm, S::kEmbed, S::kQ,
          S::kK,        S::kV,       S::kO,         S::kGate,  S::kDown, S::kUp};
}

// Per-layer suffix and [rows, cols] of one layer's slice (cols 0 = 1-D).
struct SliceShape {
  const char* suffix;
  int64_t rows, cols;
};
SliceShape layer_slice(Section::Kind k, const ModelConfig& c) {
  namespace tn = tensor_names;
  switch (k) {
    case Section::kAttnNorm: return {tn::kAttnNorm, c.dim, 0};
    case Section::kFfnNorm: return {tn::kFfnNorm, c.dim, 0};
    case Section::kQ: return {tn::kQ, c.q_dim(), c.dim};
    case Section::kK: return {tn::kK, c.kv_dim(), c.dim};
    case Section::kV: return {tn::kV, c.kv_dim(), c.dim};
    case Section::kO: return {tn::kO, c.dim, c.q_dim()};
    case Section::kGate: return {tn::kGate, c.hidden_dim, c.dim};
    case Section::kDown: return {tn::kDown, c.dim, c.hidden_dim};
    case Section::kUp: return {tn::kUp, c.hidden_dim, c.dim};
    default: return {nullptr, 0, 0};
  }
}

bool is_per_layer(Section::Kind k) { return layer_slice(k, ModelConfig{}).suffix != nullptr; }

Status read_sections(ByteReader& r, const std::vector<Section::Kind>& order, bool shared_head, Checkpoint& ck) {
  const ModelConfig& c = ck.config;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) -> Status {
    uint64_t n = 1;
    for (auto d : shape) n *= uint64_t(d);
    LOWBIT_ASSIGN_OR_RETURN(auto bytes, r.take(n * 4));
    return ck.tensors.add(RawTensor{name, DType::kF32, std::move(shape), bytes});
  };
  std::vector<Section::Kind> all = order;
  if (!shared_head) all.push_back(Section::kHead);
  for (Section::Kind k : all) {
    if (is_per_layer(k)) {
      SliceShape s = layer_slice(k, c);
      for (int l = 0; l < c.n_layers; ++l) {
        std::vector<int64_t> shape = s.cols ? std::vector<int64_t>{s.rows, s.cols} : std::vector<int64_t>{s.rows};
        LOWBIT_RETURN_IF_ERROR(add(tensor_names::layer(l, s.suffix), shape));
      }
    } else if (k == Section::kEmbed) {
      LOWBIT_RETURN_IF_ERROR(add(tensor_names::embed(), {c.vocab_size, c.dim}));
    } else if (k == Section::kFinalNorm) {
      LOWBIT_RETURN_IF_ERROR(add(tensor_names::final_norm(), {c.dim}));
    } else if (k == Section::kHead) {
      LOWBIT_RETURN_IF_ERROR(add(tensor_names::lm_head(), {c.vocab_size, c.dim}));
    } else if (k == Section::kFreqs) {
      // Precomputed RoPE table, unused; skip it but insist that it is there.
      uint64_t n = uint64_t(c.max_seq_len) * uint64_t(c.head_dim / 2) * 4;
      LOWBIT_RETURN_IF_ERROR(r.take(n).status());
    }
  }
  return Status::Ok();
}

std::string find_tokenizer_beside(const std::string& model_path) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(model_path).parent_path();
  if (dir.empty()) dir = ".";
  if (fs::exists(dir / "tokenizer.bin")) return (dir / "tokenizer.bin").string();
  std::error_code ec;
  std::vector<std::string> candidates;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("tok", 0) == 0 && e.path().extension() == ".bin") candidates.push_back(e.path().string());
  }
  return candidates.size() == 1 ? candidates[0] : "";
}

}  // namespace

Result<Checkpoint> load_llama2c_checkpoint(const std::string& path, const std::string& tokenizer_path) {
  LOWBIT_ASSIGN_OR_RETURN(auto file, MappedFile::open(path));
  ByteReader r(file->bytes(), path);
  Checkpoint ck;
  ck.path = path;
  ck.format = "llama2c";
  ck.tensors.add_file(file);

  bool version1 = false;
  if (file->size() >= 4) {
    uint32_t magic;
    std::memcpy(&magic, file->data(), 4);
    version1 = magic == kVersion1Magic;
  }
  Header h{};
  bool shared_head = true;
  if (version1) {
    LOWBIT_RETURN_IF_ERROR(r.read<uint32_t>().status());
    LOWBIT_ASSIGN_OR_RETURN(int32_t version, r.read<int32_t>());
    if (version != 1)
      return error(ErrorCode::kUnsupported, "{}: llama2.c export version {} (only 1 is fp32; 2 is int8 Q8_0)",
                   path, version);
    LOWBIT_ASSIGN_OR_RETURN(h, r.read<Header>());
    LOWBIT_ASSIGN_OR_RETURN(uint8_t shared, r.read<uint8_t>());
    if (shared > 1) return error(ErrorCode::kFormat, "{}: shared_classifier flag is {}, not 0 or 1", path, shared);
    shared_head = shared == 1;
    LOWBIT_RETURN_IF_ERROR(r.seek(kVersion1HeaderBytes));
  } else {
    if (file->size() < sizeof(Header))
      return error(ErrorCode::kFormat, "{}: truncated: {} bytes is shorter than the 28-byte llama2.c header", path,
                   file->size());
    LOWBIT_ASSIGN_OR_RETURN(h, r.read<Header>());
    shared_head = h.vocab_size > 0;
    if (h.vocab_size == std::numeric_limits<int32_t>::min())  // has no positive counterpart
      return error(ErrorCode::kFormat, "{}: invalid vocab_size {}", path, h.vocab_size);
    if (h.vocab_size < 0) h.vocab_size = -h.vocab_size;
  }
  ModelConfig& c = ck.config;
  c.architecture = "llama";
  c.dim = h.dim;
  c.hidden_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.head_dim = h.n_heads > 0 ? h.dim / h.n_heads : 0;
  c.vocab_size = h.vocab_size;
  c.max_seq_len = h.seq_len;
  c.tied_embeddings = shared_head;
  c.rope_style = RopeStyle::kInterleaved;
  c.rope_theta = 10000.0f;
  c.norm_eps = 1e-5f;
  if (h.n_heads > 0 && h.dim % h.n_heads != 0)
    return error(ErrorCode::kFormat, "{}: dim {} is not a multiple of n_heads {}", path, h.dim, h.n_heads);
  LOWBIT_RETURN_IF_ERROR(c.validate(path));

  // Check the declared size against the file before slicing anything.
  uint64_t floats = uint64_t(c.parameter_count());
  if (!version1) floats += uint64_t(c.max_seq_len) * uint64_t(c.head_dim);  // RoPE tables
  // floats * 4 can pass 2^64 for headers at the config limits; compare against the bytes present.
  if (floats > (file->size() - r.offset()) / 4)
    return error(ErrorCode::kFormat, "{}: truncated: the header implies {} floats after byte {} but the file has {} bytes",
                 path, floats, r.offset(), file->size());
  LOWBIT_RETURN_IF_ERROR(read_sections(r, version1 ? version1_order() : legacy_order(), shared_head, ck));
  if (r.remaining() != 0)
    return error(ErrorCode::kFormat, "{}: {} unexpected bytes after the last tensor (header says vocab {}, dim {})",
                 path, r.remaining(), c.vocab_size, c.dim);
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ck));

  std::string tok = tokenizer_path.empty() ? find_tokenizer_beside(path) : tokenizer_path;
  if (!tok.empty()) {
    LOWBIT_ASSIGN_OR_RETURN(auto t, load_llama2c_tokenizer(tok, c.vocab_size));
    ck.tokenizer = std::move(t);
  }
  return ck;
}

Status save_llama2c_checkpoint(const std::string& path, const Checkpoint& ck, bool version1) {
  const ModelConfig& c = ck.config;
  LOWBIT_RETURN_IF_ERROR(require_float_checkpoint(ck, path, "llama2.c"));
  if (c.attention_bias)
    return error(ErrorCode::kUnsupported, "{}: llama2.c checkpoints cannot hold q/k/v biases", path);
  if (c.head_dim * c.n_heads != c.dim)
    return error(ErrorCode::kUnsupported, "{}: llama2.c needs head_dim * n_heads == dim", path);
  LOWBIT_RETURN_IF_ERROR(validate_checkpoint_tensors(ck));
  LOWBIT_ASSIGN_OR_RETURN(auto out, AtomicFile::create(path));

  // Values of one canonical tensor as fp32, with q/k rows in interleaved order.
  auto values = [&](const std::string& name) -> std::vector<float> {
    const RawTensor* t = ck.tensors.find(name);
    std::vector<float> v = float_values(*t);
    bool is_q = name.find(tensor_names::kQ) != std::string::npos;
    bool is_k = name.find(tensor_names::kK) != std::string::npos;
    if (c.rope_style == RopeStyle::kHalf && (is_q || is_k))
      v = permute_rope_rows(v.data(), t->shape[0], t->shape[1], c.head_dim, /*to_half=*/false);
    return v;
  };
  auto write_floats = [&](const std::vector<float>& v) { return out.write(v.data(), v.size() * 4); };

  Header h{c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len};
  if (version1) {
    LOWBIT_RETURN_IF_ERROR(out.write(&kVersion1Magic, 4));
    int32_t version = 1;
    LOWBIT_RETURN_IF_ERROR(out.write(&version, 4));
    LOWBIT_RETURN_IF_ERROR(out.write(&h, sizeof(h)));
    uint8_t shared = c.tied_embeddings ? 1 : 0;
    LOWBIT_RETURN_IF_ERROR(out.write(&shared, 1));
    LOWBIT_RETURN_IF_ERROR(out.write_zeros(kVersion1HeaderBytes - out.bytes_written()));
  } else {
    if (!c.tied_embeddings) h.vocab_size = -h.vocab_size;
    LOWBIT_RETURN_IF_ERROR(out.write(&h, sizeof(h)));
  }
  std::vector<Section::Kind> order = version1 ? version1_order() : legacy_order();
  if (!c.tied_embeddings) order.push_back(Section::kHead);
  bool freqs_done = false;
  for (Section::Kind k : order) {
    if (is_per_layer(k)) {
      for (int l = 0; l < c.n_layers; ++l)
        LOWBIT_RETURN_IF_ERROR(write_floats(values(tensor_names::layer(l, layer_slice(k, c).suffix))));
    } else if (k == Section::kEmbed) {
      LOWBIT_RETURN_IF_ERROR(write_floats(values(tensor_names::embed())));
    } else if (k == Section::kFinalNorm) {
      LOWBIT_RETURN_IF_ERROR(write_floats(values(tensor_names::final_norm())));
    } else if (k == Section::kHead) {
      LOWBIT_RETURN_IF_ERROR(write_floats(values(tensor_names::lm_head())));
    } else if (k == Section::kFreqs) {
      // freq_cis_real then freq_cis_imag, as llama2.c's legacy export writes them.
      const int half = c.head_dim / 2;
      std::vector<float> table(size_t(c.max_seq_len) * half);
      for (int p = 0; p < c.max_seq_len; ++p)
        for (int i = 0; i < half; ++i) {
          double freq = 1.0 / std::pow(double(c.rope_theta), 2.0 * i / c.head_dim);
          double a = p * freq;
          table[size_t(p) * half + i] = float(freqs_done ? std::sin(a) : std::cos(a));
        }
      LOWBIT_RETURN_IF_ERROR(write_floats(table));
      freqs_done = true;
    }
  }
  return out.commit();
}

}  // namespace lowbit

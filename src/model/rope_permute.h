// Row permutation of q/k projection weights between the two RoPE conventions (model/config.h).
//
// Hugging Face's convert_llama_weights_to_hf.py maps Meta/llama2.c (interleaved) rows to HF
// (half) rows with view(n_heads, head_dim/2, 2, in).transpose(1, 2): within each head, HF row
// t*(head_dim/2) + i holds interleaved row 2*i + t. llama.cpp's converter applies the inverse.
#pragma once

#include <cstdint>
#include <vector>

namespace lowbit {

// Index of the interleaved-order row that lands at HF-order row `hf_row`.
inline int64_t rope_half_row_source(int64_t hf_row, int head_dim) {
  const int64_t head = hf_row / head_dim, r = hf_row % head_dim, half = head_dim / 2;
  const int64_t t = r / half, i = r % half;
  return head * head_dim + 2 * i + t;
}

// Reorders rows of a [n_rows, row_len] matrix (n_rows = heads * head_dim) of element type T.
// to_half = true maps interleaved -> half order; false maps half -> interleaved.
template <typename T>
std::vector<T> permute_rope_rows(const T* src, int64_t n_rows, int64_t row_len, int head_dim, bool to_half) {
  std::vector<T> out(size_t(n_rows * row_len));
  for (int64_t r = 0; r < n_rows; ++r) {
    const int64_t s = rope_half_row_source(r, head_dim);
    const int64_t dst_row = to_half ? r : s, src_row = to_half ? s : r;
    for (int64_t c = 0; c < row_len; ++c) out[size_t(dst_row * row_len + c)] = src[src_row * row_len + c];
  }
  return out;
}

}  // namespace lowbit

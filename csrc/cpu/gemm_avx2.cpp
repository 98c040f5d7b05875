// AVX2 packed GEMM: activations unpacked to int16 per tile of rows, weights in the (k/2, o, 2) int16
// layout, vpmaddwd into int32 (exact: codes <= 255), zero points folded in the epilogue (gemm.cpp).
// No torch or STL headers; target pragma after the includes.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"

#pragma GCC target("avx2,fma,bmi2")

namespace qgnn {
namespace cpu {
namespace {

constexpr int kMR = 4;
constexpr int kNB = 2;  // 8-column blocks

int32_t unpack_row(const uint32_t* row, int bits, int64_t k, int64_t kpad, int16_t* dst) {
  const int per_word = 32 / bits;
  const uint32_t mask = (1u << bits) - 1u;
  int32_t sum = 0;
  for (int64_t j = 0; j < k; ++j) {
    const int16_t c = static_cast<int16_t>((row[j / per_word] >> ((j % per_word) * bits)) & mask);
    dst[j] = c;
    sum += c;
  }
  for (int64_t j = k; j < kpad; ++j) dst[j] = 0;
  return sum;
}

template <int MR, int NB>
void micro(const GemmArgs& a, const int16_t* A, int64_t astride, const int32_t* rowsum, float* out, int64_t ldo,
           bool stream, int64_t col0) {
  __m256i acc[MR][NB];
  for (int i = 0; i < MR; ++i)
    for (int b = 0; b < NB; ++b) acc[i][b] = _mm256_setzero_si256();
  const int64_t pairs = a.k_pad / 2;
  const int16_t* wbase = a.w_pairs + col0 * 2;
  const int64_t wstride = a.o_pad * 2;
  for (int64_t p = 0; p < pairs; ++p) {
    __m256i wv[NB];
    for (int b = 0; b < NB; ++b)
      wv[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wbase + p * wstride + b * 16));
    for (int i = 0; i < MR; ++i) {
      const __m256i av = _mm256_set1_epi32(*reinterpret_cast<const int32_t*>(A + i * astride + 2 * p));
      for (int b = 0; b < NB; ++b) acc[i][b] = _mm256_add_epi32(acc[i][b], _mm256_madd_epi16(wv[b], av));
    }
  }
  const __m256i amwm = _mm256_set1_epi32(a.amwm);
  for (int b = 0; b < NB; ++b) {
    const int64_t c0 = col0 + 8 * b;
    const int64_t left = a.o - c0;
    if (left <= 0) break;
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left > 8 ? 8 : left)),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256i coef = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.coef + c0));
    const __m256i colterm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.colterm + c0));
    const __m256 sc = _mm256_loadu_ps(a.sc + c0);
    const __m256 bias = a.bias ? _mm256_loadu_ps(a.bias + c0) : _mm256_setzero_ps();
    for (int i = 0; i < MR; ++i) {
      __m256i d = _mm256_mullo_epi32(acc[i][b], amwm);
      d = _mm256_add_epi32(d, _mm256_add_epi32(_mm256_mullo_epi32(_mm256_set1_epi32(rowsum[i]), coef), colterm));
      __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(d), sc);
      // The reference rounds the product before adding the bias: keep the compiler from fusing them.
      __asm__("" : "+v"(y));
      if (a.bias) y = _mm256_add_ps(y, bias);
      (void)stream;
      _mm256_maskstore_ps(out + i * ldo + c0, m, y);
    }
  }
}

template <int MR>
void micro_cols(const GemmArgs& a, const int16_t* A, int64_t astride, const int32_t* rowsum, float* out, int64_t ldo,
                bool stream) {
  for (int64_t col0 = 0; col0 < a.o_pad; col0 += 8 * kNB) {
    if (a.o_pad - col0 >= 8 * kNB) micro<MR, kNB>(a, A, astride, rowsum, out, ldo, stream, col0);
    else micro<MR, 1>(a, A, astride, rowsum, out, ldo, stream, col0);
  }
}

inline __m256i v_mask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }

#include "quantize_avx2.inc"

}  // namespace

void gemm_rows_avx2(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch) {
  const int64_t astride = a.k_pad + 16;
  int32_t* rowsum = static_cast<int32_t*>(scratch);
  int16_t* A = reinterpret_cast<int16_t*>(rowsum + 64);
  for (int64_t r = r0; r < r1; ++r)
    rowsum[r - r0] = unpack_row(a.a + r * a.a_words, a.a_bits, a.k, a.k_pad, A + (r - r0) * astride);
  // Float rows go straight to the output; re-quantised rows go through a float tile first.
  float* tile = reinterpret_cast<float*>(static_cast<char*>(scratch) + gemm_tile_offset(a));
  uint8_t* codes = reinterpret_cast<uint8_t*>(tile + kGemmTileRows * a.o_pad);
  const bool stream = !a.requant;
  float* o = a.requant ? tile : a.out + r0 * a.o;
  const int64_t ldo = a.o;
  for (int64_t r = r0; r < r1; r += kMR) {
    const int64_t t = r - r0;
    switch (r1 - r >= kMR ? kMR : r1 - r) {
      case 1: micro_cols<1>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
      case 2: micro_cols<2>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
      case 3: micro_cols<3>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
      default: micro_cols<4>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
    }
  }
  if (a.requant)
    for (int64_t r = r0; r < r1; ++r) {
      if (a.chain) apply_chain_scalar(*a.chain, tile + (r - r0) * a.o, a.o, r);
      quantize_row(tile + (r - r0) * a.o, a.o, a.out_grid, a.out_packed + r * a.out_words, a.out_words, codes);
    }
}

}  // namespace cpu
}  // namespace qgnn

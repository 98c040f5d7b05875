// AVX2 packed GEMM. Weights of at most 4 bits: activations unpacked to bytes per tile of rows,
// weights in the VNNI (k/4, o, 4) byte layout, vpmaddubsw (u8 x s8: the codes <= 15 are the signed
// operand) summed in int16 lanes for as many steps as cannot overflow, then widened with vpmaddwd.
// 8-bit weights: activations unpacked to int16, weights in the (k/2, o, 2) int16 layout, vpmaddwd
// into int32. Both exact; zero points folded in the epilogue (gemm.cpp).
// No torch or STL headers; target pragma after the includes.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels.h"

#pragma GCC target("avx2,fma,bmi2")

namespace qgnn {
namespace cpu {
namespace {

constexpr int kMR = 4;
constexpr int kNB = 2;  // 8-column blocks

inline __m256i v_mask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }

#include "quantize_avx2.inc"

// 16 packed bytes -> their 128 / bits codes as bytes, in order (fields interleave within a byte).
inline void unpack16(__m128i x, int bits, uint8_t* dst) {
  __m128i* d = reinterpret_cast<__m128i*>(dst);
  if (bits == 8) {
    _mm_storeu_si128(d, x);
  } else if (bits == 4) {
    const __m128i m = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(x, m), hi = _mm_and_si128(_mm_srli_epi16(x, 4), m);
    _mm_storeu_si128(d, _mm_unpacklo_epi8(lo, hi));
    _mm_storeu_si128(d + 1, _mm_unpackhi_epi8(lo, hi));
  } else {  // 2 bits: field t of byte b is code 4b + t
    const __m128i m = _mm_set1_epi8(3);
    const __m128i f0 = _mm_and_si128(x, m), f1 = _mm_and_si128(_mm_srli_epi16(x, 2), m);
    const __m128i f2 = _mm_and_si128(_mm_srli_epi16(x, 4), m), f3 = _mm_and_si128(_mm_srli_epi16(x, 6), m);
    const __m128i lo01 = _mm_unpacklo_epi8(f0, f1), hi01 = _mm_unpackhi_epi8(f0, f1);
    const __m128i lo23 = _mm_unpacklo_epi8(f2, f3), hi23 = _mm_unpackhi_epi8(f2, f3);
    _mm_storeu_si128(d, _mm_unpacklo_epi16(lo01, lo23));
    _mm_storeu_si128(d + 1, _mm_unpackhi_epi16(lo01, lo23));
    _mm_storeu_si128(d + 2, _mm_unpacklo_epi16(hi01, hi23));
    _mm_storeu_si128(d + 3, _mm_unpackhi_epi16(hi01, hi23));
  }
}

// Codes of one packed row (bits 2, 4 or 8) as bytes, zero from k to kpad + 32; returns their sum.
// Writes up to k + 128 bytes: the tile's row stride (kU8Slack) leaves room for it.
constexpr int64_t kU8Slack = 128;
int32_t unpack_row_u8(const uint32_t* row, int bits, int64_t words, int64_t k, int64_t kpad, uint8_t* dst) {
  const uint8_t* src = reinterpret_cast<const uint8_t*>(row);
  const int64_t bytes = words * 4;
  int64_t b = 0;
  for (; b + 16 <= bytes; b += 16) unpack16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + b)), bits, dst + b * 8 / bits);
  if (b < bytes) {  // the row's last bytes, never read past its end
    alignas(16) uint8_t tail[16] = {0};
    std::memcpy(tail, src + b, static_cast<size_t>(bytes - b));
    unpack16(_mm_load_si128(reinterpret_cast<const __m128i*>(tail)), bits, dst + b * 8 / bits);
  }
  std::memset(dst + k, 0, static_cast<size_t>(kpad + 32 - k));  // padding fields may hold anything
  __m256i s = _mm256_setzero_si256();
  for (int64_t j = 0; j < kpad; j += 32)
    s = _mm256_add_epi64(s, _mm256_sad_epu8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(dst + j)),
                                            _mm256_setzero_si256()));
  alignas(32) int64_t part[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(part), s);
  return static_cast<int32_t>(part[0] + part[1] + part[2] + part[3]);
}

// The same codes as int16, zero from k to kpad + 16; returns their sum. 16 packed bytes at a time:
// the scalar loop this replaced divided by a run-time width per code, most of an 8-bit GEMM's time.
// Writes up to k + 128 values: the tile's row stride (kU8Slack) leaves room for it.
int32_t unpack_row_i16(const uint32_t* row, int bits, int64_t words, int64_t k, int64_t kpad, int16_t* dst) {
  const uint8_t* src = reinterpret_cast<const uint8_t*>(row);
  const int64_t bytes = words * 4, per_chunk = 128 / bits;
  alignas(16) uint8_t codes[64];
  for (int64_t b = 0; b < bytes; b += 16) {
    alignas(16) uint8_t tail[16] = {0};
    if (b + 16 > bytes) std::memcpy(tail, src + b, static_cast<size_t>(bytes - b));  // never read past the row
    unpack16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b + 16 > bytes ? tail : src + b)), bits, codes);
    int16_t* d = dst + b * 8 / bits;
    for (int64_t t = 0; t < per_chunk; t += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + t),
                          _mm256_cvtepu8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(codes + t))));
  }
  std::memset(dst + k, 0, sizeof(int16_t) * static_cast<size_t>(kpad + 16 - k));  // padding fields may hold anything
  __m256i s = _mm256_setzero_si256();
  for (int64_t j = 0; j < kpad; j += 16)
    s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(dst + j)),
                                              _mm256_set1_epi16(1)));
  alignas(32) int32_t part[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(part), s);
  return part[0] + part[1] + part[2] + part[3] + part[4] + part[5] + part[6] + part[7];
}

// Zero points, scales and bias on the int32 dot products of MR rows x NB 8-column blocks.
template <int MR, int NB>
inline void epilogue(const GemmArgs& a, const __m256i (&acc)[MR][NB], const int32_t* rowsum, float* out, int64_t ldo,
                     int64_t col0) {
  const __m256i amwm = _mm256_set1_epi32(a.amwm);
  for (int b = 0; b < NB; ++b) {
    const int64_t c0 = col0 + 8 * b;
    const int64_t left = a.o - c0;
    if (left <= 0) break;
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
      store8(out + i * ldo + c0, y, left);
    }
  }
}

template <int MR, int NB>
void micro_i16(const GemmArgs& a, const int16_t* A, int64_t astride, const int32_t* rowsum, float* out, int64_t ldo,
               int64_t col0) {
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
  epilogue<MR, NB>(a, acc, rowsum, out, ldo, col0);
}

template <int MR, int NB>
void micro_u8(const GemmArgs& a, const uint8_t* A, int64_t astride, const int32_t* rowsum, float* out, int64_t ldo,
              int64_t col0, int64_t flush_steps) {
  __m256i acc[MR][NB];
  for (int i = 0; i < MR; ++i)
    for (int b = 0; b < NB; ++b) acc[i][b] = _mm256_setzero_si256();
  const __m256i ones = _mm256_set1_epi16(1);
  const int64_t steps = a.k_pad / 4;
  const uint8_t* wbase = a.w_vnni + col0 * 4;
  const int64_t wstride = a.o_pad * 4;
  for (int64_t s0 = 0; s0 < steps; s0 += flush_steps) {
    const int64_t s1 = steps - s0 > flush_steps ? s0 + flush_steps : steps;
    __m256i acc16[MR][NB];
    for (int i = 0; i < MR; ++i)
      for (int b = 0; b < NB; ++b) acc16[i][b] = _mm256_setzero_si256();
    for (int64_t s = s0; s < s1; ++s) {
      __m256i wv[NB];
      for (int b = 0; b < NB; ++b)
        wv[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wbase + s * wstride + b * 32));
      for (int i = 0; i < MR; ++i) {
        int32_t four;
        std::memcpy(&four, A + i * astride + 4 * s, 4);
        const __m256i av = _mm256_set1_epi32(four);
        for (int b = 0; b < NB; ++b) acc16[i][b] = _mm256_add_epi16(acc16[i][b], _mm256_maddubs_epi16(av, wv[b]));
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int b = 0; b < NB; ++b) acc[i][b] = _mm256_add_epi32(acc[i][b], _mm256_madd_epi16(acc16[i][b], ones));
  }
  epilogue<MR, NB>(a, acc, rowsum, out, ldo, col0);
}

// MR rows of the tile against every 16-column block (the last block may be 8 wide). Byte codes run
// micro_u8 (flush_steps: its int16 span), int16 codes micro_i16.
template <int MR, typename Code>
void micro_cols(const GemmArgs& a, const Code* A, int64_t astride, const int32_t* rowsum, float* out, int64_t ldo,
                int64_t flush_steps) {
  for (int64_t col0 = 0; col0 < a.o_pad; col0 += 8 * kNB) {
    const bool full = a.o_pad - col0 >= 8 * kNB;
    if constexpr (sizeof(Code) == 1) {
      if (full) micro_u8<MR, kNB>(a, A, astride, rowsum, out, ldo, col0, flush_steps);
      else micro_u8<MR, 1>(a, A, astride, rowsum, out, ldo, col0, flush_steps);
    } else {
      if (full) micro_i16<MR, kNB>(a, A, astride, rowsum, out, ldo, col0);
      else micro_i16<MR, 1>(a, A, astride, rowsum, out, ldo, col0);
    }
  }
}

template <typename Code>
void tile_rows(const GemmArgs& a, const Code* A, int64_t astride, const int32_t* rowsum, float* o, int64_t ldo,
               int64_t n, int64_t flush_steps) {
  for (int64_t t = 0; t < n; t += kMR) {
    const Code* At = A + t * astride;
    switch (n - t >= kMR ? kMR : n - t) {
      case 1: micro_cols<1>(a, At, astride, rowsum + t, o + t * ldo, ldo, flush_steps); break;
      case 2: micro_cols<2>(a, At, astride, rowsum + t, o + t * ldo, ldo, flush_steps); break;
      case 3: micro_cols<3>(a, At, astride, rowsum + t, o + t * ldo, ldo, flush_steps); break;
      default: micro_cols<4>(a, At, astride, rowsum + t, o + t * ldo, ldo, flush_steps); break;
    }
  }
}

}  // namespace

void gemm_rows_avx2(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch) {
  int32_t* rowsum = static_cast<int32_t*>(scratch);
  void* tile_a = rowsum + 64;
  // Float rows go straight to the output; re-quantised rows go through a float tile first.
  float* tile = reinterpret_cast<float*>(static_cast<char*>(scratch) + gemm_tile_offset(a));
  uint8_t* codes = reinterpret_cast<uint8_t*>(tile + kGemmTileRows * a.o_pad);
  float* o = a.requant ? tile : a.out + r0 * a.o;
  if (a.w_bits <= 4) {
    // An int16 lane sums two products per step: at most 2 * amax * wmax each, 32767 in all.
    const int64_t flush_steps = 32767 / (2 * ((1 << a.a_bits) - 1) * ((1 << a.w_bits) - 1));  // >= 4
    const int64_t astride = a.k_pad + kU8Slack;
    uint8_t* A = static_cast<uint8_t*>(tile_a);
    for (int64_t r = r0; r < r1; ++r)
      rowsum[r - r0] = unpack_row_u8(a.a + r * a.a_words, a.a_bits, a.a_words, a.k, a.k_pad, A + (r - r0) * astride);
    tile_rows(a, static_cast<const uint8_t*>(A), astride, rowsum, o, a.o, r1 - r0, flush_steps);
  } else {
    const int64_t astride = a.k_pad + kU8Slack;
    int16_t* A = static_cast<int16_t*>(tile_a);
    for (int64_t r = r0; r < r1; ++r)
      rowsum[r - r0] = unpack_row_i16(a.a + r * a.a_words, a.a_bits, a.a_words, a.k, a.k_pad, A + (r - r0) * astride);
    tile_rows(a, static_cast<const int16_t*>(A), astride, rowsum, o, a.o, r1 - r0, int64_t{0});  // no int16 span
  }
  if (a.requant) {
    const Epilogue epilogue{a.chain, a.plan, a.out_grid};
    for (int64_t r = r0; r < r1; ++r)
      epilogue.row(tile + (r - r0) * a.o, a.o, r, a.out_packed + r * a.out_words, a.out_words, codes);
  }
}

}  // namespace cpu
}  // namespace qgnn

// AVX-512 VNNI packed GEMM: activations unpacked to bytes per tile of rows, weights in the
// (k/4, o, 4) u8 layout, vpdpbusd (u8 weights x s8 activations broadcast) into int32, zero points
// folded in the epilogue (see gemm.cpp). No torch or STL headers; target pragma after the includes.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")

namespace qgnn {
namespace cpu {
namespace {

// acc += dot4(u8 lanes of u, s8 lanes of v). Inline asm rather than _mm512_dpbusd_epi32: GCC 12
// wraps every vpdpbusd of the intrinsic in two register copies (and spills), halving the throughput.
__attribute__((always_inline)) inline void dpbusd(__m512i& acc, __m512i u, __m512i v) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(v));
}

constexpr int kMR = 6;  // rows per micro-tile
constexpr int kNB = 4;  // 16-column blocks per micro-tile

// Unpack one packed row (2, 4 or 8 bits) to signed bytes code - offset; returns the sum of codes.
int32_t unpack_row(const uint32_t* row, int64_t words, int bits, int64_t k, int offset, int8_t* dst) {
  // Lane j of a group of 16 codes: word (j * bits) / 32, shift (j * bits) % 32, in vector ops (this
  // runs once per row, where a scalar table cost about as much as the unpacking itself).
  const __m512i pos = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                         _mm512_set1_epi32(bits));
  const __m512i vidx = _mm512_srli_epi32(pos, 5), vsh = _mm512_and_si512(pos, _mm512_set1_epi32(31));
  const __m512i qmask = _mm512_set1_epi32((1 << bits) - 1), voff = _mm512_set1_epi32(offset);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t g = 0; g * 16 < k; ++g) {
    const int64_t w0 = g * bits / 2;
    const int64_t nw = words - w0;
    const __mmask16 m = nw >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << nw) - 1u);
    const __m512i w = _mm512_maskz_loadu_epi32(m, row + w0);
    const __m512i codes = _mm512_and_si512(_mm512_srlv_epi32(_mm512_permutexvar_epi32(vidx, w), vsh), qmask);
    sum = _mm512_add_epi32(sum, codes);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16 * g), _mm512_cvtepi32_epi8(_mm512_sub_epi32(codes, voff)));
  }
  return _mm512_reduce_add_epi32(sum);
}

template <int MR, int NB>
void micro(const GemmArgs& a, const int8_t* A, int64_t astride, const int32_t* rowsum, float* out, int64_t ldo,
           bool stream, int64_t col0) {
  // Every loop has constant bounds and is fully unrolled, so the accumulators live in registers
  // (with a data-dependent exit GCC kept them in memory and copied each one around every vpdpbusd).
  __m512i acc[MR][NB];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) acc[i][b] = _mm512_setzero_si512();
  const int64_t quads = a.k_pad / 4;
  const uint8_t* wbase = a.w_vnni + col0 * 4;
  const int64_t wstride = a.o_pad * 4;
  for (int64_t q = 0; q < quads; ++q) {
    __m512i wv[NB];
#pragma GCC unroll 8
    for (int b = 0; b < NB; ++b) wv[b] = _mm512_loadu_si512(wbase + q * wstride + b * 64);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512i av = _mm512_set1_epi32(*reinterpret_cast<const int32_t*>(A + i * astride + 4 * q));
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) dpbusd(acc[i][b], wv[b], av);
    }
  }
  const __m512i amwm = _mm512_set1_epi32(a.amwm);
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    const int64_t c0 = col0 + 16 * b;
    const int64_t left = a.o - c0 < 0 ? 0 : a.o - c0;
    const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    const __m512i coef = _mm512_loadu_si512(a.coef + c0), colterm = _mm512_loadu_si512(a.colterm_off + c0);
    const __m512 sc = _mm512_loadu_ps(a.sc + c0);
    const __m512 bias = a.bias ? _mm512_loadu_ps(a.bias + c0) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      __m512i d = _mm512_mullo_epi32(acc[i][b], amwm);
      d = _mm512_add_epi32(d, _mm512_add_epi32(_mm512_mullo_epi32(_mm512_set1_epi32(rowsum[i]), coef), colterm));
      __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(d), sc);
      // The reference rounds the product before adding the bias: keep the compiler from fusing them.
      __asm__("" : "+v"(y));
      if (a.bias) y = _mm512_add_ps(y, bias);
      float* dst = out + i * ldo + c0;
      // Full, aligned blocks bypass the cache: the output is written once and never read here, and
      // a normal store would first read every output line (1 GB more traffic at n = 2M).
      if (stream && m == 0xFFFF && (reinterpret_cast<uintptr_t>(dst) & 63) == 0) _mm512_stream_ps(dst, y);
      else _mm512_mask_storeu_ps(dst, m, y);
    }
  }
}

template <int MR>
void micro_cols(const GemmArgs& a, const int8_t* A, int64_t astride, const int32_t* rowsum, float* out, int64_t ldo,
                bool stream) {
  for (int64_t col0 = 0; col0 < a.o_pad; col0 += 16 * kNB) {
    const int64_t nb = (a.o_pad - col0) / 16;
    switch (nb >= kNB ? kNB : nb) {
      case 1: micro<MR, 1>(a, A, astride, rowsum, out, ldo, stream, col0); break;
      case 2: micro<MR, 2>(a, A, astride, rowsum, out, ldo, stream, col0); break;
      case 3: micro<MR, 3>(a, A, astride, rowsum, out, ldo, stream, col0); break;
      default: micro<MR, 4>(a, A, astride, rowsum, out, ldo, stream, col0); break;
    }
  }
}

#include "quantize_avx512.inc"

}  // namespace

void gemm_rows_avx512(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch) {
  const int64_t astride = (a.k + 15) / 16 * 16 + 64;
  int32_t* rowsum = static_cast<int32_t*>(scratch);
  int8_t* A = reinterpret_cast<int8_t*>(rowsum + 64);
  for (int64_t r = r0; r < r1; ++r)
    rowsum[r - r0] = unpack_row(a.a + r * a.a_words, a.a_words, a.a_bits, a.k, a.a_offset, A + (r - r0) * astride);
  // Float rows go straight to the output; re-quantised rows go through a float tile first.
  float* tile = reinterpret_cast<float*>(static_cast<char*>(scratch) + gemm_tile_offset(a));
  uint8_t* codes = reinterpret_cast<uint8_t*>(tile + 48 * a.o_pad);
  const bool stream = a.stream && !a.requant;
  float* o = a.requant ? tile : a.out + r0 * a.o;
  const int64_t ldo = a.o;
  for (int64_t r = r0; r < r1; r += kMR) {
    const int64_t t = r - r0;
    switch (r1 - r >= kMR ? kMR : r1 - r) {
      case 1: micro_cols<1>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
      case 2: micro_cols<2>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
      case 3: micro_cols<3>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
      case 4: micro_cols<4>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
      case 5: micro_cols<5>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
      default: micro_cols<6>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream); break;
    }
  }
  _mm_sfence();  // order the streaming stores before the caller reads the output
  if (a.requant) {
    const Epilogue epilogue(a.chain, a.plan, a.out_grid);
    for (int64_t r = r0; r < r1; ++r)
      epilogue.row(tile + (r - r0) * a.o, a.o, r, a.out_packed + r * a.out_words, a.out_words, codes);
  }
}

}  // namespace cpu
}  // namespace qgnn

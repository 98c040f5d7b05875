// AVX-512 (F, BW, VL) qgnn::smp_delta / qgnn::smp_update: 16 codes of a row at a time, decoded,
// combined and re-quantised in registers. No torch or STL headers (see kernels.h); the target pragma
// comes after the includes.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,bmi2")
// Products and sums stay separate, as in the float32 PyTorch reference (no FMA contraction).
#pragma GCC optimize("fp-contract=off")

namespace qgnn {
namespace cpu {
namespace {

#include "quantize_avx512.inc"

// Values (mult * code - zero) * scale of the codes [16 grp, 16 grp + 16) of a packed row of `nbytes`
// bytes. Group `grp` starts at byte 2 * bits * grp (pack.py); only the row's bytes are read, so lanes
// past the row hold the value of code 0.
inline __m512 decode16(const uint32_t* row, int64_t nbytes, int64_t grp, const Grid& g) {
  const int64_t at = 2 * g.bits * grp, left = nbytes - at;
  const int64_t n = left < 2 * g.bits ? left : 2 * g.bits;
  const __m128i raw = _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << n) - 1u), reinterpret_cast<const uint8_t*>(row) + at);
  __m512i c;
  if (g.bits == 8) {
    c = _mm512_cvtepu8_epi32(raw);
  } else if (g.bits == 4) {
    const __m128i nib = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(raw, nib), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), nib);
    c = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));  // byte t holds codes 2t (low) and 2t + 1
  } else {
    const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i shift = _mm512_mullo_epi32(lane, _mm512_set1_epi32(g.bits));
    c = _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(_mm_cvtsi128_si32(raw)), shift),
                         _mm512_set1_epi32((1 << g.bits) - 1));
  }
  if (g.mult != 1) c = _mm512_mullo_epi32(c, _mm512_set1_epi32(g.mult));
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c, _mm512_set1_epi32(g.zero))), _mm512_set1_ps(g.scale));
}

inline int64_t row_bytes(const SmpStepArgs& a, int s) { return a.in_words[s] * 4; }

// x and dx of group grp of row i: x_half = (keep x + smooth ax) + eta h, dx = x_half - x.
struct Half {
  __m512 x, half, dx;
};
inline Half half16(const SmpStepArgs& a, int64_t i, int64_t grp) {
  const __m512 x = decode16(a.in[0] + i * a.in_words[0], row_bytes(a, 0), grp, a.grid[0]);
  const __m512 ax = decode16(a.in[1] + i * a.in_words[1], row_bytes(a, 1), grp, a.grid[1]);
  const __m512 h = decode16(a.in[2] + i * a.in_words[2], row_bytes(a, 2), grp, a.grid[2]);
  __m512 half = _mm512_mul_ps(_mm512_set1_ps(a.keep), x);
  half = _mm512_add_ps(half, _mm512_mul_ps(_mm512_set1_ps(a.smooth), ax));
  half = _mm512_add_ps(half, _mm512_mul_ps(_mm512_set1_ps(a.eta), h));
  return {x, half, _mm512_sub_ps(half, x)};
}

// acc += u * v over the lanes of m, in float64 (the products are exact there).
inline void add_products(__m512d* acc, __m512 u, __m512 v, __mmask16 m) {
  u = _mm512_maskz_mov_ps(m, u);
  v = _mm512_maskz_mov_ps(m, v);
  const __m512d ulo = _mm512_cvtps_pd(_mm512_castps512_ps256(u)), vlo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
  const __m512d uhi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
  const __m512d vhi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  acc[0] = _mm512_add_pd(acc[0], _mm512_mul_pd(ulo, vlo));
  acc[1] = _mm512_add_pd(acc[1], _mm512_mul_pd(uhi, vhi));
}

inline double total(const __m512d* acc) { return _mm512_reduce_add_pd(_mm512_add_pd(acc[0], acc[1])); }

}  // namespace

double smp_delta_rows_avx512(const SmpStepArgs& a, int64_t r0, int64_t r1, float* scratch) {
  float* y = scratch;
  const int64_t groups = (a.cols + 15) / 16;
  __m512d acc[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
  for (int64_t i = r0; i < r1; ++i) {
    const __m512 di = _mm512_set1_ps(a.dinv[i]);
    for (int64_t grp = 0; grp < groups; ++grp) {
      const __mmask16 m = tail16(a.cols - 16 * grp);
      const __m512 dx = half16(a, i, grp).dx;
      if (a.out_float != nullptr) _mm512_mask_storeu_ps(a.out_float + i * a.cols + 16 * grp, m, dx);
      add_products(acc, dx, dx, m);
      _mm512_store_ps(y + 16 * grp, _mm512_mul_ps(dx, di));
    }
    quantize_row(y, a.cols, a.grid[3], a.out_codes + i * a.out_words, a.out_words, nullptr);
  }
  return total(acc);
}

double smp_update_rows_avx512(const SmpStepArgs& a, int64_t r0, int64_t r1, float* scratch) {
  const int64_t padded = (a.cols + 15) / 16 * 16;
  float *y = scratch, *pre = scratch + padded;
  const int64_t groups = padded / 16;
  const Grid &gu = a.grid[4], &gn = a.grid[5];
  const __m512 c = _mm512_set1_ps(a.c);
  __m512d acc[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
  for (int64_t i = r0; i < r1; ++i) {
    const __m512 di = _mm512_set1_ps(a.dinv[i]);
    float* out = a.out_codes != nullptr ? y : a.out_float + i * a.cols;
    for (int64_t grp = 0; grp < groups; ++grp) {
      const __mmask16 m = tail16(a.cols - 16 * grp);
      const Half s = half16(a, i, grp);
      __m512 x = s.half;
      if (a.mode != 2) {
        const __m512 adx = decode16(a.in[3] + i * a.in_words[3], row_bytes(a, 3), grp, a.grid[3]);
        add_products(acc, s.dx, adx, m);
        x = a.mode == 0 ? _mm512_add_ps(s.half, _mm512_mul_ps(c, adx))
                        : _mm512_sub_ps(s.half, _mm512_mul_ps(c, _mm512_sub_ps(s.dx, adx)));
      }
      _mm512_mask_storeu_ps(out + 16 * grp, m, x);
    }
    if (a.out_codes != nullptr) {
      uint32_t* dst = a.out_codes + i * a.out_words;
      quantize_row(y, a.cols, gu, dst, a.out_words, nullptr);
      if (a.pre != nullptr)  // the update site's values, as the next aggregation reads them
        for (int64_t grp = 0; grp < groups; ++grp)
          _mm512_store_ps(pre + 16 * grp, _mm512_mul_ps(decode16(dst, a.out_words * 4, grp, gu), di));
    } else if (a.pre != nullptr) {
      for (int64_t grp = 0; grp < groups; ++grp)
        _mm512_store_ps(pre + 16 * grp, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail16(a.cols - 16 * grp), out + 16 * grp), di));
    }
    if (a.pre != nullptr) quantize_row(pre, a.cols, gn, a.pre + i * a.pre_words, a.pre_words, nullptr);
  }
  return total(acc);
}

}  // namespace cpu
}  // namespace qgnn

// qgnn::site_codes on AVX-512 (kernels.h, SiteArgs): 16 lanes, masked tail. No torch or STL headers;
// the target pragma comes after the includes.
#include <immintrin.h>

#include <cstdint>

#include "kernels.h"

#pragma GCC target("avx512f,avx512dq")

namespace qgnn {
namespace cpu {

void site_codes_avx512(const SiteArgs& a, int64_t i0, int64_t i1) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512 scale = _mm512_set1_ps(a.scale), lo = _mm512_set1_ps(-a.zero),
               hi = _mm512_set1_ps(a.levels - a.zero), shift = _mm512_set1_ps(a.shift),
               mult = _mm512_set1_ps(a.mult), qmax = _mm512_set1_ps(a.qmax), neg_zero = _mm512_set1_ps(-a.zero),
               zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.f);
  for (int64_t i = i0; i < i1; i += 16) {
    const __mmask16 m = i1 - i >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (i1 - i)) - 1u);
    const __m512 t = _mm512_div_ps(_mm512_maskz_loadu_ps(m, a.x + i), scale);
    // ATen's clamp: min(hi, max(lo, t)), NaN and a zero equal to a bound pass through
    const __m512 u = _mm512_min_ps(hi, _mm512_max_ps(lo, t));
    const __mmask16 out = _mm512_cmp_ps_mask(_mm512_abs_ps(_mm512_sub_ps(t, u)), zero, _CMP_GT_OQ);
    __m512 c = _mm512_roundscale_ps(u, kNearest);
    if (a.fine) {
      c = _mm512_roundscale_ps(_mm512_div_ps(_mm512_add_ps(c, shift), mult), kNearest);
      c = _mm512_add_ps(_mm512_mul_ps(_mm512_min_ps(qmax, _mm512_max_ps(zero, c)), mult), neg_zero);
    } else {
      c = _mm512_add_ps(c, zero);
    }
    _mm512_mask_storeu_ps(a.centred + i, m, c);
    _mm512_mask_storeu_ps(a.masked_t + i, m, _mm512_mul_ps(t, _mm512_mask_sub_ps(one, out, one, one)));
    if (a.value != nullptr) _mm512_mask_storeu_ps(a.value + i, m, _mm512_mul_ps(c, scale));
  }
}

}  // namespace cpu
}  // namespace qgnn

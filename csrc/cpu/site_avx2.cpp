// qgnn::site_codes on AVX2 (kernels.h, SiteArgs): 8 lanes, the tail through a stack buffer. No torch
// or STL headers; the target pragma comes after the includes.
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "kernels.h"

#pragma GCC target("avx2")

namespace qgnn {
namespace cpu {

namespace {

void site8(const SiteArgs& a, const float* x, float* centred, float* masked_t, float* value) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m256 scale = _mm256_set1_ps(a.scale), zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f);
  const __m256 t = _mm256_div_ps(_mm256_loadu_ps(x), scale);
  // ATen's clamp: min(hi, max(lo, t)), NaN and a zero equal to a bound pass through
  const __m256 u = _mm256_min_ps(_mm256_set1_ps(a.levels - a.zero), _mm256_max_ps(_mm256_set1_ps(-a.zero), t));
  const __m256 d = _mm256_andnot_ps(_mm256_set1_ps(-0.f), _mm256_sub_ps(t, u));
  const __m256 outside = _mm256_and_ps(_mm256_cmp_ps(d, zero, _CMP_GT_OQ), one);
  __m256 c = _mm256_round_ps(u, kNearest);
  if (a.fine) {
    const __m256 mult = _mm256_set1_ps(a.mult);
    c = _mm256_round_ps(_mm256_div_ps(_mm256_add_ps(c, _mm256_set1_ps(a.shift)), mult), kNearest);
    c = _mm256_min_ps(_mm256_set1_ps(a.qmax), _mm256_max_ps(zero, c));
    c = _mm256_add_ps(_mm256_mul_ps(c, mult), _mm256_set1_ps(-a.zero));
  } else {
    c = _mm256_add_ps(c, zero);
  }
  _mm256_storeu_ps(centred, c);
  _mm256_storeu_ps(masked_t, _mm256_mul_ps(t, _mm256_sub_ps(one, outside)));
  if (value != nullptr) _mm256_storeu_ps(value, _mm256_mul_ps(c, scale));
}

}  // namespace

void site_codes_avx2(const SiteArgs& a, int64_t i0, int64_t i1) {
  int64_t i = i0;
  for (; i + 8 <= i1; i += 8)
    site8(a, a.x + i, a.centred + i, a.masked_t + i, a.value != nullptr ? a.value + i : nullptr);
  if (i == i1) return;
  const int64_t n = i1 - i;
  float x[8] = {}, c[8], m[8], v[8];
  std::memcpy(x, a.x + i, sizeof(float) * n);
  site8(a, x, c, m, v);
  std::memcpy(a.centred + i, c, sizeof(float) * n);
  std::memcpy(a.masked_t + i, m, sizeof(float) * n);
  if (a.value != nullptr) std::memcpy(a.value + i, v, sizeof(float) * n);
}

}  // namespace cpu
}  // namespace qgnn

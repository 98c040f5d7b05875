// AVX2 packed SpMM (same narrow-lane scheme as AVX-512, 32-byte vectors), quantize_pack and the
// gather floor. No torch or STL headers: raw pointers only (see kernels.h); the target pragma comes
// after the includes.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"

#pragma GCC target("avx2,fma,bmi2")

namespace qgnn {
namespace cpu {
namespace {

typedef __m256i V;
typedef __m256i M;
constexpr int VB = 32;

inline V v_zero() { return _mm256_setzero_si256(); }
inline V v_set1_8(int x) { return _mm256_set1_epi8(static_cast<char>(x)); }
inline V v_and(V a, V b) { return _mm256_and_si256(a, b); }
inline V v_xor(V a, V b) { return _mm256_xor_si256(a, b); }
inline V v_add8(V a, V b) { return _mm256_add_epi8(a, b); }
inline V v_add16(V a, V b) { return _mm256_add_epi16(a, b); }
template <int S> inline V v_srl16(V a) { return _mm256_srli_epi16(a, S); }
inline V v_unpacklo8(V a, V b) { return _mm256_unpacklo_epi8(a, b); }
inline V v_unpackhi8(V a, V b) { return _mm256_unpackhi_epi8(a, b); }
inline V v_unpacklo16(V a, V b) { return _mm256_unpacklo_epi16(a, b); }
inline V v_unpackhi16(V a, V b) { return _mm256_unpackhi_epi16(a, b); }
inline M v_mask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
inline V v_load(const uint32_t* p, M m) {
  if (_mm256_movemask_ps(_mm256_castsi256_ps(m)) & 0xF0) return _mm256_maskload_epi32(reinterpret_cast<const int*>(p), m);
  return _mm256_zextsi128_si256(_mm_maskload_epi32(reinterpret_cast<const int*>(p), _mm256_castsi256_si128(m)));
}
inline void v_store(void* p, V x) { _mm256_store_si256(static_cast<__m256i*>(p), x); }
// A volatile asm, not _mm_prefetch: GCC treats __builtin_prefetch as free of side effects, marks a
// non-inlined caller "const" and deletes the call (no prefetch reached the binary that way).
__attribute__((always_inline)) inline void prefetch(const void* p) {
  __asm__ volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
}

inline void add8(int32_t* acc, __m256i x, bool first) {
  __m256i* p = reinterpret_cast<__m256i*>(acc);
  _mm256_storeu_si256(p, first ? x : _mm256_add_epi32(_mm256_loadu_si256(p), x));
}

inline void add_u8x16(int32_t* acc, const uint8_t* b, bool first) {
  const __m128i x = _mm_load_si128(reinterpret_cast<const __m128i*>(b));
  add8(acc, _mm256_cvtepu8_epi32(x), first);
  add8(acc + 8, _mm256_cvtepu8_epi32(_mm_srli_si128(x, 8)), first);
}

inline void add_u16x16(int32_t* acc, const uint8_t* lo, const uint8_t* hi, bool first) {
  add8(acc, _mm256_cvtepu16_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(lo))), first);
  add8(acc + 8, _mm256_cvtepu16_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(hi))), first);
}

#include "spmm_simd.inc"

#include "quantize_avx2.inc"

}  // namespace

int64_t spmm_rows_avx2(const SpmmArgs& a, int64_t r0, int64_t r1, void* scratch) {
  if (a.bits == 1) return spmm_rows_generic(a, r0, r1, scratch);
  const RowCtx c = make_ctx(a);
  const int64_t padded = a.words * (32 / a.bits) + 1024;
  int32_t* iacc = static_cast<int32_t*>(scratch);
  float* y = reinterpret_cast<float*>(iacc + padded + 64);
  uint8_t* codes = reinterpret_cast<uint8_t*>(y + padded + 64);
  const int64_t limit = int32_degree_limit(a.bits, a.mult, a.zero);
  const __m256 vscale = _mm256_set1_ps(a.scale);
  const __m256i vmult = _mm256_set1_epi32(a.mult);
  int64_t bad = 0;
  const bool stream = spmm_streams(a);
  const Epilogue epilogue{a.chain, a.plan, a.out_grid};
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t begin = a.indptr[i], end = a.indptr[i + 1];
    if (begin < 0 || end < begin || end > a.nnz || (a.values == nullptr && end - begin > limit)) {
      ++bad;
      continue;
    }
    const __m256 vrs = _mm256_set1_ps(a.row_scale ? a.row_scale[i] : 1.0f);
    float* yrow = a.requant ? y : a.out + i * a.cols;
    if (a.values == nullptr) {
      int64_t deg = 0;
      switch (a.bits) {
        case 2: bad += accumulate_row<2>(c, begin, end, iacc, &deg); break;
        case 4: bad += accumulate_row<4>(c, begin, end, iacc, &deg); break;
        default: bad += accumulate_row<8>(c, begin, end, iacc, &deg); break;
      }
      const __m256i vdz = _mm256_set1_epi32(static_cast<int32_t>(deg) * a.zero);
      for (int64_t f = 0; f < a.cols; f += 8) {
        const __m256i s = _mm256_sub_epi32(
            _mm256_mullo_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(iacc + f)), vmult), vdz);
        store8(yrow + f, _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), vscale), vrs), a.cols - f, stream);
      }
    } else {
      float* facc = reinterpret_cast<float*>(iacc);
      switch (a.bits) {
        case 2: bad += accumulate_weighted<2>(c, a.values, begin, end, a.mult, a.zero, facc, padded - 1024); break;
        case 4: bad += accumulate_weighted<4>(c, a.values, begin, end, a.mult, a.zero, facc, padded - 1024); break;
        default: bad += accumulate_weighted<8>(c, a.values, begin, end, a.mult, a.zero, facc, padded - 1024); break;
      }
      for (int64_t f = 0; f < a.cols; f += 8)  // facc is scratch, padded past cols
        store8(yrow + f, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(facc + f), vscale), vrs), a.cols - f, stream);
    }
    if (a.requant) epilogue.row(y, a.cols, i, a.out_packed + i * a.out_words, a.out_words, codes);
  }
  if (stream) _mm_sfence();
  return bad;
}

void quantize_rows_avx2(const QuantizeArgs& a, int64_t r0, int64_t r1, void* scratch) {
  uint8_t* codes = static_cast<uint8_t*>(scratch);
  const Epilogue epilogue{nullptr, a.plan, a.grid};
  for (int64_t i = r0; i < r1; ++i) {
    const float* x = a.x + i * a.cols;
    uint32_t* dst = a.out + i * a.words;
    if (a.plan == nullptr || !epilogue.planned(x, a.cols, i, dst, a.words)) quantize_row(x, a.cols, a.grid, dst, a.words, codes);
  }
}

int64_t gather_floor_rows_avx2(const SpmmArgs& a, int64_t r0, int64_t r1, uint32_t* out) {
  return gather_floor_impl(a, r0, r1, out);
}

}  // namespace cpu
}  // namespace qgnn

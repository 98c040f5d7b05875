// AVX-512 (F, BW, VL) packed SpMM, its re-quantising epilogue, quantize_pack and the gather floor.
// No torch or STL headers: raw pointers only (see kernels.h); the target pragma comes after the
// includes so nothing from a header is compiled for AVX-512 here.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,bmi2,fma")

namespace qgnn {
namespace cpu {
namespace {

typedef __m512i V;
typedef __mmask16 M;
constexpr int VB = 64;

inline V v_zero() { return _mm512_setzero_si512(); }
inline V v_set1_8(int x) { return _mm512_set1_epi8(static_cast<char>(x)); }
inline V v_and(V a, V b) { return _mm512_and_si512(a, b); }
inline V v_xor(V a, V b) { return _mm512_xor_si512(a, b); }
inline V v_add8(V a, V b) { return _mm512_add_epi8(a, b); }
inline V v_add16(V a, V b) { return _mm512_add_epi16(a, b); }
template <int S> inline V v_srl16(V a) { return _mm512_srli_epi16(a, S); }
inline V v_unpacklo8(V a, V b) { return _mm512_unpacklo_epi8(a, b); }
inline V v_unpackhi8(V a, V b) { return _mm512_unpackhi_epi8(a, b); }
inline V v_unpacklo16(V a, V b) { return _mm512_unpacklo_epi16(a, b); }
inline V v_unpackhi16(V a, V b) { return _mm512_unpackhi_epi16(a, b); }
inline M v_mask(int n) { return static_cast<M>((1u << n) - 1u); }
// Load no wider than the row: a 64-byte masked load of a 32-byte row would still touch the next
// cache line (the INT2 floor at F = 128 ran at half speed that way). Whole 64-, 32- and 16-byte
// chunks take plain loads, which random gathers of aligned rows ran ~5 % faster in a probe.
inline V v_load(const uint32_t* p, M m) {
  if (m == 0xFFFFu) return _mm512_loadu_si512(p);
  if (m & 0xFF00u) return _mm512_maskz_loadu_epi32(m, p);
  if (m == 0x00FFu) return _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  if (m & 0x00F0u) return _mm512_zextsi256_si512(_mm256_maskz_loadu_epi32(static_cast<__mmask8>(m), p));
  if (m == 0x000Fu) return _mm512_zextsi128_si512(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm512_zextsi128_si512(_mm_maskz_loadu_epi32(static_cast<__mmask8>(m), p));
}
inline void v_store(void* p, V x) { _mm512_store_si512(p, x); }
// A volatile asm, not _mm_prefetch: GCC treats __builtin_prefetch as free of side effects, marks a
// non-inlined caller "const" and deletes the call (no prefetch reached the binary that way).
__attribute__((always_inline)) inline void prefetch(const void* p) {
  __asm__ volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
}

inline void add_u8x16(int32_t* acc, const uint8_t* b, bool first) {
  const __m512i x = _mm512_cvtepu8_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(b)));
  _mm512_storeu_si512(acc, first ? x : _mm512_add_epi32(_mm512_loadu_si512(acc), x));
}

inline void add_u16x16(int32_t* acc, const uint8_t* lo, const uint8_t* hi, bool first) {
  const __m256i w = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(lo))),
      _mm_load_si128(reinterpret_cast<const __m128i*>(hi)), 1);
  const __m512i x = _mm512_cvtepu16_epi32(w);
  _mm512_storeu_si512(acc, first ? x : _mm512_add_epi32(_mm512_loadu_si512(acc), x));
}

#include "spmm_simd.inc"

#include "quantize_avx512.inc"

}  // namespace

int64_t spmm_rows_avx512(const SpmmArgs& a, int64_t r0, int64_t r1, void* scratch) {
  if (a.bits == 1) return spmm_rows_generic(a, r0, r1, scratch);
  const RowCtx c = make_ctx(a);
  const int64_t padded = a.words * (32 / a.bits) + 1024;
  int32_t* iacc = static_cast<int32_t*>(scratch);
  float* y = reinterpret_cast<float*>(iacc + padded + 64);
  uint8_t* codes = reinterpret_cast<uint8_t*>(y + padded + 64);
  const int64_t limit = int32_degree_limit(a.bits, a.mult, a.zero);
  const __m512 vscale = _mm512_set1_ps(a.scale);
  const __m512i vmult = _mm512_set1_epi32(a.mult);
  int64_t bad = 0;
  const Epilogue epilogue(a.chain, a.plan, a.out_grid);
  const bool stream = spmm_streams(a);
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t begin = a.indptr[i], end = a.indptr[i + 1];
    if (begin < 0 || end < begin || end > a.nnz || (a.values == nullptr && end - begin > limit)) {
      ++bad;
      continue;
    }
    const __m512 vrs = _mm512_set1_ps(a.row_scale ? a.row_scale[i] : 1.0f);
    float* yrow = a.requant ? y : a.out + i * a.cols;
    if (a.values == nullptr) {
      int64_t deg = 0;
      switch (a.bits) {
        case 2: bad += accumulate_row<2>(c, begin, end, iacc, &deg); break;
        case 4: bad += accumulate_row<4>(c, begin, end, iacc, &deg); break;
        default: bad += accumulate_row<8>(c, begin, end, iacc, &deg); break;
      }
      const __m512i vdz = _mm512_set1_epi32(static_cast<int32_t>(deg) * a.zero);
      for (int64_t f = 0; f < a.cols; f += 16) {
        const __mmask16 m = tail16(a.cols - f);
        const __m512i s = _mm512_sub_epi32(_mm512_mullo_epi32(_mm512_loadu_si512(iacc + f), vmult), vdz);
        const __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), vscale), vrs);
        if (stream && m == 0xFFFF) _mm512_stream_ps(yrow + f, v);  // output rows bypass the cache
        else _mm512_mask_storeu_ps(yrow + f, m, v);
      }
    } else {
      float* facc = reinterpret_cast<float*>(iacc);
      switch (a.bits) {
        case 2: bad += accumulate_weighted<2>(c, a.values, begin, end, a.mult, a.zero, facc, padded - 1024); break;
        case 4: bad += accumulate_weighted<4>(c, a.values, begin, end, a.mult, a.zero, facc, padded - 1024); break;
        default: bad += accumulate_weighted<8>(c, a.values, begin, end, a.mult, a.zero, facc, padded - 1024); break;
      }
      for (int64_t f = 0; f < a.cols; f += 16) {
        const __mmask16 m = tail16(a.cols - f);
        _mm512_mask_storeu_ps(yrow + f, m, _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, facc + f), vscale), vrs));
      }
    }
    if (a.requant) {
      epilogue.row(y, a.cols, i, a.out_packed + i * a.out_words, a.out_words, codes);
    }
  }
  if (stream) _mm_sfence();
  return bad;
}

void quantize_rows_avx512(const QuantizeArgs& a, int64_t r0, int64_t r1, void* scratch) {
  uint8_t* codes = static_cast<uint8_t*>(scratch);
  const Epilogue epilogue(nullptr, a.plan, a.grid);
  // The rows are read once, in order, and the compares keep few loads in flight: without fetching
  // ~4 KB ahead this ran at half the bandwidth of a plain sum over x (2M x 128 floats, one thread:
  // 177-193 -> 100-137 ms, x.sum() 81-99 ms; benchmarks/RESULTS.md).
  const int64_t row_bytes = a.cols * 4, ahead = row_bytes > 0 ? (4096 + row_bytes - 1) / row_bytes : 0;
  for (int64_t i = r0; i < r1; ++i) {
    const float* x = a.x + i * a.cols;
    uint32_t* dst = a.out + i * a.words;
    if (i + ahead < r1) {
      const char* next = reinterpret_cast<const char*>(a.x + (i + ahead) * a.cols);
      for (int64_t b = 0; b < row_bytes; b += 64) _mm_prefetch(next + b, _MM_HINT_T0);
    }
    // Epilogue::row without a chain, on a row that is only read
    if (a.plan == nullptr || !epilogue.planned(x, a.cols, i, dst, a.words))
      quantize_row(x, a.cols, a.grid, dst, a.words, codes);
  }
}

// Here rather than in chain.cpp: the thresholds must come from these AVX-512 stages (shared with gemm).
void plan_codes_avx512(const ChainPlan& p, float* buf, int64_t n, int32_t* code) { counted_codes(p, buf, n, code); }

int64_t gather_floor_rows_avx512(const SpmmArgs& a, int64_t r0, int64_t r1, uint32_t* out) {
  return gather_floor_impl(a, r0, r1, out);
}

}  // namespace cpu
}  // namespace qgnn

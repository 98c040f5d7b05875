// AVX-512 (F, BW, VL) qgnn::smp_delta / qgnn::smp_update: 16 codes of a row at a time. The aggregation
// adds every neighbour's codes into int32 lanes (a register when the row is one group of 16, SMP's class
// count), then the epilogue, the step's arithmetic and the re-quantisation run in registers. No torch or
// STL headers (see kernels.h); the target pragma comes after the includes.
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

constexpr int64_t kPrefetch = 32;  // edges ahead (KERNELS.md: 32 was best for random gathers)

// A volatile asm, not _mm_prefetch, so that the compiler cannot drop it (see spmm_avx512.cpp).
__attribute__((always_inline)) inline void prefetch(const void* p) {
  __asm__ volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
}

// Group grp (codes [16 grp, 16 grp + 16)) of a packed row of `nbytes` bytes starts at byte
// 2 * bits * grp (pack.py) and holds this many of the row's bytes.
inline int64_t group_bytes(int64_t nbytes, int64_t grp, int bits) {
  const int64_t left = nbytes - 2 * bits * grp;
  return left < 2 * bits ? left : 2 * bits;
}

// The N <= 16 bytes at p in the low bytes of a register, zero above: one plain load where N is 2, 4,
// 8 or 16. A masked 16-byte load of a narrower row costs more and may straddle a cache line (random
// 4-byte rows gathered 1.2-1.5x slower through _mm_maskz_loadu_epi8).
template <int N>
inline __m128i load_bytes(const uint8_t* p) {
  if constexpr (N == 2 || N == 4) {
    uint32_t v = 0;
    __builtin_memcpy(&v, p, N);
    return _mm_cvtsi32_si128(static_cast<int>(v));
  } else if constexpr (N == 8) {
    return _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  } else if constexpr (N == 16) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  } else {
    return _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << N) - 1u), p);
  }
}

inline __m128i load_bytes(const uint8_t* p, int64_t n) {
  switch (n) {
    case 2: return load_bytes<2>(p);
    case 4: return load_bytes<4>(p);
    case 8: return load_bytes<8>(p);
    case 16: return load_bytes<16>(p);
    default: return _mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << n) - 1u), p);
  }
}

// A width as a type, for choosing load_bytes<N> once per row rather than per edge.
template <int W>
struct Width {
  static constexpr int N = W;
};

template <int BITS>
inline __m512i expand(__m128i raw) {
  if (BITS == 8) return _mm512_cvtepu8_epi32(raw);
  if (BITS == 4) {
    const __m128i nib = _mm_set1_epi8(0x0F);
    const __m128i lo = _mm_and_si128(raw, nib), hi = _mm_and_si128(_mm_srli_epi16(raw, 4), nib);
    return _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));  // byte t holds codes 2t (low) and 2t + 1
  }
  const __m512i shift = _mm512_set_epi32(15 * BITS, 14 * BITS, 13 * BITS, 12 * BITS, 11 * BITS, 10 * BITS, 9 * BITS,
                                         8 * BITS, 7 * BITS, 6 * BITS, 5 * BITS, 4 * BITS, 3 * BITS, 2 * BITS, BITS, 0);
  return _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(_mm_cvtsi128_si32(raw)), shift),
                          _mm512_set1_epi32((1 << BITS) - 1));
}

inline __m512i codes_at(const uint32_t* row, int64_t nbytes, int64_t grp, int bits) {
  const __m128i raw = load_bytes(reinterpret_cast<const uint8_t*>(row) + 2 * bits * grp, group_bytes(nbytes, grp, bits));
  switch (bits) {
    case 8: return expand<8>(raw);
    case 4: return expand<4>(raw);
    case 2: return expand<2>(raw);
    default: return expand<1>(raw);
  }
}

inline __m512 value16(__m512i q, const Grid& g) {
  const __m512i c = g.mult != 1 ? _mm512_mullo_epi32(q, _mm512_set1_epi32(g.mult)) : q;
  return _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(c, _mm512_set1_epi32(g.zero))), _mm512_set1_ps(g.scale));
}

inline __m512i codes16(__m512 x, const Grid16& g, __mmask16 m) { return _mm512_maskz_mov_epi32(m, quantize16(x, g)); }

// sums[grp] = the code sums of every valid neighbour of row i (int32 lanes); returns the edges used.
// Everything the edge loop reads lives in locals: a store through `bad` could alias the argument struct.
template <int BITS>
__attribute__((always_inline)) inline int64_t gather(const SmpStepArgs& a, int64_t i, int64_t groups, __m512i* sums,
                                                     int64_t* bad) {
  for (int64_t grp = 0; grp < groups; ++grp) sums[grp] = _mm512_setzero_si512();
  int64_t begin, end;
  if (!smp_row_edges(a, i, &begin, &end)) {
    ++*bad;
    return 0;
  }
  const int64_t nnz = a.nnz;
  const int32_t* indices = a.indices;
  const uint32_t* agg = a.agg;
  const uint8_t* base = reinterpret_cast<const uint8_t*>(agg);
  const int64_t words = a.agg_words, stride = words * 4;
  const uint64_t rows = static_cast<uint64_t>(a.rows);
  int64_t deg = 0, skipped = 0;
  // add(row) for every valid neighbour, prefetching kPrefetch edges ahead.
  const auto each_neighbour = [&](auto add) __attribute__((always_inline)) {
    for (int64_t e = begin; e < end; ++e) {
      if (e + kPrefetch < nnz) prefetch(base + static_cast<uint32_t>(indices[e + kPrefetch]) * stride);
      const uint32_t j = static_cast<uint32_t>(indices[e]);
      if (j >= rows) {
        ++skipped;
        continue;
      }
      add(agg + static_cast<int64_t>(j) * words);
      ++deg;
    }
  };
  if (groups == 1) {  // one register of sums
    __m512i acc = _mm512_setzero_si512();
    const auto sum_rows = [&](auto width) __attribute__((always_inline)) {
      each_neighbour([&](const uint32_t* row) __attribute__((always_inline)) {
        acc = _mm512_add_epi32(acc, expand<BITS>(load_bytes<decltype(width)::N>(reinterpret_cast<const uint8_t*>(row))));
      });
    };
    switch (group_bytes(stride, 0, BITS)) {
      case 2: sum_rows(Width<2>()); break;
      case 4: sum_rows(Width<4>()); break;
      case 8: sum_rows(Width<8>()); break;
      case 12: sum_rows(Width<12>()); break;
      default: sum_rows(Width<16>()); break;
    }
    sums[0] = acc;
  } else {
    each_neighbour([&](const uint32_t* row) __attribute__((always_inline)) {
      for (int64_t grp = 0; grp < groups; ++grp) sums[grp] = _mm512_add_epi32(sums[grp], codes_at(row, stride, grp, BITS));
    });
  }
  *bad += skipped;
  return deg;
}

int64_t gather_rt(const SmpStepArgs& a, int64_t i, int64_t groups, __m512i* sums, int64_t* bad) {
  switch (a.agg_in.bits) {
    case 8: return gather<8>(a, i, groups, sums, bad);
    case 4: return gather<4>(a, i, groups, sums, bad);
    case 2: return gather<2>(a, i, groups, sums, bad);
    default: return gather<1>(a, i, groups, sums, bad);
  }
}

// The aggregated values of a group, float(S) * scale * dinv: qgnn::spmm's output (spmm_requant's
// epilogue quantizes them onto agg_out).
inline __m512 aggregated16(const SmpStepArgs& a, __m512i sums, int64_t deg, __m512 di) {
  const Grid& g = a.agg_in;
  const __m512i s = _mm512_sub_epi32(_mm512_mullo_epi32(sums, _mm512_set1_epi32(g.mult)),
                                     _mm512_set1_epi32(static_cast<int32_t>(deg * g.zero)));
  return _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_set1_ps(g.scale)), di);
}

// A grid's 16-lane constants; an off grid (bits 32, never quantized to) gets a placeholder's.
inline Grid16 grid16(const Grid& g) { return Grid16(g.bits == 32 ? Grid{8, 1.0f, 0, 1, 0} : g); }

inline __m512 row_value(const uint32_t* rows, int64_t words, int64_t i, int64_t grp, const Grid& g, int bits) {
  return value16(codes_at(rows + i * words, words * 4, grp, bits), g);
}

// B > 0: every grid the rows use has B bits and a row is one group of 16 codes (SMP's rows are as wide
// as the class count), so the bit-width switches fold and the gather is inlined; B = 0: any step.
template <int B>
struct Uniform {
  static int bits(const Grid& g) { return B ? B : g.bits; }
  static int64_t groups(const SmpStepArgs& a) { return B ? 1 : (a.cols + 15) / 16; }
  static int64_t gather(const SmpStepArgs& a, int64_t i, int64_t groups, __m512i* sums, int64_t* bad) {
    return B ? qgnn::cpu::gather<B ? B : 2>(a, i, 1, sums, bad) : gather_rt(a, i, groups, sums, bad);
  }
};

// x_half = (keep x + smooth ax) + eta h (nn.smp.smp_propagate's order) and dx = x_half - x.
inline void half16(const SmpStepArgs& a, __m512 x, __m512 ax, __m512 h, __m512* half, __m512* dx) {
  __m512 t = _mm512_mul_ps(_mm512_set1_ps(a.keep), x);
  t = _mm512_add_ps(t, _mm512_mul_ps(_mm512_set1_ps(a.smooth), ax));
  t = _mm512_add_ps(t, _mm512_mul_ps(_mm512_set1_ps(a.eta), h));
  *half = t;
  *dx = _mm512_sub_ps(t, x);
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

template <int B>
SmpRows delta_rows(const SmpStepArgs& a_in, int64_t r0, int64_t r1, int32_t* scratch) {
  using U = Uniform<B>;
  const SmpStepArgs a = a_in;  // a local copy: its grids stay in registers across the stores below
  __m512i* sums = reinterpret_cast<__m512i*>(scratch);
  const int64_t groups = U::groups(a);
  const Grid16 g_agg = grid16(a.agg_out), g_out(a.out_grid);  // the quantizers' constants, once per call
  __m512d acc[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
  int64_t bad = 0;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t deg = U::gather(a, i, groups, sums, &bad);
    const __m512 di = _mm512_set1_ps(a.dinv[i]);
    uint32_t* ax_row = a.ax_out != nullptr ? a.ax_out + i * a.ax_out_words : nullptr;
    uint32_t* dst = a.out_codes + i * a.out_words;
    for (int64_t grp = 0; grp < groups; ++grp) {
      const __mmask16 m = tail16(a.cols - 16 * grp);
      __m512 ax = aggregated16(a, sums[grp], deg, di);
      if (ax_row != nullptr) {
        const __m512i qax = codes16(ax, g_agg, m);
        pack16(qax, U::bits(a.agg_out), grp, groups, ax_row, a.ax_out_words);
        ax = value16(qax, a.agg_out);
      } else {
        _mm512_mask_storeu_ps(a.ax_out_float + i * a.cols + 16 * grp, m, ax);
      }
      __m512 half, dx;
      half16(a, row_value(a.x, a.x_words, i, grp, a.gx, U::bits(a.gx)), ax,
             row_value(a.h, a.h_words, i, grp, a.gh, U::bits(a.gh)), &half, &dx);
      if (a.out_float != nullptr) _mm512_mask_storeu_ps(a.out_float + i * a.cols + 16 * grp, m, dx);
      add_products(acc, dx, dx, m);
      pack16(codes16(_mm512_mul_ps(dx, di), g_out, m), U::bits(a.out_grid), grp, groups, dst, a.out_words);
    }
  }
  return SmpRows{total(acc), bad};
}

template <int B>
SmpRows update_rows(const SmpStepArgs& a_in, int64_t r0, int64_t r1, int32_t* scratch) {
  using U = Uniform<B>;
  const SmpStepArgs a = a_in;
  __m512i* sums = reinterpret_cast<__m512i*>(scratch);
  const Grid &gu = a.out_grid, &gn = a.next_grid;
  const int64_t groups = U::groups(a);
  const Grid16 g_agg = grid16(a.agg_out), g_upd = grid16(gu), g_next = grid16(gn);  // once per call
  const __m512 c = _mm512_set1_ps(a.c);
  __m512d acc[2] = {_mm512_setzero_pd(), _mm512_setzero_pd()};
  int64_t bad = 0;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t deg = a.mode != 2 ? U::gather(a, i, groups, sums, &bad) : 0;
    const __m512 di = _mm512_set1_ps(a.dinv[i]);
    uint32_t* dst = a.out_codes != nullptr ? a.out_codes + i * a.out_words : nullptr;
    uint32_t* pre = a.pre != nullptr ? a.pre + i * a.pre_words : nullptr;
    for (int64_t grp = 0; grp < groups; ++grp) {
      const __mmask16 m = tail16(a.cols - 16 * grp);
      __m512 x, dx;
      const __m512 ax = a.ax_float != nullptr ? _mm512_maskz_loadu_ps(m, a.ax_float + i * a.cols + 16 * grp)
                                              : row_value(a.ax, a.ax_words, i, grp, a.gax, U::bits(a.gax));
      half16(a, row_value(a.x, a.x_words, i, grp, a.gx, U::bits(a.gx)), ax,
             row_value(a.h, a.h_words, i, grp, a.gh, U::bits(a.gh)), &x, &dx);
      if (a.mode != 2) {
        __m512 adx = aggregated16(a, sums[grp], deg, di);
        if (a.agg_out.bits != 32) adx = value16(codes16(adx, g_agg, m), a.agg_out);
        add_products(acc, dx, adx, m);
        x = a.mode == 0 ? _mm512_add_ps(x, _mm512_mul_ps(c, adx)) : _mm512_sub_ps(x, _mm512_mul_ps(c, _mm512_sub_ps(dx, adx)));
      }
      if (dst != nullptr) {  // the update site: its codes, and their values for the next aggregation
        const __m512i q = codes16(x, g_upd, m);
        pack16(q, U::bits(gu), grp, groups, dst, a.out_words);
        x = value16(q, gu);
      } else {
        _mm512_mask_storeu_ps(a.out_float + i * a.cols + 16 * grp, m, x);
      }
      if (pre != nullptr)
        pack16(codes16(_mm512_mul_ps(x, di), g_next, m), U::bits(gn), grp, groups, pre, a.pre_words);
    }
  }
  return SmpRows{total(acc), bad};
}

}  // namespace

SmpRows smp_delta_rows_avx512(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch) {
  switch (smp_delta_uniform_bits(a)) {  // 8 bits: the generic path of this unit
    case 2: return delta_rows<2>(a, r0, r1, scratch);
    case 4: return delta_rows<4>(a, r0, r1, scratch);
    default: return delta_rows<0>(a, r0, r1, scratch);
  }
}

SmpRows smp_update_rows_avx512(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch) {
  switch (smp_update_uniform_bits(a)) {
    case 2: return update_rows<2>(a, r0, r1, scratch);
    case 4: return update_rows<4>(a, r0, r1, scratch);
    default: return update_rows<0>(a, r0, r1, scratch);
  }
}

}  // namespace cpu
}  // namespace qgnn

// AVX2 qgnn::smp_delta / qgnn::smp_update: 8 codes of a row at a time, the scheme of the AVX-512 unit
// (smp_step_avx512.cpp) on 32-byte vectors. The aggregation adds every neighbour's codes into int32
// lanes (registers when the row is one or two groups of 8, SMP's class counts), then the epilogue, the
// step's arithmetic and the re-quantisation run in registers. No torch or STL headers (see kernels.h);
// the target pragma comes after the includes.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"

#pragma GCC target("avx2,bmi2")
// Products and sums stay separate, as in the float32 PyTorch reference (no FMA contraction).
#pragma GCC optimize("fp-contract=off")

namespace qgnn {
namespace cpu {
namespace {

inline __m256i v_mask(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }

#include "quantize_avx2.inc"

constexpr int64_t kPrefetch = 32;  // edges ahead (KERNELS.md: 32 was best for random gathers)

// A volatile asm, not _mm_prefetch, so that the compiler cannot drop it (see spmm_avx2.cpp).
__attribute__((always_inline)) inline void prefetch(const void* p) {
  __asm__ volatile("prefetcht0 %0" : : "m"(*static_cast<const char*>(p)));
}

// Lane t holds t * bits: the bit offset of code t of a group in its packed field.
inline __m256i lane_shifts(int bits) { return _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(bits)); }

// Group grp (codes [8 grp, 8 grp + 8)) of a packed row of `nbytes` bytes starts at byte bits * grp
// (pack.py). Rows are whole words, so a group of <= 4 bits always has its `bits` bytes; an 8-bit group
// may have only 4 (the row's last word).
template <int BITS>
inline __m256i expand8(const uint8_t* row, int64_t nbytes, int64_t grp) {
  const uint8_t* p = row + BITS * grp;
  if constexpr (BITS == 8) {
    uint64_t v = 0;
    if (nbytes - 8 * grp >= 8) __builtin_memcpy(&v, p, 8);
    else __builtin_memcpy(&v, p, 4);
    return _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<long long>(v)));
  } else {
    uint32_t v = 0;
    __builtin_memcpy(&v, p, BITS);
    return _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(v)), lane_shifts(BITS)),
                            _mm256_set1_epi32((1 << BITS) - 1));
  }
}

inline __m256i codes_at(const uint32_t* row, int64_t words, int64_t grp, int bits) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(row);
  switch (bits) {
    case 8: return expand8<8>(p, words * 4, grp);
    case 4: return expand8<4>(p, words * 4, grp);
    case 2: return expand8<2>(p, words * 4, grp);
    default: return expand8<1>(p, words * 4, grp);
  }
}

inline __m256 value8(__m256i q, const Grid& g) {
  const __m256i c = g.mult != 1 ? _mm256_mullo_epi32(q, _mm256_set1_epi32(g.mult)) : q;
  return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c, _mm256_set1_epi32(g.zero))), _mm256_set1_ps(g.scale));
}

inline __m256 row_value(const uint32_t* rows, int64_t words, int64_t i, int64_t grp, const Grid& g, int bits) {
  return value8(codes_at(rows + i * words, words, grp, bits), g);
}

// The codes of x on grid g, 0 outside the lanes of m (pack.py: codes past cols are 0).
inline __m256i codes8(__m256 x, const Grid& g, __m256i m) { return _mm256_and_si256(quantize8(x, g), m); }

// Writes a packed row group by group: groups of <= 4 bits are fields of a word, written once the word
// is whole (so the row needs no clearing); 8-bit groups are two words, the last one perhaps one.
struct RowPacker {
  uint32_t* row;
  int64_t words;
  int bits;
  uint32_t word = 0;

  void put(int64_t grp, __m256i q) {
    if (bits == 8) {
      const __m256i b = _mm256_shuffle_epi8(q, _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                                                0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
      row[2 * grp] = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_castsi256_si128(b)));
      if (2 * grp + 1 < words) row[2 * grp + 1] = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1)));
      return;
    }
    // the codes' fields do not overlap: OR the 8 lanes together
    const __m256i f = _mm256_sllv_epi32(q, lane_shifts(bits));
    __m128i x = _mm_or_si128(_mm256_castsi256_si128(f), _mm256_extracti128_si256(f, 1));
    x = _mm_or_si128(x, _mm_shuffle_epi32(x, 0x4E));
    x = _mm_or_si128(x, _mm_shuffle_epi32(x, 0xB1));
    const int64_t per_word = 4 / bits;  // groups
    word |= static_cast<uint32_t>(_mm_cvtsi128_si32(x)) << (8 * bits * (grp % per_word));
    if (grp % per_word == per_word - 1) {
      row[grp / per_word] = word;
      word = 0;
    }
  }
  void finish(int64_t groups) {
    if (bits != 8 && groups % (4 / bits) != 0) row[groups / (4 / bits)] = word;
  }
};

// sums[grp] = the code sums of every valid neighbour of row i (int32 lanes); returns the edges used.
// G > 0: the row is G groups, summed in registers. Everything the edge loop reads lives in locals: a
// store through `bad` could alias the argument struct.
template <int BITS, int G>
__attribute__((always_inline)) inline int64_t gather(const SmpStepArgs& a, int64_t i, int64_t groups, __m256i* sums,
                                                     int64_t* bad) {
  for (int64_t grp = 0; grp < groups; ++grp) sums[grp] = _mm256_setzero_si256();
  int64_t begin, end;
  if (!smp_row_edges(a, i, &begin, &end)) {
    ++*bad;
    return 0;
  }
  const int64_t nnz = a.nnz;
  const int32_t* indices = a.indices;
  const uint8_t* base = reinterpret_cast<const uint8_t*>(a.agg);
  const int64_t stride = a.agg_words * 4;
  const uint64_t rows = static_cast<uint64_t>(a.rows);
  int64_t deg = 0, skipped = 0;
  __m256i acc[G > 0 ? G : 1];
  for (int g = 0; g < G; ++g) acc[g] = _mm256_setzero_si256();
  for (int64_t e = begin; e < end; ++e) {
    if (e + kPrefetch < nnz) prefetch(base + static_cast<uint32_t>(indices[e + kPrefetch]) * stride);
    const uint32_t j = static_cast<uint32_t>(indices[e]);
    if (j >= rows) {
      ++skipped;
      continue;
    }
    const uint8_t* row = base + static_cast<int64_t>(j) * stride;
    if constexpr (G > 0) {
      for (int g = 0; g < G; ++g) acc[g] = _mm256_add_epi32(acc[g], expand8<BITS>(row, stride, g));
    } else {
      for (int64_t grp = 0; grp < groups; ++grp) sums[grp] = _mm256_add_epi32(sums[grp], expand8<BITS>(row, stride, grp));
    }
    ++deg;
  }
  for (int g = 0; g < G; ++g) sums[g] = acc[g];
  *bad += skipped;
  return deg;
}

int64_t gather_rt(const SmpStepArgs& a, int64_t i, int64_t groups, __m256i* sums, int64_t* bad) {
  switch (a.agg_in.bits) {
    case 8: return gather<8, 0>(a, i, groups, sums, bad);
    case 4: return gather<4, 0>(a, i, groups, sums, bad);
    case 2: return gather<2, 0>(a, i, groups, sums, bad);
    default: return gather<1, 0>(a, i, groups, sums, bad);
  }
}

// The aggregated values of a group, float(S) * scale * dinv: qgnn::spmm's output (spmm_requant's
// epilogue quantizes them onto agg_out).
inline __m256 aggregated8(const SmpStepArgs& a, __m256i sums, int64_t deg, __m256 di) {
  const Grid& g = a.agg_in;
  const __m256i s = _mm256_sub_epi32(_mm256_mullo_epi32(sums, _mm256_set1_epi32(g.mult)),
                                     _mm256_set1_epi32(static_cast<int32_t>(deg * g.zero)));
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(g.scale)), di);
}

// B > 0: every grid the rows use has B bits and a row is G (1 or 2) groups of 8 codes (SMP's rows are
// as wide as the class count), so the bit-width switches fold and the sums stay in registers;
// B = G = 0: any step.
template <int B, int G>
struct Uniform {
  static int bits(const Grid& g) { return B ? B : g.bits; }
  static int64_t groups(const SmpStepArgs& a) { return G ? G : (a.cols + 7) / 8; }
  static int64_t gather(const SmpStepArgs& a, int64_t i, int64_t groups, __m256i* sums, int64_t* bad) {
    if constexpr (B > 0) return qgnn::cpu::gather<B, G>(a, i, G, sums, bad);
    else return gather_rt(a, i, groups, sums, bad);
  }
};

// x_half = (keep x + smooth ax) + eta h (nn.smp.smp_propagate's order) and dx = x_half - x.
inline void half8(const SmpStepArgs& a, __m256 x, __m256 ax, __m256 h, __m256* half, __m256* dx) {
  __m256 t = _mm256_mul_ps(_mm256_set1_ps(a.keep), x);
  t = _mm256_add_ps(t, _mm256_mul_ps(_mm256_set1_ps(a.smooth), ax));
  t = _mm256_add_ps(t, _mm256_mul_ps(_mm256_set1_ps(a.eta), h));
  *half = t;
  *dx = _mm256_sub_ps(t, x);
}

// acc += u * v over the lanes of m, in float64 (the products are exact there).
inline void add_products(__m256d* acc, __m256 u, __m256 v, __m256i m) {
  u = _mm256_and_ps(u, _mm256_castsi256_ps(m));
  v = _mm256_and_ps(v, _mm256_castsi256_ps(m));
  acc[0] = _mm256_add_pd(acc[0], _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(u)),
                                               _mm256_cvtps_pd(_mm256_castps256_ps128(v))));
  acc[1] = _mm256_add_pd(acc[1], _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(u, 1)),
                                               _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1))));
}

inline double total(const __m256d* acc) {
  alignas(32) double t[4];
  _mm256_store_pd(t, _mm256_add_pd(acc[0], acc[1]));
  return (t[0] + t[1]) + (t[2] + t[3]);
}

template <class U>
SmpRows delta_rows(const SmpStepArgs& a_in, int64_t r0, int64_t r1, int32_t* scratch) {
  const SmpStepArgs a = a_in;  // a local copy: its grids stay in registers across the stores below
  __m256i* sums = reinterpret_cast<__m256i*>(scratch);
  const int64_t groups = U::groups(a);
  __m256d acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  int64_t bad = 0;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t deg = U::gather(a, i, groups, sums, &bad);
    const __m256 di = _mm256_set1_ps(a.dinv[i]);
    float* ax_float = a.ax_out != nullptr ? nullptr : a.ax_out_float + i * a.cols;
    float* dx_float = a.out_float != nullptr ? a.out_float + i * a.cols : nullptr;
    RowPacker ax_row{a.ax_out != nullptr ? a.ax_out + i * a.ax_out_words : nullptr, a.ax_out_words, U::bits(a.agg_out)};
    RowPacker dst{a.out_codes + i * a.out_words, a.out_words, U::bits(a.out_grid)};
    for (int64_t grp = 0; grp < groups; ++grp) {
      const int64_t left = a.cols - 8 * grp;
      const __m256i m = tail8(left);
      __m256 ax = aggregated8(a, sums[grp], deg, di);
      if (ax_float == nullptr) {
        const __m256i qax = codes8(ax, a.agg_out, m);
        ax_row.put(grp, qax);
        ax = value8(qax, a.agg_out);
      } else {
        store8(ax_float + 8 * grp, ax, left);
      }
      __m256 half, dx;
      half8(a, row_value(a.x, a.x_words, i, grp, a.gx, U::bits(a.gx)), ax,
            row_value(a.h, a.h_words, i, grp, a.gh, U::bits(a.gh)), &half, &dx);
      if (dx_float != nullptr) store8(dx_float + 8 * grp, dx, left);
      add_products(acc, dx, dx, m);
      dst.put(grp, codes8(_mm256_mul_ps(dx, di), a.out_grid, m));
    }
    if (ax_float == nullptr) ax_row.finish(groups);
    dst.finish(groups);
  }
  return SmpRows{total(acc), bad};
}

template <class U>
SmpRows update_rows(const SmpStepArgs& a_in, int64_t r0, int64_t r1, int32_t* scratch) {
  const SmpStepArgs a = a_in;
  __m256i* sums = reinterpret_cast<__m256i*>(scratch);
  const Grid &gu = a.out_grid, &gn = a.next_grid;
  const int64_t groups = U::groups(a);
  const __m256 c = _mm256_set1_ps(a.c);
  __m256d acc[2] = {_mm256_setzero_pd(), _mm256_setzero_pd()};
  int64_t bad = 0;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t deg = a.mode != 2 ? U::gather(a, i, groups, sums, &bad) : 0;
    const __m256 di = _mm256_set1_ps(a.dinv[i]);
    const bool update_on = a.out_codes != nullptr, next_on = a.pre != nullptr;
    RowPacker dst{update_on ? a.out_codes + i * a.out_words : nullptr, a.out_words, U::bits(gu)};
    RowPacker pre{next_on ? a.pre + i * a.pre_words : nullptr, a.pre_words, U::bits(gn)};
    for (int64_t grp = 0; grp < groups; ++grp) {
      const int64_t left = a.cols - 8 * grp;
      const __m256i m = tail8(left);
      __m256 x, dx;
      const __m256 ax = a.ax_float != nullptr ? load8(a.ax_float + i * a.cols + 8 * grp, left)
                                              : row_value(a.ax, a.ax_words, i, grp, a.gax, U::bits(a.gax));
      half8(a, row_value(a.x, a.x_words, i, grp, a.gx, U::bits(a.gx)), ax,
            row_value(a.h, a.h_words, i, grp, a.gh, U::bits(a.gh)), &x, &dx);
      if (a.mode != 2) {
        __m256 adx = aggregated8(a, sums[grp], deg, di);
        if (a.agg_out.bits != 32) adx = value8(codes8(adx, a.agg_out, m), a.agg_out);
        add_products(acc, dx, adx, m);
        x = a.mode == 0 ? _mm256_add_ps(x, _mm256_mul_ps(c, adx)) : _mm256_sub_ps(x, _mm256_mul_ps(c, _mm256_sub_ps(dx, adx)));
      }
      if (update_on) {  // the update site: its codes, and their values for the next aggregation
        const __m256i q = codes8(x, gu, m);
        dst.put(grp, q);
        x = value8(q, gu);
      } else {
        store8(a.out_float + i * a.cols + 8 * grp, x, left);
      }
      if (next_on) pre.put(grp, codes8(_mm256_mul_ps(x, di), gn, m));
    }
    if (update_on) dst.finish(groups);
    if (next_on) pre.finish(groups);
  }
  return SmpRows{total(acc), bad};
}

// rows(U()) for the Uniform instance that the uniform width b (kernels.h) and the columns allow.
template <class Rows>
SmpRows dispatch(int b, int64_t cols, Rows rows) {
  const int g = cols <= 8 ? 1 : 2;
  if (b == 2) return g == 1 ? rows(Uniform<2, 1>()) : rows(Uniform<2, 2>());
  if (b == 4) return g == 1 ? rows(Uniform<4, 1>()) : rows(Uniform<4, 2>());
  if (b == 8) return g == 1 ? rows(Uniform<8, 1>()) : rows(Uniform<8, 2>());
  return rows(Uniform<0, 0>());
}

}  // namespace

SmpRows smp_delta_rows_avx2(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch) {
  return dispatch(smp_delta_uniform_bits(a), a.cols, [&](auto u) { return delta_rows<decltype(u)>(a, r0, r1, scratch); });
}

SmpRows smp_update_rows_avx2(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch) {
  return dispatch(smp_update_uniform_bits(a), a.cols, [&](auto u) { return update_rows<decltype(u)>(a, r0, r1, scratch); });
}

}  // namespace cpu
}  // namespace qgnn

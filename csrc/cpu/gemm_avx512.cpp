// AVX-512 packed GEMM: activations unpacked to bytes per tile of rows, then either VNNI (weights in
// the (k/4, o, 4) u8 layout, vpdpbusd of u8 weights x s8 activations broadcast) or AMX-INT8 tiles
// (tdpbuud of u8 codes x u8 weights, 32 x 32 output blocks), into int32; zero points folded in the
// epilogue (see gemm.cpp). No torch or STL headers; target pragma after the includes.
#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "kernels.h"

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,bmi2,amx-tile,amx-int8")

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

// The epilogue constants of 16 output columns, and the value of one row's integer dot products:
//   out = float(am*wm * acc + rowsum * coef + colterm) * sc (+ bias)
struct Columns16 {
  int64_t c0;
  __mmask16 m;
  __m512i amwm, coef, colterm;
  __m512 sc, bias;
  Columns16(const GemmArgs& a, int64_t col0, const int32_t* colterms)
      : c0(col0),
        m(a.o - col0 >= 16 ? static_cast<__mmask16>(0xFFFF)
                           : static_cast<__mmask16>((1u << (a.o - col0 < 0 ? 0 : a.o - col0)) - 1u)),
        amwm(_mm512_set1_epi32(a.amwm)),
        coef(_mm512_loadu_si512(a.coef + col0)),
        colterm(_mm512_loadu_si512(colterms + col0)),
        sc(_mm512_loadu_ps(a.sc + col0)),
        bias(a.bias ? _mm512_loadu_ps(a.bias + col0) : _mm512_setzero_ps()) {}

  // Row `out` (its column 0) gets the 16 values; full aligned blocks may bypass the cache: the
  // output is written once and never read here (a normal store would first read every line).
  __attribute__((always_inline)) void store(const GemmArgs& a, __m512i acc, int32_t rowsum, float* out,
                                            bool stream) const {
    __m512i d = _mm512_mullo_epi32(acc, amwm);
    d = _mm512_add_epi32(d, _mm512_add_epi32(_mm512_mullo_epi32(_mm512_set1_epi32(rowsum), coef), colterm));
    __m512 y = _mm512_mul_ps(_mm512_cvtepi32_ps(d), sc);
    // The reference rounds the product before adding the bias: keep the compiler from fusing them.
    __asm__("" : "+v"(y));
    if (a.bias) y = _mm512_add_ps(y, bias);
    float* dst = out + c0;
    if (stream && m == 0xFFFF && (reinterpret_cast<uintptr_t>(dst) & 63) == 0) _mm512_stream_ps(dst, y);
    else _mm512_mask_storeu_ps(dst, m, y);
  }
};

// MR rows x NB * 16 columns from col0: through Columns16 into `out`, or (`raw`, row stride o_pad) the
// accumulators themselves, for the epilogue on D.
template <int MR, int NB>
void micro(const GemmArgs& a, const int8_t* A, int64_t astride, const int32_t* rowsum, float* out, int64_t ldo,
           bool stream, int32_t* raw, int64_t col0) {
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
  if (raw != nullptr) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int b = 0; b < NB; ++b) _mm512_store_si512(raw + i * a.o_pad + col0 + 16 * b, acc[i][b]);
    return;
  }
#pragma GCC unroll 8
  for (int b = 0; b < NB; ++b) {
    const Columns16 cols(a, col0 + 16 * b, a.colterm_off);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) cols.store(a, acc[i][b], rowsum[i], out + i * ldo, stream);
  }
}

template <int MR>
void micro_cols(const GemmArgs& a, const int8_t* A, int64_t astride, const int32_t* rowsum, float* out, int64_t ldo,
                bool stream, int32_t* raw) {
  for (int64_t col0 = 0; col0 < a.o_pad; col0 += 16 * kNB) {
    const int64_t nb = (a.o_pad - col0) / 16;
    switch (nb >= kNB ? kNB : nb) {
      case 1: micro<MR, 1>(a, A, astride, rowsum, out, ldo, stream, raw, col0); break;
      case 2: micro<MR, 2>(a, A, astride, rowsum, out, ldo, stream, raw, col0); break;
      case 3: micro<MR, 3>(a, A, astride, rowsum, out, ldo, stream, raw, col0); break;
      default: micro<MR, 4>(a, A, astride, rowsum, out, ldo, stream, raw, col0); break;
    }
  }
}

#include "quantize_avx512.inc"

// Rows [r0, r1) of the float tile to their packed output codes through the epilogue.
void requant_tile(const GemmArgs& a, const Epilogue& epilogue, int64_t r0, int64_t r1, float* tile, uint8_t* codes) {
  for (int64_t r = r0; r < r1; ++r)
    epilogue.row(tile + (r - r0) * a.o, a.o, r, a.out_packed + r * a.out_words, a.out_words, codes);
}

// One row's D (kernels.h GemmArgs) as the plan's lanes, from its raw dot products: "reached" is
// D > dot_thr. D is an integer: never NaN, and no float conversion.
struct DotLanes {
  using V = __m512i;
  const int32_t* acc;  // the row's dot products, o_pad wide
  __m512i amwm, rowsum;
  const int32_t *coef, *colterm, *thr;  // thr: [counts][stride]
  int64_t stride;
  V value(int64_t f, __mmask16) const {
    const __m512i d = _mm512_mullo_epi32(_mm512_load_si512(acc + f), amwm);
    return _mm512_add_epi32(d, _mm512_add_epi32(_mm512_mullo_epi32(rowsum, _mm512_loadu_si512(coef + f)),
                                                _mm512_loadu_si512(colterm + f)));
  }
  V threshold(int k, int64_t f) const { return _mm512_loadu_si512(thr + k * stride + f); }
  static __mmask16 reached(V v, V t) { return _mm512_cmpgt_epi32_mask(v, t); }
  static V blend(__mmask16 b, V x, V y) { return _mm512_mask_blend_epi32(b, x, y); }
  static __mmask16 unordered(V) { return 0; }
};

// Rows [r0, r1) of raw dot products (row stride o_pad; `colterm`: the path's column terms) to their
// packed output codes, counted on D.
void requant_dots(const GemmArgs& a, const Epilogue& epilogue, int64_t r0, int64_t r1, const int32_t* acc,
                  const int32_t* rowsum, const int32_t* colterm) {
  DotLanes lanes{acc, _mm512_set1_epi32(a.amwm), _mm512_setzero_si512(), a.coef, colterm, a.dot_thr, a.o_pad};
  for (int64_t r = r0; r < r1; ++r) {
    lanes.acc = acc + (r - r0) * a.o_pad;
    lanes.rowsum = _mm512_set1_epi32(rowsum[r - r0]);
    epilogue.planned_on<15>(lanes, a.o, r, a.out_packed + r * a.out_words, a.out_words);
  }
}

// Unpack one packed row (2, 4 or 8 bits) to its u8 codes in plane order (kernels.h,
// gemm_amx_position): per 64 codes, one 512-bit shift-and-mask of the row's bytes broadcast to every
// lane; codes past k are zeroed (`last`: the valid positions of the last 64). Returns the codes' sum.
int32_t unpack_planes(const uint32_t* row, int64_t words, int bits, int64_t chunks, __mmask64 last, uint8_t* dst) {
  const uint8_t* src = reinterpret_cast<const uint8_t*>(row);
  const int64_t nbytes = words * 4, chunk_bytes = 8 * bits;
  // 16-bit lanes shifted by field * bits, field = the 512-bit lane's (2 bits) or half's (4 bits) index.
  const __m512i shift = bits == 2 ? _mm512_set_epi64(6 * 0x0001000100010001LL, 6 * 0x0001000100010001LL,
                                                     4 * 0x0001000100010001LL, 4 * 0x0001000100010001LL,
                                                     2 * 0x0001000100010001LL, 2 * 0x0001000100010001LL, 0, 0)
                                  : _mm512_set_epi64(4 * 0x0001000100010001LL, 4 * 0x0001000100010001LL,
                                                     4 * 0x0001000100010001LL, 4 * 0x0001000100010001LL, 0, 0, 0, 0);
  const __m512i field = _mm512_set1_epi8(static_cast<char>((1 << bits) - 1));
  __m512i sum = _mm512_setzero_si512();
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t avail = nbytes - c * chunk_bytes;  // >= 1: every chunk holds a code < k
    __m512i v;
    if (bits == 2) {
      const __mmask16 m = avail >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << avail) - 1u);
      v = _mm512_broadcast_i32x4(_mm_maskz_loadu_epi8(m, src + 16 * c));
    } else if (bits == 4) {
      const __mmask32 m = avail >= 32 ? 0xFFFFFFFFu : (1u << avail) - 1u;
      v = _mm512_broadcast_i64x4(_mm256_maskz_loadu_epi8(m, src + 32 * c));
    } else {
      const __mmask64 m = avail >= 64 ? ~0ULL : (1ULL << avail) - 1ULL;
      v = _mm512_maskz_loadu_epi8(m, src + 64 * c);
    }
    if (bits != 8) v = _mm512_and_si512(_mm512_srlv_epi16(v, shift), field);
    if (c == chunks - 1) v = _mm512_maskz_mov_epi8(last, v);
    sum = _mm512_add_epi64(sum, _mm512_sad_epu8(v, _mm512_setzero_si512()));
    _mm512_store_si512(dst + 64 * c, v);
  }
  return static_cast<int32_t>(_mm512_reduce_add_epi64(sum));
}

// The plane-order positions (of the last 64) that hold codes < k.
__mmask64 last_chunk_mask(int64_t k, int bits) {
  if (k % 64 == 0) return ~0ULL;
  const int64_t base = (k + 63) / 64 * 64 - 64;
  __mmask64 m = 0;
  for (int64_t j = base; j < k; ++j) m |= 1ULL << (gemm_amx_position(j, bits) - base);
  return m;
}

// Tile configuration (palette 1): every tile 16 rows of 64 bytes. tmm0-3: the 2 x 2 int32 output
// block; tmm4-5: two 16-row slices of A (64 codes each); tmm6-7: two 16-column slices of W.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
  TileConfig() {
    for (int t = 0; t < 8; ++t) {
      colsb[t] = 64;
      rows[t] = 16;
    }
  }
};

// 32 rows (A, stride astride bytes) x NC * 16 columns from col0, accumulated over k_amx into acc
// (int32, row stride o_pad).
template <int NC>
void amx_block(const GemmArgs& a, const uint8_t* A, int64_t astride, int64_t col0, int32_t* acc) {
  const int64_t wstride = a.o_pad * 4;
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int64_t kc = 0; kc < a.k_amx; kc += 64) {
    const uint8_t* w = a.w_amx + (kc / 4) * wstride + col0 * 4;
    _tile_loadd(4, A + kc, astride);
    _tile_loadd(5, A + 16 * astride + kc, astride);
    _tile_loadd(6, w, wstride);
    _tile_dpbuud(0, 4, 6);
    _tile_dpbuud(2, 5, 6);
    if (NC == 2) {
      _tile_loadd(7, w + 64, wstride);
      _tile_dpbuud(1, 4, 7);
      _tile_dpbuud(3, 5, 7);
    }
  }
  const int64_t cstride = a.o_pad * 4;
  _tile_stored(0, acc + col0, cstride);
  _tile_stored(2, acc + 16 * a.o_pad + col0, cstride);
  if (NC == 2) {
    _tile_stored(1, acc + col0 + 16, cstride);
    _tile_stored(3, acc + 16 * a.o_pad + col0 + 16, cstride);
  }
}

}  // namespace

void gemm_rows_amx(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch) {
  int32_t* rowsum = static_cast<int32_t*>(scratch);
  uint8_t* A = reinterpret_cast<uint8_t*>(rowsum + 64);
  const int64_t astride = a.k_amx + 64;  // not a multiple of 4 KB apart: tile rows spread over cache sets
  const int64_t chunks = a.k_amx / 64;
  const __mmask64 last = chunks ? last_chunk_mask(a.k, a.a_bits) : 0;
  const int64_t rows = r1 - r0, padded = (rows + 31) / 32 * 32;
  for (int64_t r = 0; r < padded; ++r) {
    uint8_t* dst = A + r * astride;
    if (r < rows) rowsum[r] = unpack_planes(a.a + (r0 + r) * a.a_words, a.a_words, a.a_bits, chunks, last, dst);
    else for (int64_t c = 0; c < chunks; ++c) _mm512_store_si512(dst + 64 * c, _mm512_setzero_si512());
  }
  float* tile = reinterpret_cast<float*>(static_cast<char*>(scratch) + gemm_tile_offset(a));
  uint8_t* codes = reinterpret_cast<uint8_t*>(tile + kGemmTileRows * a.o_pad);
  int32_t* acc = reinterpret_cast<int32_t*>(static_cast<char*>(scratch) + gemm_acc_offset(a));
  const bool stream = a.stream && !a.requant, on_dots = a.requant && a.dot_thr != nullptr;
  float* o = a.requant ? tile : a.out + r0 * a.o;
  const Epilogue epilogue(a.chain, a.plan, a.out_grid);
  const TileConfig config;
  _tile_loadconfig(&config);
  for (int64_t b = 0; b < padded; b += 32) {
    for (int64_t col0 = 0; col0 < a.o_pad; col0 += 32) {
      if (a.o_pad - col0 >= 32) amx_block<2>(a, A + b * astride, astride, col0, acc);
      else amx_block<1>(a, A + b * astride, astride, col0, acc);
    }
    if (on_dots) {  // u8 x u8: no activation offset to fold
      requant_dots(a, epilogue, r0 + b, r0 + (b + 32 < rows ? b + 32 : rows), acc, rowsum + b, a.colterm);
      continue;
    }
    for (int64_t c0 = 0; c0 < a.o_pad; c0 += 16) {
      const Columns16 cols(a, c0, a.colterm);  // u8 x u8: no activation offset to fold
      for (int64_t i = b; i < b + 32 && i < rows; ++i)
        cols.store(a, _mm512_load_si512(acc + (i - b) * a.o_pad + c0), rowsum[i], o + i * a.o, stream);
    }
  }
  _tile_release();
  _mm_sfence();
  if (a.requant && !on_dots) requant_tile(a, epilogue, r0, r1, tile, codes);
}

void gemm_rows_avx512(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch) {
  const int64_t astride = (a.k + 15) / 16 * 16 + 64;
  int32_t* rowsum = static_cast<int32_t*>(scratch);
  int8_t* A = reinterpret_cast<int8_t*>(rowsum + 64);
  for (int64_t r = r0; r < r1; ++r)
    rowsum[r - r0] = unpack_row(a.a + r * a.a_words, a.a_words, a.a_bits, a.k, a.a_offset, A + (r - r0) * astride);
  // Float rows go straight to the output; re-quantised rows go through a float tile first.
  float* tile = reinterpret_cast<float*>(static_cast<char*>(scratch) + gemm_tile_offset(a));
  uint8_t* codes = reinterpret_cast<uint8_t*>(tile + kGemmTileRows * a.o_pad);
  const bool stream = a.stream && !a.requant;
  float* o = a.requant ? tile : a.out + r0 * a.o;
  int32_t* raw = a.requant && a.dot_thr != nullptr ? reinterpret_cast<int32_t*>(tile) : nullptr;  // D's epilogue
  const int64_t ldo = a.o;
  for (int64_t r = r0; r < r1; r += kMR) {
    const int64_t t = r - r0;
    int32_t* rt = raw ? raw + t * a.o_pad : nullptr;
    switch (r1 - r >= kMR ? kMR : r1 - r) {
      case 1: micro_cols<1>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream, rt); break;
      case 2: micro_cols<2>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream, rt); break;
      case 3: micro_cols<3>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream, rt); break;
      case 4: micro_cols<4>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream, rt); break;
      case 5: micro_cols<5>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream, rt); break;
      default: micro_cols<6>(a, A + t * astride, astride, rowsum + t, o + t * ldo, ldo, stream, rt); break;
    }
  }
  _mm_sfence();  // order the streaming stores before the caller reads the output
  if (!a.requant) return;
  const Epilogue epilogue(a.chain, a.plan, a.out_grid);
  if (raw) requant_dots(a, epilogue, r0, r1, raw, rowsum, a.colterm_off);
  else requant_tile(a, epilogue, r0, r1, tile, codes);
}

}  // namespace cpu
}  // namespace qgnn

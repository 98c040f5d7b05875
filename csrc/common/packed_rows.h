// Row-level bodies of the packed CUDA kernels, written once as __host__ __device__ functions.
//
// A CUDA kernel in csrc/cuda/ maps threads to (row, chunk) or (row, word) and calls one of these;
// tests/kernels/device_math_harness.cpp calls the same functions in plain loops on the CPU and the
// tests compare the result with the PyTorch references bit for bit. So a kernel differs from tested
// code only in how its threads are mapped to rows and in the memory operations below marked
// "device: ..." (vector loads, atomics).
//
// SpMM work split (see docs/CUDA.md): a row's packed words are cut into chunks of VEC words (one
// 4/8/16-byte load per edge); a lane owns a chunk and walks the row's edges, accumulating integers.
// Rows longer than `long_row` edges go to a block-per-row kernel whose groups each walk a strided
// subset of the edges and add their partial sums into a per-block scratch row.
#pragma once

#include <cstdint>
#include <type_traits>

#include "codes.h"
#include "packed_math.h"

namespace qgnn {
namespace rows {

using namespace ::qgnn::pm;  // NOLINT: the per-word math this file is built from

// Everything an SpMM call needs; pointers are all device or all host memory.
struct SpmmParams {
  const int64_t* indptr = nullptr;   // [num_rows + 1]
  const int32_t* indices = nullptr;  // [nnz], addressing rows of `packed`
  const float* values = nullptr;     // [nnz] or null (unweighted: exact integer sums)
  const uint32_t* packed = nullptr;  // [num_src, words]
  int64_t num_rows = 0;
  int64_t words = 0;  // words per packed input row
  int64_t cols = 0;
  int bits = 2;
  int mult = 1;
  float scale = 1.f;
  int zero = 0;
  const float* row_scale = nullptr;  // [num_rows] or null
  // Output: float32 [num_rows, cols], or (out_packed != null) packed codes on the out grid.
  float* out = nullptr;
  uint32_t* out_packed = nullptr;  // [num_rows, out_words], zero-initialised by the caller
  int64_t out_words = 0;
  int out_bits = 2;
  float out_scale = 1.f;
  int out_zero = 0;
  int out_mult = 1;
  int out_skew = 0;
};

// ---- memory operations that differ between host and device ------------------------------------

template <int VEC>
QGNN_HD void load_words(const uint32_t* p, uint32_t* w) {
#if defined(__CUDA_ARCH__)
  if (VEC == 4) {  // device: one 16-byte read-only load
    const uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
  } else if (VEC == 2) {
    const uint2 v = __ldg(reinterpret_cast<const uint2*>(p));
    w[0] = v.x; w[1] = v.y;
  } else {
    w[0] = __ldg(p);
  }
#else
  for (int v = 0; v < VEC; ++v) w[v] = p[v];
#endif
}

template <typename T>
QGNN_HD void add_to(T* dst, T v) {
#if defined(__CUDA_ARCH__)
  atomicAdd(dst, v);  // device: groups of a block share the scratch row
#else
  *dst += v;
#endif
}

// Four consecutive floats at a 16-byte aligned address.
QGNN_HD void store4(float* dst, float a, float b, float c, float d) {
#if defined(__CUDA_ARCH__)
  *reinterpret_cast<float4*>(dst) = make_float4(a, b, c, d);  // device: one 16-byte store
#else
  dst[0] = a; dst[1] = b; dst[2] = c; dst[3] = d;
#endif
}

QGNN_HD void or_to(uint32_t* dst, uint32_t v) {
#if defined(__CUDA_ARCH__)
  atomicOr(dst, v);  // device: neighbouring lanes may share an output word
#else
  *dst |= v;
#endif
}

// ---- per-chunk accumulators ----------------------------------------------------------------------
//
// A chunk is VEC consecutive packed words of a row (VEC * 32/BITS codes). Three kinds of lanes:
//   unweighted, BITS <= 4: SWAR16 fields holding raw code sums; at most kBatch edges between flushes;
//   unweighted, BITS == 8: one int32 per code (raw code sums);
//   weighted:              one float per code holding sum w_e * (mult * code - zero).

template <int BITS, int VEC, bool WEIGHTED>
struct ChunkAcc {
  static constexpr int kPerWord = 32 / BITS;
  static constexpr int kCodes = VEC * kPerWord;
  static constexpr int kMode = WEIGHTED ? 2 : (BITS <= 4 ? 0 : 1);  // 0 swar16, 1 int32, 2 float
  static constexpr int kSwarRegs = Swar16<BITS>::kRegs;
  static constexpr int kU = kMode == 0 ? VEC * kSwarRegs : 1;
  static constexpr int kI = kMode == 1 ? kCodes : 1;
  static constexpr int kF = kMode == 2 ? kCodes : 1;
  static constexpr int64_t kBatch = kMode == 0 ? Swar16<BITS>::kCapacity : (int64_t{1} << 40);
  using Scratch = typename std::conditional<WEIGHTED, float, int32_t>::type;

  uint32_t u[kU];
  int32_t i[kI];
  float f[kF];

  QGNN_HD void clear() {
QGNN_UNROLL
    for (int r = 0; r < kU; ++r) u[r] = 0;
QGNN_UNROLL
    for (int r = 0; r < kI; ++r) i[r] = 0;
QGNN_UNROLL
    for (int r = 0; r < kF; ++r) f[r] = 0.f;
  }

  QGNN_HD void add(const uint32_t* w, float weight, int mult, int zero) {
QGNN_UNROLL
    for (int v = 0; v < VEC; ++v) {
      if constexpr (kMode == 0) swar16_add_word<BITS>(u + v * kSwarRegs, w[v]);
      else if constexpr (kMode == 1) i32_add_word<BITS>(i + v * kPerWord, w[v]);
      else f32_add_word<BITS>(f + v * kPerWord, w[v], weight, mult, zero);
    }
  }

  // Raw code sum (unweighted modes) of local code l.
  QGNN_HD int64_t raw(int l) const {
    if constexpr (kMode == 0) return swar16_get<BITS>(u + (l / kPerWord) * kSwarRegs, l % kPerWord);
    else if constexpr (kMode == 1) return i[l];
    else return 0;
  }

  // Output value of local code l of a row of `degree` edges (everything accumulated here).
  QGNN_HD float value(int l, const SpmmParams& p, int64_t degree, float rs) const {
    if constexpr (kMode == 2) return dequant_fsum(f[l], p.scale, rs);
    else return dequant_sum(fold_sum(raw(l), degree, p.mult, p.zero), p.scale, rs);
  }

  // Add this accumulator's partial sums into a scratch row (the chunk's kCodes entries).
  QGNN_HD void flush(Scratch* dst) const {
    QGNN_UNROLL
    for (int l = 0; l < kCodes; ++l) {
      if constexpr (kMode == 2) add_to(dst + l, f[l]);
      else add_to(dst + l, static_cast<int32_t>(raw(l)));
    }
  }
};

// Accumulate `count` edges e, e + step, ... of chunk `chunk`. count <= Acc::kBatch.
template <int BITS, int VEC, bool WEIGHTED>
QGNN_HD void accumulate_edges(ChunkAcc<BITS, VEC, WEIGHTED>& acc, const SpmmParams& p, int64_t chunk,
                              int64_t e, int64_t count, int64_t step) {
  const uint32_t* base = p.packed + chunk * VEC;
  int64_t t = 0;
  // Four independent row loads in flight per lane before any is consumed.
  for (; t + 4 <= count; t += 4) {
    uint32_t w[4][VEC];
    float wt[4];
QGNN_UNROLL
    for (int k = 0; k < 4; ++k) {
      const int64_t ei = e + (t + k) * step;
      load_words<VEC>(base + static_cast<int64_t>(p.indices[ei]) * p.words, w[k]);
      wt[k] = WEIGHTED ? p.values[ei] : 1.f;
    }
QGNN_UNROLL
    for (int k = 0; k < 4; ++k) acc.add(w[k], wt[k], p.mult, p.zero);
  }
  for (; t < count; ++t) {
    const int64_t ei = e + t * step;
    uint32_t w[VEC];
    load_words<VEC>(base + static_cast<int64_t>(p.indices[ei]) * p.words, w);
    acc.add(w, WEIGHTED ? p.values[ei] : 1.f, p.mult, p.zero);
  }
}

// Requantise output code f of row `row`, given its float value.
QGNN_HD uint32_t requant_code(const SpmmParams& p, float v) {
  return requant_one(v, p.out_bits, p.out_scale, p.out_zero, p.out_mult, p.out_skew);
}

// Write the chunk's outputs: floats, or codes ORed into the packed output words it touches (a
// word whose codes all lie in the chunk is stored; one shared with a neighbouring chunk is ORed).
// The loop runs over the chunk's codes with a compile-time trip count so that the accumulators
// stay in registers on the device.
template <int BITS, int VEC, bool WEIGHTED>
QGNN_HD void chunk_epilogue(const ChunkAcc<BITS, VEC, WEIGHTED>& acc, const SpmmParams& p, int64_t row,
                            int64_t chunk, int64_t degree) {
  using Acc = ChunkAcc<BITS, VEC, WEIGHTED>;
  const float rs = p.row_scale != nullptr ? p.row_scale[row] : 1.f;
  const int64_t f0 = chunk * Acc::kCodes;
  const int64_t f1 = (f0 + Acc::kCodes < p.cols) ? f0 + Acc::kCodes : p.cols;
  if (p.out_packed == nullptr) {
    float* dst = p.out + row * p.cols;
    if (f1 - f0 == Acc::kCodes && p.cols % 4 == 0) {  // whole chunk, 16-byte aligned: vector stores
      QGNN_UNROLL
      for (int l = 0; l < Acc::kCodes; l += 4)
        store4(dst + f0 + l, acc.value(l, p, degree, rs), acc.value(l + 1, p, degree, rs),
               acc.value(l + 2, p, degree, rs), acc.value(l + 3, p, degree, rs));
      return;
    }
    QGNN_UNROLL
    for (int l = 0; l < Acc::kCodes; ++l)
      if (f0 + l < f1) dst[f0 + l] = acc.value(l, p, degree, rs);
    return;
  }
  const int64_t per = 32 / p.out_bits;
  uint32_t word = 0;
  QGNN_UNROLL
  for (int l = 0; l < Acc::kCodes; ++l) {
    const int64_t f = f0 + l;
    if (f < f1) {
      const int64_t ow = f / per, pos = f - ow * per;
      word |= requant_code(p, acc.value(l, p, degree, rs)) << (pos * p.out_bits);
      if (pos == per - 1 || f == f1 - 1) {  // last code of this output word inside the chunk
        const int64_t w0 = ow * per;
        const int64_t w1 = (w0 + per < p.cols) ? w0 + per : p.cols;
        uint32_t* dst = p.out_packed + row * p.out_words + ow;
        if (w0 >= f0 && w1 <= f1) *dst = word;
        else or_to(dst, word);
        word = 0;
      }
    }
  }
}

// Kernel "short rows": the whole row for one chunk. Requires degree <= Acc::kBatch.
template <int BITS, int VEC, bool WEIGHTED>
QGNN_HD void short_row_chunk(const SpmmParams& p, int64_t row, int64_t chunk) {
  const int64_t begin = p.indptr[row], end = p.indptr[row + 1];
  ChunkAcc<BITS, VEC, WEIGHTED> acc;
  acc.clear();
  accumulate_edges(acc, p, chunk, begin, end - begin, 1);
  chunk_epilogue(acc, p, row, chunk, end - begin);
}

// Kernel "long rows", phase 1: group `group` of `num_groups` walks edges begin+group, +num_groups,
// ... of chunk `chunk` in batches of at most `batch` edges, adding partial sums into `scratch` (the
// row's sums, chunks * kCodes entries, zeroed before).
template <int BITS, int VEC, bool WEIGHTED>
QGNN_HD void long_row_partial(const SpmmParams& p, int64_t row, int64_t chunk, int64_t group, int64_t num_groups,
                              int64_t batch, typename ChunkAcc<BITS, VEC, WEIGHTED>::Scratch* scratch) {
  using Acc = ChunkAcc<BITS, VEC, WEIGHTED>;
  if (batch > Acc::kBatch) batch = Acc::kBatch;
  const int64_t first = p.indptr[row] + group, end = p.indptr[row + 1];
  if (first >= end) return;
  const int64_t count = (end - first + num_groups - 1) / num_groups;
  for (int64_t t0 = 0; t0 < count; t0 += batch) {
    const int64_t n = (count - t0 < batch) ? count - t0 : batch;
    Acc acc;
    acc.clear();
    accumulate_edges(acc, p, chunk, first + t0 * num_groups, n, num_groups);
    acc.flush(scratch + chunk * Acc::kCodes);
  }
}

// Kernel "long rows", phase 2: output item `item` of the row from its scratch sums: column `item`
// (float output) or output word `item` (packed output; each word has exactly one writer).
template <typename Scratch>
QGNN_HD float scratch_value(const SpmmParams& p, const Scratch* scratch, int64_t f, int64_t degree, float rs) {
  if (p.values != nullptr) return dequant_fsum(static_cast<float>(scratch[f]), p.scale, rs);
  return dequant_sum(fold_sum(static_cast<int64_t>(scratch[f]), degree, p.mult, p.zero), p.scale, rs);
}

template <typename Scratch>
QGNN_HD void long_row_epilogue_item(const SpmmParams& p, int64_t row, const Scratch* scratch, int64_t item) {
  const int64_t degree = p.indptr[row + 1] - p.indptr[row];
  const float rs = p.row_scale != nullptr ? p.row_scale[row] : 1.f;
  if (p.out_packed == nullptr) {
    p.out[row * p.cols + item] = scratch_value(p, scratch, item, degree, rs);
    return;
  }
  const int64_t per = 32 / p.out_bits;
  const int64_t w0 = item * per;
  const int64_t w1 = (w0 + per < p.cols) ? w0 + per : p.cols;
  uint32_t word = 0;
  for (int64_t f = w0; f < w1; ++f)
    word |= requant_code(p, scratch_value(p, scratch, f, degree, rs)) << ((f - w0) * p.out_bits);
  p.out_packed[row * p.out_words + item] = word;
}

// ---- quantize_pack / pack --------------------------------------------------------------------------

// Word `wi` of a row of `cols` floats, quantised on the grid and packed.
QGNN_HD uint32_t quantize_pack_word(const float* row, int64_t cols, int64_t wi, int bits, float scale, int zero,
                                    int mult, int skew) {
  const int64_t per = 32 / bits;
  const int64_t j1 = (wi + 1) * per < cols ? (wi + 1) * per : cols;
  uint32_t word = 0;
  for (int64_t j = wi * per; j < j1; ++j)
    word |= requant_one(row[j], bits, scale, zero, mult, skew) << ((j - wi * per) * bits);
  return word;
}

// Word `wi` of a row of `cols` uint8 codes (codes are masked to `bits` bits).
QGNN_HD uint32_t pack_word(const uint8_t* row, int64_t cols, int64_t wi, int bits) {
  const int64_t per = 32 / bits;
  const int64_t j1 = (wi + 1) * per < cols ? (wi + 1) * per : cols;
  const uint32_t mask = (1u << bits) - 1u;
  uint32_t word = 0;
  for (int64_t j = wi * per; j < j1; ++j) word |= (row[j] & mask) << ((j - wi * per) * bits);
  return word;
}

// ---- GEMM tiles ------------------------------------------------------------------------------------
//
// The GEMM walks k in tiles of kTileK = 64 codes; a row's tile is 16 byte-words (4 codes each).
// Packed word `wi` of the tile (of 64 * bits / 32) expands into byte-words wi * 8/bits onwards.

constexpr int kTileK = 64;
constexpr int kTileK4 = kTileK / 4;

QGNN_HD int tile_words(int bits) { return kTileK * bits / 32; }

// Expand packed word `wi` of k-tile `kt` of row `r` into out[0 .. 8/bits); zeros outside the matrix.
QGNN_HD void expand_tile_word(const uint32_t* m, int64_t rows, int64_t words, int64_t k, int bits, int64_t r,
                              int64_t kt, int wi, uint32_t* out) {
  const int64_t gw = kt * tile_words(bits) + wi;
  uint32_t w = 0;
  if (r < rows && gw < words) w = m[r * words + gw] & tail_mask(gw, k, bits);
  expand_bytes_rt(w, bits, out);
}

}  // namespace rows
}  // namespace qgnn

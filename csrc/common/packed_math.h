// Per-word integer math of the packed kernels: unpacking, integer accumulation, dot products,
// dequantisation and re-quantisation. Built on codes.h (the layout and the rounding rule).
//
// Every function is __host__ __device__ (QGNN_HD): the CUDA kernels in csrc/cuda call them, and
// tests/kernels/device_math_harness.cpp compiles the same code with g++ and checks it bit for bit
// against the PyTorch references in qgnn_cli/kernels/. Arithmetic that could round differently on
// the two sides is spelled out: float products and sums use the _rn intrinsics on the device (so
// nvcc cannot contract them into an FMA), true float division, round-half-even.
#pragma once

#include <cstdint>

#include "codes.h"

#if defined(__CUDACC__)
#define QGNN_UNROLL _Pragma("unroll")
#else
#define QGNN_UNROLL
#endif

namespace qgnn {
namespace pm {

// ---- float helpers that round the same on host and device ------------------------------------

QGNN_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

QGNN_HD float add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

QGNN_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

QGNN_HD float fma_rn(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}

QGNN_HD float round_even(float x) {
#if defined(__CUDA_ARCH__)
  return rintf(x);
#else
  return std::nearbyint(x);
#endif
}

QGNN_HD float int_to_float(int32_t v) {
#if defined(__CUDA_ARCH__)
  return __int2float_rn(v);
#else
  return static_cast<float>(v);  // round to nearest even in the default rounding mode
#endif
}

// ---- unpacking ----------------------------------------------------------------------------------

// Codes of one 32-bit word, LSB first: codes[j] for j < 32 / BITS.
template <int BITS>
QGNN_HD void unpack_word(uint32_t w, uint32_t* codes) {
QGNN_UNROLL
  for (int j = 0; j < 32 / BITS; ++j) codes[j] = get_code(&w, j, BITS);
}

// The last word of a row of `cols` codes with the bits past the row cleared (a defensive mask: the
// layout says they are zero, but a hand-made tensor may not honour it).
QGNN_HD uint32_t tail_mask(int64_t word, int64_t cols, int bits) {
  const int64_t per_word = 32 / bits;
  const int64_t valid = cols - word * per_word;
  if (valid >= per_word) return 0xFFFFFFFFu;
  if (valid <= 0) return 0u;
  return (1u << (valid * bits)) - 1u;
}

// ---- integer accumulation of codes ------------------------------------------------------------
//
// SWAR16: a word of BITS-bit codes is summed into 16/BITS registers of two 16-bit fields each.
// Register j holds code j (low half) and code j + 16/BITS (high half). A field can take
// `swar16_capacity(BITS)` words of maximal codes before it could overflow; callers flush before.

template <int BITS>
struct Swar16 {
  static constexpr int kRegs = 16 / BITS;
  static constexpr uint32_t kMask = ((1u << BITS) - 1u) * 0x00010001u;
  static constexpr int64_t kCapacity = 65535 / ((1 << BITS) - 1);
};

template <int BITS>
QGNN_HD void swar16_add_word(uint32_t* acc, uint32_t w) {
QGNN_UNROLL
  for (int j = 0; j < Swar16<BITS>::kRegs; ++j) acc[j] += (w >> (j * BITS)) & Swar16<BITS>::kMask;
}

// Sum for code j (0 <= j < 32 / BITS) of the word position that `acc` accumulates.
template <int BITS>
QGNN_HD uint32_t swar16_get(const uint32_t* acc, int j) {
  constexpr int R = Swar16<BITS>::kRegs;
  return j < R ? (acc[j] & 0xFFFFu) : (acc[j - R] >> 16);
}

// Plain int32 lanes: one per code.
template <int BITS>
QGNN_HD void i32_add_word(int32_t* acc, uint32_t w) {
QGNN_UNROLL
  for (int j = 0; j < 32 / BITS; ++j) acc[j] += static_cast<int32_t>(get_code(&w, j, BITS));
}

// Float lanes for weighted rows: acc[j] += weight * (mult * code_j - zero), one rounding per step.
template <int BITS>
QGNN_HD void f32_add_word(float* acc, uint32_t w, float weight, int mult, int zero) {
QGNN_UNROLL
  for (int j = 0; j < 32 / BITS; ++j) {
    const int32_t centred = mult * static_cast<int32_t>(get_code(&w, j, BITS)) - zero;
    acc[j] = fma_rn(weight, static_cast<float>(centred), acc[j]);
  }
}

// S = sum over `degree` edges of (mult * code - zero), from the plain sum of codes. Exact: the
// Python boundary guarantees degree * max(mult * qmax, zero) < 2^31.
QGNN_HD int32_t fold_sum(int64_t code_sum, int64_t degree, int mult, int zero) {
  return static_cast<int32_t>(static_cast<int64_t>(mult) * code_sum - degree * static_cast<int64_t>(zero));
}

// ---- dequantisation and re-quantisation --------------------------------------------------------

// out = float32(S) * scale * row_scale, left to right in float32 (kernels/spmm.py).
QGNN_HD float dequant_sum(int32_t s, float scale, float row_scale) {
  return mul_rn(mul_rn(int_to_float(s), scale), row_scale);
}

QGNN_HD float dequant_fsum(float s, float scale, float row_scale) {
  return mul_rn(mul_rn(s, scale), row_scale);
}

// The full grid rule of kernels/rounding.py (fine code, then the BT coarse code): codes.h's
// quantize_grid, the one C++ spelling of it, with an integer zero point.
QGNN_HD uint32_t requant_one(float x, int bits, float scale, int zero, int mult, int skew) {
  return quantize_grid(x, scale, static_cast<float>(zero), bits, mult, skew);
}

// ---- integer dot products (GEMM) ---------------------------------------------------------------
//
// A word of BITS-bit codes is spread into 8/BITS "byte words": byte t of out[q] is code 4q + t.
// Two rows in byte form (whatever their bit widths) then multiply with __dp4a, 4 codes a step.

template <int BITS>
QGNN_HD void expand_bytes(uint32_t w, uint32_t* out) {
  if (BITS == 8) {
    out[0] = w;
  } else if (BITS == 4) {
QGNN_UNROLL
    for (int q = 0; q < 2; ++q) {
      uint32_t x = (w >> (16 * q)) & 0xFFFFu;
      x = (x | (x << 8)) & 0x00FF00FFu;
      out[q] = (x | (x << 4)) & 0x0F0F0F0Fu;
    }
  } else if (BITS == 2) {
QGNN_UNROLL
    for (int q = 0; q < 4; ++q) {
      uint32_t x = (w >> (8 * q)) & 0xFFu;
      x = (x | (x << 12)) & 0x000F000Fu;
      out[q] = (x | (x << 6)) & 0x03030303u;
    }
  } else {  // BITS == 1
QGNN_UNROLL
    for (int q = 0; q < 8; ++q) {
      uint32_t x = (w >> (4 * q)) & 0xFu;
      x = (x | (x << 14)) & 0x00030003u;
      out[q] = (x | (x << 7)) & 0x01010101u;
    }
  }
}

// Run-time bit width version (GEMM tile loaders; the cost is outside the inner loop).
QGNN_HD void expand_bytes_rt(uint32_t w, int bits, uint32_t* out) {
  switch (bits) {
    case 1: expand_bytes<1>(w, out); break;
    case 2: expand_bytes<2>(w, out); break;
    case 4: expand_bytes<4>(w, out); break;
    default: expand_bytes<8>(w, out); break;
  }
}

// c + sum of the four unsigned byte products of a and b.
QGNN_HD uint32_t dp4a_u8(uint32_t a, uint32_t b, uint32_t c) {
#if defined(__CUDA_ARCH__)
  return __dp4a(a, b, c);
#else
  for (int t = 0; t < 4; ++t) c += ((a >> (8 * t)) & 0xFFu) * ((b >> (8 * t)) & 0xFFu);
  return c;
#endif
}

// Sum of the codes of a packed row of `cols` codes (padding bits masked off).
QGNN_HD int32_t row_code_sum(const uint32_t* row, int64_t words, int64_t cols, int bits) {
  uint32_t sum = 0;
  uint32_t bytes[8];
  for (int64_t wi = 0; wi < words; ++wi) {
    expand_bytes_rt(row[wi] & tail_mask(wi, cols, bits), bits, bytes);
    for (int q = 0; q < 8 / bits; ++q) sum = dp4a_u8(bytes[q], 0x01010101u, sum);
  }
  return static_cast<int32_t>(sum);
}

// D = sum_k (am*qa - az)(wm*qw - wz) from P = sum qa*qw and the code sums sa, sw. Exact: the
// Python boundary guarantees k * 255 * 255 < 2^31, so D and every term fit in int64 trivially.
QGNN_HD int32_t fold_dot(int64_t p, int64_t sa, int64_t sw, int64_t k, int am, int az, int wm, int wz) {
  const int64_t d = static_cast<int64_t>(am) * wm * p - static_cast<int64_t>(am) * wz * sa -
                    static_cast<int64_t>(az) * wm * sw + k * az * wz;
  return static_cast<int32_t>(d);
}

// out = float32(D) * (a_scale * w_scale) + bias (kernels/gemm.py), no FMA.
QGNN_HD float gemm_epilogue(int32_t d, float a_scale, float w_scale, const float* bias_c) {
  const float v = mul_rn(int_to_float(d), mul_rn(a_scale, w_scale));
  return bias_c != nullptr ? add_rn(v, *bias_c) : v;
}

}  // namespace pm
}  // namespace qgnn

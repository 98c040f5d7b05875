// Per-element math of the packed format, shared by the CPU and CUDA kernels.
//
// Layout and rounding rule are defined in qgnn_cli/kernels/pack.py and
// qgnn_cli/kernels/rounding.py; these functions are their C++ spelling. They are
// __host__ __device__ so the CUDA kernels use exactly the code the CPU build tests.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define QGNN_HD __host__ __device__ __forceinline__
#else
#define QGNN_HD inline
#endif

namespace qgnn {

// Number of 32-bit words holding `cols` codes of `bits` bits.
QGNN_HD int64_t words_per_row(int64_t cols, int bits) { return (cols * bits + 31) / 32; }

// Code j of a packed row.
QGNN_HD uint32_t get_code(const uint32_t* row, int64_t j, int bits) {
  const int per_word = 32 / bits;
  const uint32_t mask = (bits == 32) ? 0xFFFFFFFFu : ((1u << bits) - 1u);
  return (row[j / per_word] >> ((j % per_word) * bits)) & mask;
}

// Code j of a packed row of BITS-bit codes: the width a constant, so the word index and shift are
// shifts and masks (a run-time width divides per code, which hot loops notice).
template <int BITS>
QGNN_HD uint32_t get_code(const uint32_t* row, int64_t j) {
  constexpr int64_t per_word = 32 / BITS;
  return (row[j / per_word] >> ((j % per_word) * BITS)) & ((1u << BITS) - 1u);
}

// OR code `code` (already < 2^bits) into position j of a zero-initialised packed row.
QGNN_HD void put_code(uint32_t* row, int64_t j, int bits, uint32_t code) {
  const int per_word = 32 / bits;
  row[j / per_word] |= code << ((j % per_word) * bits);
}

// The rounding rule: code = clamp(round_half_even(x / scale) + zero, 0, qmax).
QGNN_HD uint32_t quantize_one(float x, float scale, float zero, float qmax) {
#if defined(__CUDA_ARCH__)
  float q = rintf(__fdiv_rn(x, scale)) + zero;
#else
  float q = std::nearbyint(x / scale) + zero;
#endif
  q = q < 0.f ? 0.f : (q > qmax ? qmax : q);
  return static_cast<uint32_t>(q);
}

QGNN_HD float dequantize_one(uint32_t code, float scale, float zero) {
  return (static_cast<float>(code) - zero) * scale;
}

}  // namespace qgnn

namespace qgnn {

// The full grid rule of rounding.py (BT/BT* included): for mult = 1 and skew = 0 this is
// quantize_one with qmax = 2^bits - 1; otherwise the fine-grid code is rounded to a multiple of
// mult: code = clamp(round((base + skew) / mult), 0, qmax), all in float32.
QGNN_HD uint32_t quantize_grid(float x, float scale, float zero, int bits, int mult, int skew) {
  const float qmax = static_cast<float>((1u << bits) - 1u);
  const uint32_t base = quantize_one(x, scale, zero, qmax * static_cast<float>(mult));
  if (mult == 1 && skew == 0) return base;
#if defined(__CUDA_ARCH__)
  float q = rintf(__fdiv_rn(static_cast<float>(base) + static_cast<float>(skew), static_cast<float>(mult)));
#else
  float q = std::nearbyint((static_cast<float>(base) + static_cast<float>(skew)) / static_cast<float>(mult));
#endif
  q = q < 0.f ? 0.f : (q > qmax ? qmax : q);
  return static_cast<uint32_t>(q);
}

}  // namespace qgnn

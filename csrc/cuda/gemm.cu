// qgnn::gemm on the GPU: packed activations (n x k) times packed weights (o x k), zero points
// folded through row and column code sums, float32 epilogue.
//
// Path: codes are unpacked to unsigned bytes in registers while a 64 x 64 output tile's k-slice is
// staged in shared memory (csrc/common/packed_rows.h: expand_tile_word), then multiplied four at a
// time with __dp4a (u8 x u8 -> u32, exact). Each of the 256 threads owns a 4 x 4 block of outputs.
// The per-element math (expansion, dp4a, folding, epilogue) is in csrc/common/packed_math.h and is
// tested on the CPU; this file is the thread mapping. The int8 tensor-core path (mma.sync
// m16n8k32 .u8) and torch._int_mm are left for a session with a GPU to measure (docs/CUDA.md).
#include <cuda_runtime.h>

#include "launchers.h"

namespace qgnn {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kTile = 64;                  // rows of A and of W per block
constexpr int kK4 = rows::kTileK4;         // byte-words (4 codes) per k-slice
constexpr int kPitch = kK4 + 1;            // shared-memory row pitch, avoids bank conflicts

__global__ void row_code_sums_kernel(const uint32_t* __restrict__ packed, int64_t rows, int64_t words, int64_t cols,
                                     int bits, int32_t* __restrict__ sums) {
  for (int64_t r = blockIdx.x * int64_t{kThreads} + threadIdx.x; r < rows; r += int64_t{gridDim.x} * kThreads)
    sums[r] = pm::row_code_sum(packed + r * words, words, cols, bits);
}

// Stage the k-slice `kt` of rows [r0, r0 + 64) of a packed matrix as byte-words in shared memory.
__device__ void stage(uint32_t (*tile)[kPitch], const uint32_t* m, int64_t rows, int64_t words, int64_t k, int bits,
                      int64_t r0, int64_t kt) {
  const int tw = rows::tile_words(bits);  // packed words of the slice per row
  const int spread = 8 / bits;            // byte-words per packed word
  for (int t = threadIdx.x; t < kTile * tw; t += kThreads) {
    const int r = t / tw, wi = t % tw;
    rows::expand_tile_word(m, rows, words, k, bits, r0 + r, kt, wi, &tile[r][wi * spread]);
  }
}

__global__ void __launch_bounds__(kThreads) gemm_dp4a_kernel(GemmParams g) {
  __shared__ uint32_t as[kTile][kPitch];
  __shared__ uint32_t ws[kTile][kPitch];
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t r0 = int64_t{blockIdx.x} * kTile, c0 = int64_t{blockIdx.y} * kTile;
  uint32_t acc[4][4] = {};
  const int64_t slices = (g.k + rows::kTileK - 1) / rows::kTileK;
  for (int64_t kt = 0; kt < slices; ++kt) {
    stage(as, g.a, g.n, g.a_words, g.k, g.a_bits, r0, kt);
    stage(ws, g.w, g.o, g.w_words, g.k, g.w_bits, c0, kt);
    __syncthreads();
#pragma unroll 4
    for (int q = 0; q < kK4; ++q) {
      uint32_t a[4], w[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = as[ty + 16 * i][q];
#pragma unroll
      for (int j = 0; j < 4; ++j) w[j] = ws[tx + 16 * j][q];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] = pm::dp4a_u8(a[i], w[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int64_t r = r0 + ty + 16 * i;
    if (r >= g.n) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t c = c0 + tx + 16 * j;
      if (c >= g.o) continue;
      const int32_t d = pm::fold_dot(acc[i][j], g.a_sums[r], g.w_sums[c], g.k, g.a_mult, g.a_zero, g.w_mult,
                                     g.w_zero[c]);
      g.out[r * g.o + c] = pm::gemm_epilogue(d, g.a_scale, g.w_scale[c], g.bias != nullptr ? g.bias + c : nullptr);
    }
  }
}

unsigned grid_for(int64_t items) {
  const int64_t b = (items + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535 * 8 ? b : 65535 * 8);
}

}  // namespace

cudaError_t launch_row_code_sums(const uint32_t* packed, int64_t rows, int64_t words, int64_t cols, int bits,
                                 int32_t* sums, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  row_code_sums_kernel<<<grid_for(rows), kThreads, 0, stream>>>(packed, rows, words, cols, bits, sums);
  return cudaGetLastError();
}

cudaError_t launch_gemm(const GemmParams& g, cudaStream_t stream) {
  if (g.n == 0 || g.o == 0) return cudaSuccess;
  const int64_t row_tiles = (g.n + kTile - 1) / kTile, col_tiles = (g.o + kTile - 1) / kTile;
  if (col_tiles > 65535) return cudaErrorInvalidConfiguration;  // > 4M output channels
  const dim3 grid(static_cast<unsigned>(row_tiles), static_cast<unsigned>(col_tiles));
  gemm_dp4a_kernel<<<grid, kThreads, 0, stream>>>(g);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace qgnn

// qgnn::pack / unpack / quantize_pack on the GPU: one thread per packed word (or per code).
// The per-word bodies live in csrc/common/packed_rows.h and are tested on the CPU.
#include <cuda_runtime.h>

#include "launchers.h"

namespace qgnn {
namespace cuda {
namespace {

constexpr int kThreads = 256;

int64_t blocks_for(int64_t items) { return (items + kThreads - 1) / kThreads; }

__global__ void pack_kernel(const uint8_t* __restrict__ codes, int64_t rows, int64_t cols, int64_t words, int bits,
                            uint32_t* __restrict__ out) {
  const int64_t total = rows * words;
  for (int64_t t = blockIdx.x * int64_t{kThreads} + threadIdx.x; t < total; t += int64_t{gridDim.x} * kThreads) {
    const int64_t r = t / words, wi = t % words;
    out[t] = rows::pack_word(codes + r * cols, cols, wi, bits);
  }
}

__global__ void unpack_kernel(const uint32_t* __restrict__ packed, int64_t rows, int64_t cols, int64_t words,
                              int bits, uint8_t* __restrict__ out) {
  const int64_t total = rows * cols;
  for (int64_t t = blockIdx.x * int64_t{kThreads} + threadIdx.x; t < total; t += int64_t{gridDim.x} * kThreads) {
    const int64_t r = t / cols, j = t % cols;
    out[t] = static_cast<uint8_t>(get_code(packed + r * words, j, bits));
  }
}

__global__ void quantize_pack_kernel(const float* __restrict__ x, int64_t rows, int64_t cols, int64_t words,
                                     int bits, float scale, int zero, int mult, int skew,
                                     uint32_t* __restrict__ out) {
  const int64_t total = rows * words;
  for (int64_t t = blockIdx.x * int64_t{kThreads} + threadIdx.x; t < total; t += int64_t{gridDim.x} * kThreads) {
    const int64_t r = t / words, wi = t % words;
    out[t] = rows::quantize_pack_word(x + r * cols, cols, wi, bits, scale, zero, mult, skew);
  }
}

// Grid-stride loops: cap the grid so that huge tensors never overflow gridDim.x.
unsigned grid_for(int64_t items) {
  const int64_t b = blocks_for(items);
  return static_cast<unsigned>(b < 65535 * 8 ? b : 65535 * 8);
}

}  // namespace

cudaError_t launch_pack(const uint8_t* codes, int64_t rows, int64_t cols, int bits, uint32_t* out,
                        cudaStream_t stream) {
  const int64_t words = words_per_row(cols, bits);
  if (rows * words == 0) return cudaSuccess;
  pack_kernel<<<grid_for(rows * words), kThreads, 0, stream>>>(codes, rows, cols, words, bits, out);
  return cudaGetLastError();
}

cudaError_t launch_unpack(const uint32_t* packed, int64_t rows, int64_t cols, int bits, uint8_t* out,
                          cudaStream_t stream) {
  if (rows * cols == 0) return cudaSuccess;
  const int64_t words = words_per_row(cols, bits);
  unpack_kernel<<<grid_for(rows * cols), kThreads, 0, stream>>>(packed, rows, cols, words, bits, out);
  return cudaGetLastError();
}

cudaError_t launch_quantize_pack(const float* x, int64_t rows, int64_t cols, int bits, float scale, int zero,
                                 int mult, int skew, uint32_t* out, cudaStream_t stream) {
  const int64_t words = words_per_row(cols, bits);
  if (rows * words == 0) return cudaSuccess;
  quantize_pack_kernel<<<grid_for(rows * words), kThreads, 0, stream>>>(x, rows, cols, words, bits, scale, zero,
                                                                        mult, skew, out);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace qgnn

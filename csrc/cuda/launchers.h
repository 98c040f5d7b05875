// Launchers of the packed CUDA kernels: plain CUDA over raw device pointers and a stream, no torch.
//
// csrc/cuda/ops.cpp (compiled only where torch has CUDA) checks tensors and calls these; the .cu
// files compile with a bare nvcc (tests/kernels/test_cuda_compile.py). Every launcher returns the
// launch status (cudaGetLastError) and never synchronises.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "../common/packed_rows.h"

namespace qgnn {
namespace cuda {

// ---- pack.cu -------------------------------------------------------------------------------------
cudaError_t launch_pack(const uint8_t* codes, int64_t rows, int64_t cols, int bits, uint32_t* out,
                        cudaStream_t stream);
cudaError_t launch_unpack(const uint32_t* packed, int64_t rows, int64_t cols, int bits, uint8_t* out,
                          cudaStream_t stream);
cudaError_t launch_quantize_pack(const float* x, int64_t rows, int64_t cols, int bits, float scale, int zero,
                                 int mult, int skew, uint32_t* out, cudaStream_t stream);

// ---- spmm.cu -------------------------------------------------------------------------------------
// Rows with more than `long_row` edges go to the block-per-row kernel (clamped to what the
// accumulators hold between flushes). `long_blocks` blocks serve them (e.g. 2 x the SM count).
struct SpmmLaunch {
  rows::SpmmParams p;
  int64_t long_row = 512;
  int long_blocks = 264;
};

// Bytes of device workspace launch_spmm needs (worklist, counter, per-block scratch rows).
size_t spmm_workspace_bytes(const SpmmLaunch& launch);

// p.out (float) or p.out_packed (zero-initialised) must be set; `workspace` holds
// spmm_workspace_bytes(launch) bytes, 16-byte aligned.
cudaError_t launch_spmm(const SpmmLaunch& launch, void* workspace, cudaStream_t stream);

// ---- gemm.cu -------------------------------------------------------------------------------------
// Code sums of each row of a packed matrix (the zero-point folding terms).
cudaError_t launch_row_code_sums(const uint32_t* packed, int64_t rows, int64_t words, int64_t cols, int bits,
                                 int32_t* sums, cudaStream_t stream);

struct GemmParams {
  const uint32_t* a = nullptr;  // [n, a_words]
  int64_t n = 0;
  int64_t a_words = 0;
  int a_bits = 2, a_mult = 1, a_zero = 0;
  float a_scale = 1.f;
  const uint32_t* w = nullptr;  // [o, w_words]
  int64_t o = 0;
  int64_t w_words = 0;
  int w_bits = 2, w_mult = 1;
  const float* w_scale = nullptr;  // [o]
  const int32_t* w_zero = nullptr;  // [o]
  const float* bias = nullptr;      // [o] or null
  int64_t k = 0;
  const int32_t* a_sums = nullptr;  // [n] from launch_row_code_sums
  const int32_t* w_sums = nullptr;  // [o]
  float* out = nullptr;             // [n, o]
};

cudaError_t launch_gemm(const GemmParams& g, cudaStream_t stream);

}  // namespace cuda
}  // namespace qgnn

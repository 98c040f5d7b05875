// qgnn::spmm / qgnn::spmm_requant on the GPU.
//
// Work split (docs/CUDA.md): a packed row of `words` words is cut into chunks of VEC words (one
// 16-byte uint4 load per edge when the layout allows, else 8 or 4 bytes); a group of G lanes
// (G = the chunk count rounded up to a power of two, at most a warp) serves one destination row,
// each lane walking the row's edges for its chunk(s) and accumulating integers (SWAR16 fields for
// codes of <= 4 bits, int32 for 8 bits, float for weighted rows).
//
// Degree skew: a row with more than `long_row` edges is not walked by its group; its lane 0 appends
// it to a worklist, and a second kernel gives each such row a whole block whose groups take strided
// subsets of its edges and add their partial sums into a per-block scratch row (integer atomics:
// exact in any order), then run the epilogue. Both kernels call the row bodies in
// csrc/common/packed_rows.h, which the CPU tests exercise through tests/kernels/device_math_harness.cpp.
#include <cuda_runtime.h>

#include "launchers.h"

namespace qgnn {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <int BITS, int VEC, bool WEIGHTED>
__global__ void __launch_bounds__(kThreads)
    spmm_short_kernel(rows::SpmmParams p, int group_size, int64_t chunks, int64_t long_row,
                      int32_t* __restrict__ worklist, int32_t* __restrict__ count) {
  const int lane = threadIdx.x & (group_size - 1);
  const int64_t row = blockIdx.x * int64_t{kThreads / group_size} + threadIdx.x / group_size;
  if (row >= p.num_rows) return;
  const int64_t degree = p.indptr[row + 1] - p.indptr[row];
  if (degree > long_row) {
    if (lane == 0) worklist[atomicAdd(count, 1)] = static_cast<int32_t>(row);
    return;
  }
  for (int64_t c = lane; c < chunks; c += group_size) rows::short_row_chunk<BITS, VEC, WEIGHTED>(p, row, c);
}

template <int BITS, int VEC, bool WEIGHTED>
__global__ void __launch_bounds__(kThreads)
    spmm_long_kernel(rows::SpmmParams p, int group_size, int64_t chunks, const int32_t* __restrict__ worklist,
                     const int32_t* __restrict__ count,
                     typename rows::ChunkAcc<BITS, VEC, WEIGHTED>::Scratch* __restrict__ scratch_all) {
  using Acc = rows::ChunkAcc<BITS, VEC, WEIGHTED>;
  const int64_t padded = chunks * Acc::kCodes;
  auto* scratch = scratch_all + blockIdx.x * padded;
  const int lane = threadIdx.x & (group_size - 1);
  const int group = threadIdx.x / group_size;
  const int groups = kThreads / group_size;
  const int n = *count;  // written by spmm_short_kernel, earlier on the same stream
  const int64_t items = p.out_packed != nullptr ? p.out_words : p.cols;
  for (int item = blockIdx.x; item < n; item += gridDim.x) {
    const int64_t row = worklist[item];
    for (int64_t t = threadIdx.x; t < padded; t += kThreads) scratch[t] = 0;
    __syncthreads();
    for (int64_t c = lane; c < chunks; c += group_size)
      rows::long_row_partial<BITS, VEC, WEIGHTED>(p, row, c, group, groups, Acc::kBatch, scratch);
    __syncthreads();
    for (int64_t t = threadIdx.x; t < items; t += kThreads) rows::long_row_epilogue_item(p, row, scratch, t);
    __syncthreads();
  }
}

struct Workspace {
  int32_t* count;
  int32_t* worklist;
  void* scratch;
};

size_t align16(size_t n) { return (n + 15) / 16 * 16; }

Workspace carve(const SpmmLaunch& l, void* base) {
  char* b = static_cast<char*>(base);
  Workspace w;
  w.count = reinterpret_cast<int32_t*>(b);
  w.worklist = reinterpret_cast<int32_t*>(b + 16);
  w.scratch = b + 16 + align16(sizeof(int32_t) * static_cast<size_t>(l.p.num_rows));
  return w;
}

// Widest load a lane may use for this bit width: keeps each lane near <= 32 accumulator registers.
constexpr int max_vec(int bits, bool weighted) {
  return !weighted ? (bits == 1 ? 2 : 4) : (bits == 8 ? 4 : (bits == 4 ? 2 : 1));
}

int choose_vec(const rows::SpmmParams& p) {
  const int v = max_vec(p.bits, p.values != nullptr);
  const bool aligned = reinterpret_cast<uintptr_t>(p.packed) % (4 * v) == 0 && p.words % v == 0;
  return aligned ? v : 1;
}

int group_size_for(int64_t chunks) {
  int g = 1;
  while (g < chunks && g < 32) g *= 2;
  return g;
}

template <int BITS, int VEC, bool WEIGHTED>
cudaError_t run(const SpmmLaunch& l, void* workspace, cudaStream_t stream) {
  using Acc = rows::ChunkAcc<BITS, VEC, WEIGHTED>;
  const rows::SpmmParams& p = l.p;
  const int64_t chunks = p.words / VEC;
  const int g = group_size_for(chunks);
  const int64_t long_row = l.long_row < Acc::kBatch ? l.long_row : Acc::kBatch;
  Workspace w = carve(l, workspace);
  cudaError_t err = cudaMemsetAsync(w.count, 0, sizeof(int32_t), stream);
  if (err != cudaSuccess) return err;
  const int64_t rows_per_block = kThreads / g;
  const int64_t blocks = (p.num_rows + rows_per_block - 1) / rows_per_block;
  spmm_short_kernel<BITS, VEC, WEIGHTED>
      <<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(p, g, chunks, long_row, w.worklist, w.count);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  spmm_long_kernel<BITS, VEC, WEIGHTED><<<static_cast<unsigned>(l.long_blocks), kThreads, 0, stream>>>(
      p, g, chunks, w.worklist, w.count, static_cast<typename Acc::Scratch*>(w.scratch));
  return cudaGetLastError();
}

// Two instantiations per (bits, weighted): the widest load, and single words for rows whose width
// or alignment does not allow it.
template <int BITS, bool WEIGHTED>
cudaError_t run_vec(const SpmmLaunch& l, void* workspace, cudaStream_t stream) {
  constexpr int kVec = max_vec(BITS, WEIGHTED);
  if (choose_vec(l.p) == kVec) return run<BITS, kVec, WEIGHTED>(l, workspace, stream);
  return run<BITS, 1, WEIGHTED>(l, workspace, stream);
}

template <int BITS>
cudaError_t run_bits(const SpmmLaunch& l, void* workspace, cudaStream_t stream) {
  return l.p.values != nullptr ? run_vec<BITS, true>(l, workspace, stream)
                               : run_vec<BITS, false>(l, workspace, stream);
}

}  // namespace

size_t spmm_workspace_bytes(const SpmmLaunch& l) {
  const int v = choose_vec(l.p);
  const int64_t chunks = v > 0 ? l.p.words / v : 0;
  const int64_t padded = chunks * v * (32 / l.p.bits);
  return 16 + align16(sizeof(int32_t) * static_cast<size_t>(l.p.num_rows)) +
         sizeof(int32_t) * static_cast<size_t>(l.long_blocks) * static_cast<size_t>(padded);
}

cudaError_t launch_spmm(const SpmmLaunch& l, void* workspace, cudaStream_t stream) {
  if (l.p.num_rows == 0 || l.p.cols == 0) return cudaSuccess;
  if (l.long_blocks < 1) return cudaErrorInvalidValue;
  switch (l.p.bits) {
    case 1: return run_bits<1>(l, workspace, stream);
    case 2: return run_bits<2>(l, workspace, stream);
    case 4: return run_bits<4>(l, workspace, stream);
    case 8: return run_bits<8>(l, workspace, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace cuda
}  // namespace qgnn

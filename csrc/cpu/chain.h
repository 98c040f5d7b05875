// Torch-side reading of an epilogue chain (the ``chain``, ``chain_row``, ``chain_col`` arguments of
// qgnn::spmm_requant and qgnn::gemm_requant; qgnn_cli/kernels/chain.py) into kernels.h's Chain.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "kernels.h"

namespace qgnn {
namespace cpu {

// The tensors a Chain points into, kept alive (and contiguous) for the duration of the call.
struct ChainHold {
  Chain chain{};
  at::Tensor row, col;
};

// Validates every stage (kind, grid, vector lengths: `rows` rows, `cols` columns) so that no kernel
// reads out of bounds. Returns false when there is no chain (or it has no stages).
bool read_chain(const c10::optional<at::Tensor>& chain, const c10::optional<at::Tensor>& chain_row,
                const c10::optional<at::Tensor>& chain_col, int64_t rows, int64_t cols, ChainHold* hold);

// A ChainPlan and the thresholds it points to.
struct PlanHold {
  ChainPlan plan{};
  std::vector<float> thr;
};

// The epilogue `chain` (or none) then `out` as a ChainPlan, when the AVX-512 path runs (or the AVX2
// path, for an output grid of 2, 4 or 8 bits), the shape qualifies (counted grid of at most 2 bits,
// or 4 where the caller compares integers, `int_compares`: the AVX-512 GEMM's thresholds on D, and
// the chain has stages; no mul_row before the counted grid; no add_col after it) and `rows` repay
// the bisection (QGNN_CHAIN_PLAN=always / never overrides that, for tests and measurements). Returns
// nullptr otherwise: the kernels then run the chain's stages.
const ChainPlan* plan_chain(const Chain* chain, const Grid& out, int64_t rows, int64_t cols, PlanHold* hold,
                            bool int_compares = false);

// QGNN_CHAIN_PLAN=floats: as "always", but a GEMM keeps comparing its float values instead of moving
// the thresholds onto its integer D (gemm.cpp), so that tests hold both to the reference.
bool plan_on_floats();

}  // namespace cpu
}  // namespace qgnn

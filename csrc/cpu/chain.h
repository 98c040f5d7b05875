// Torch-side reading of an epilogue chain (the ``chain``, ``chain_row``, ``chain_col`` arguments of
// qgnn::spmm_requant and qgnn::gemm_requant; qgnn_cli/kernels/chain.py) into kernels.h's Chain.
#pragma once

#include <ATen/ATen.h>

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

}  // namespace cpu
}  // namespace qgnn

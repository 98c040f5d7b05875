// Epilogue chains (kernels.h, qgnn_cli/kernels/chain.py): the scalar path and the torch-side reader.
//
// Built for the baseline ISA with -ffp-contract=off (setup.py): every product and sum rounds to
// float32 on its own, as the PyTorch reference computes them.
#include "chain.h"

#include <cmath>

#include "../common/codes.h"

namespace qgnn {
namespace cpu {

void apply_chain_scalar(const Chain& c, float* y, int64_t cols, int64_t row) {
  for (int s = 0; s < c.n; ++s) {
    switch (c.op[s]) {
      case kChainFakeQuant: {
        const Grid& g = c.grid[s];
        for (int64_t j = 0; j < cols; ++j) {
          const int32_t code = static_cast<int32_t>(
              quantize_grid(y[j], g.scale, static_cast<float>(g.zero), g.bits, g.mult, g.skew));
          y[j] = static_cast<float>(code * g.mult - g.zero) * g.scale;
        }
        break;
      }
      case kChainMulRow: {
        const float r = c.row[row];
        for (int64_t j = 0; j < cols; ++j) y[j] = y[j] * r;
        break;
      }
      case kChainAddCol:
        for (int64_t j = 0; j < cols; ++j) y[j] = y[j] + c.col[j];
        break;
      default:  // kChainRelu
        for (int64_t j = 0; j < cols; ++j) y[j] = y[j] < 0.0f ? 0.0f : y[j];  // NaN stays NaN, as torch.relu
        break;
    }
  }
}

namespace {

at::Tensor vector_arg(const c10::optional<at::Tensor>& t, int64_t n, const char* name) {
  TORCH_CHECK(t.has_value(), "the chain has a stage that needs ", name);
  TORCH_CHECK(t->scalar_type() == at::kFloat && t->dim() == 1 && t->numel() == n, name,
              " must be 1-D float32 with ", n, " entries");
  return t->contiguous();
}

}  // namespace

bool read_chain(const c10::optional<at::Tensor>& chain, const c10::optional<at::Tensor>& chain_row,
                const c10::optional<at::Tensor>& chain_col, int64_t rows, int64_t cols, ChainHold* hold) {
  if (!chain.has_value()) return false;
  TORCH_CHECK(chain->scalar_type() == at::kDouble && chain->dim() == 2 && chain->size(1) == 6,
              "chain must be a 2-D float64 tensor of (kind, bits, scale, zero, mult, skew) rows");
  const int64_t n = chain->size(0);
  TORCH_CHECK(n <= kMaxChainStages, "a chain has at most ", kMaxChainStages, " stages, got ", n);
  if (n == 0) return false;
  const at::Tensor spec = chain->contiguous();
  const double* p = spec.data_ptr<double>();
  Chain& c = hold->chain;
  c.n = static_cast<int>(n);
  for (int64_t s = 0; s < n; ++s) {
    const double* st = p + 6 * s;
    const int kind = static_cast<int>(st[0]);
    TORCH_CHECK(st[0] == kind && kind >= kChainFakeQuant && kind <= kChainRelu, "unknown chain stage ", st[0]);
    c.op[s] = kind;
    if (kind == kChainFakeQuant) {
      const int bits = static_cast<int>(st[1]), zero = static_cast<int>(st[3]), mult = static_cast<int>(st[4]),
                skew = static_cast<int>(st[5]);
      TORCH_CHECK(bits == 1 || bits == 2 || bits == 4 || bits == 8, "chain stage ", s, ": unsupported bit width ", st[1]);
      TORCH_CHECK(mult >= 1 && mult * ((1 << bits) - 1) <= 255, "chain stage ", s, ": mult exceeds the 8-bit grid");
      TORCH_CHECK(zero >= 0 && zero <= mult * ((1 << bits) - 1), "chain stage ", s, ": zero point outside the grid");
      TORCH_CHECK(skew >= -255 && skew <= 255, "chain stage ", s, ": skew outside [-255, 255]");
      const float scale = static_cast<float>(st[2]);
      TORCH_CHECK(scale > 0.0f && std::isfinite(scale), "chain stage ", s, ": scale must be positive and finite");
      c.grid[s] = Grid{bits, scale, zero, mult, skew};
    } else if (kind == kChainMulRow && !hold->row.defined()) {
      hold->row = vector_arg(chain_row, rows, "chain_row");
    } else if (kind == kChainAddCol && !hold->col.defined()) {
      hold->col = vector_arg(chain_col, cols, "chain_col");
    }
  }
  c.row = hold->row.defined() ? hold->row.data_ptr<float>() : nullptr;
  c.col = hold->col.defined() ? hold->col.data_ptr<float>() : nullptr;
  return true;
}

}  // namespace cpu
}  // namespace qgnn

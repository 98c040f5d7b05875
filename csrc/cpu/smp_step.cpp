// qgnn::smp_delta and qgnn::smp_update for CPU tensors: torch glue, the generic kernels, and run-time
// dispatch to the AVX-512 unit (kernels.h). Semantics: qgnn_cli/kernels/smp.py.
//
// Inputs are validated in qgnn_cli/kernels/smp.py; the glue re-checks every shape, dtype and grid
// (cheap), so a direct torch.ops call cannot make a kernel read or write out of bounds.
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "../common/codes.h"
#include "isa.h"
#include "kernels.h"
#include "output_cache.h"

// Products and sums stay separate, as in the float32 PyTorch reference (no FMA contraction).
#pragma GCC optimize("fp-contract=off")

namespace qgnn {
namespace cpu {

int64_t smp_scratch_floats(int64_t cols) { return 2 * ((cols + 15) / 16 * 16) + 16; }

namespace {

inline float value_of(const uint32_t* row, int64_t j, const Grid& g) {
  return static_cast<float>(static_cast<int32_t>(get_code(row, j, g.bits)) * g.mult - g.zero) * g.scale;
}

inline uint32_t code_of(float x, const Grid& g) {
  return quantize_grid(x, g.scale, static_cast<float>(g.zero), g.bits, g.mult, g.skew);
}

inline bool on(const Grid& g) { return g.bits != 32; }

// x, x_half and dx of element j of row i (nn.smp.smp_propagate's order: (keep x + smooth ax) + eta h).
struct Half {
  float x, half, dx;
};
inline Half half_of(const SmpStepArgs& a, int64_t i, int64_t j) {
  const float x = value_of(a.in[0] + i * a.in_words[0], j, a.grid[0]);
  const float ax = value_of(a.in[1] + i * a.in_words[1], j, a.grid[1]);
  const float h = value_of(a.in[2] + i * a.in_words[2], j, a.grid[2]);
  float half = a.keep * x;
  half = half + a.smooth * ax;
  half = half + a.eta * h;
  return {x, half, half - x};
}

}  // namespace

double smp_delta_rows_generic(const SmpStepArgs& a, int64_t r0, int64_t r1, float*) {
  double sq = 0.0;
  for (int64_t i = r0; i < r1; ++i) {
    uint32_t* dst = a.out_codes + i * a.out_words;
    std::memset(dst, 0, sizeof(uint32_t) * a.out_words);
    const float di = a.dinv[i];
    for (int64_t j = 0; j < a.cols; ++j) {
      const float dx = half_of(a, i, j).dx;
      if (a.out_float != nullptr) a.out_float[i * a.cols + j] = dx;
      sq += static_cast<double>(dx) * static_cast<double>(dx);
      put_code(dst, j, a.grid[3].bits, code_of(dx * di, a.grid[3]));
    }
  }
  return sq;
}

double smp_update_rows_generic(const SmpStepArgs& a, int64_t r0, int64_t r1, float*) {
  double cross = 0.0;
  const Grid &gu = a.grid[4], &gn = a.grid[5];
  for (int64_t i = r0; i < r1; ++i) {
    uint32_t* dst = a.out_codes != nullptr ? a.out_codes + i * a.out_words : nullptr;
    uint32_t* pre = a.pre != nullptr ? a.pre + i * a.pre_words : nullptr;
    if (dst != nullptr) std::memset(dst, 0, sizeof(uint32_t) * a.out_words);
    if (pre != nullptr) std::memset(pre, 0, sizeof(uint32_t) * a.pre_words);
    const float di = a.dinv[i];
    for (int64_t j = 0; j < a.cols; ++j) {
      const Half s = half_of(a, i, j);
      float x = s.half;
      if (a.mode != 2) {
        const float adx = value_of(a.in[3] + i * a.in_words[3], j, a.grid[3]);
        cross += static_cast<double>(s.dx) * static_cast<double>(adx);
        x = a.mode == 0 ? s.half + a.c * adx : s.half - a.c * (s.dx - adx);
      }
      if (dst != nullptr) {
        const uint32_t code = code_of(x, gu);
        put_code(dst, j, gu.bits, code);
        x = static_cast<float>(static_cast<int32_t>(code) * gu.mult - gu.zero) * gu.scale;
      } else {
        a.out_float[i * a.cols + j] = x;
      }
      if (pre != nullptr) put_code(pre, j, gn.bits, code_of(x * di, gn));
    }
  }
  return cross;
}

namespace {

// Rows per energy partial sum: fixed, so that the sums do not depend on the thread count.
constexpr int64_t kBlock = 2048;

bool valid_bits(int64_t b, bool may_be_off) { return b == 1 || b == 2 || b == 4 || b == 8 || (may_be_off && b == 32); }

void read_grids(SmpStepArgs* a, at::IntArrayRef bits, at::ArrayRef<double> scales, at::IntArrayRef zeros,
                at::IntArrayRef mults, at::IntArrayRef skews, size_t n, size_t first_optional) {
  TORCH_CHECK(bits.size() == n && scales.size() == n && zeros.size() == n && mults.size() == n && skews.size() == n,
              "expected ", n, " grids");
  for (size_t s = 0; s < n; ++s) {
    TORCH_CHECK(valid_bits(bits[s], s >= first_optional), "grid ", s, ": unsupported bit width ", bits[s]);
    if (bits[s] != 32) {
      const int64_t levels = mults[s] * ((int64_t{1} << bits[s]) - 1);
      TORCH_CHECK(mults[s] >= 1 && levels <= 255 && zeros[s] >= 0 && zeros[s] <= levels, "grid ", s, " malformed");
      TORCH_CHECK(scales[s] > 0.0 && std::isfinite(scales[s]) && skews[s] >= -255 && skews[s] <= 255, "grid ", s, " malformed");
    }
    a->grid[s] = Grid{static_cast<int>(bits[s]), static_cast<float>(scales[s]), static_cast<int>(zeros[s]),
                      static_cast<int>(mults[s]), static_cast<int>(skews[s])};
  }
}

void read_rows(SmpStepArgs* a, int s, const at::Tensor& t, int64_t rows, int64_t cols) {
  TORCH_CHECK(t.scalar_type() == at::kInt && t.dim() == 2 && t.is_contiguous(), "packed rows must be contiguous int32");
  TORCH_CHECK(t.size(0) == rows && t.size(1) == words_per_row(cols, a->grid[s].bits), "packed rows of site ", s,
              " have the wrong shape");
  a->in[s] = reinterpret_cast<const uint32_t*>(t.data_ptr<int32_t>());
  a->in_words[s] = t.size(1);
}

SmpStepArgs common_args(const at::Tensor& x, const at::Tensor& ax, const at::Tensor& h, const at::Tensor& dinv,
                        int64_t cols, double keep, double smooth, double eta) {
  TORCH_CHECK(dinv.scalar_type() == at::kFloat && dinv.dim() == 1 && dinv.is_contiguous(), "dinv must be 1-D float32");
  TORCH_CHECK(cols >= 0, "cols must be >= 0");
  SmpStepArgs a{};
  a.dinv = dinv.data_ptr<float>();
  a.cols = cols;
  a.keep = static_cast<float>(keep);
  a.smooth = static_cast<float>(smooth);
  a.eta = static_cast<float>(eta);
  return a;
}

using RowsFn = double (*)(const SmpStepArgs&, int64_t, int64_t, float*);

// Runs fn over every row in blocks of kBlock and returns the energy sum, block partials added in order.
at::Tensor run_blocks(const SmpStepArgs& a, int64_t rows, RowsFn fn) {
  const int64_t blocks = (rows + kBlock - 1) / kBlock;
  std::vector<double> partial(static_cast<size_t>(blocks), 0.0);
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> scratch(static_cast<size_t>(smp_scratch_floats(a.cols)) + 16);
    float* s = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(scratch.data()) + 63) & ~uintptr_t(63));
    for (int64_t b = b0; b < b1; ++b) partial[b] = fn(a, b * kBlock, std::min(rows, (b + 1) * kBlock), s);
  });
  double sum = 0.0;
  for (double p : partial) sum += p;
  return at::scalar_tensor(sum, at::TensorOptions().dtype(at::kDouble));
}

bool use_avx512() { return selected_isa() == Isa::Avx512; }

std::tuple<at::Tensor, at::Tensor, at::Tensor> smp_delta_cpu(
    const at::Tensor& x, const at::Tensor& ax, const at::Tensor& h, const at::Tensor& dinv, int64_t cols,
    at::IntArrayRef bits, at::ArrayRef<double> scales, at::IntArrayRef zeros, at::IntArrayRef mults,
    at::IntArrayRef skews, double keep, double smooth, double eta, bool want_dx) {
  SmpStepArgs a = common_args(x, ax, h, dinv, cols, keep, smooth, eta);
  read_grids(&a, bits, scales, zeros, mults, skews, 4, 4);
  const int64_t rows = dinv.numel();
  read_rows(&a, 0, x, rows, cols);
  read_rows(&a, 1, ax, rows, cols);
  read_rows(&a, 2, h, rows, cols);
  a.out_words = words_per_row(cols, a.grid[3].bits);
  at::Tensor codes = output_empty({rows, a.out_words}, x.options());
  at::Tensor dx = output_empty({want_dx ? rows : 0, cols}, x.options().dtype(at::kFloat));
  a.out_codes = reinterpret_cast<uint32_t*>(codes.data_ptr<int32_t>());
  a.out_float = want_dx ? dx.data_ptr<float>() : nullptr;
  at::Tensor sq = run_blocks(a, rows, use_avx512() ? &smp_delta_rows_avx512 : &smp_delta_rows_generic);
  return {codes, dx, sq};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> smp_update_cpu(
    const at::Tensor& x, const at::Tensor& ax, const at::Tensor& h, const c10::optional<at::Tensor>& adx,
    const at::Tensor& dinv, int64_t cols, at::IntArrayRef bits, at::ArrayRef<double> scales, at::IntArrayRef zeros,
    at::IntArrayRef mults, at::IntArrayRef skews, double keep, double smooth, double eta, double c, int64_t mode) {
  TORCH_CHECK(mode >= 0 && mode <= 2, "mode must be 0 (authors), 1 (exact) or 2 (appnp)");
  TORCH_CHECK(mode == 2 || adx.has_value(), "modes authors and exact need adx");
  SmpStepArgs a = common_args(x, ax, h, dinv, cols, keep, smooth, eta);
  read_grids(&a, bits, scales, zeros, mults, skews, 6, 4);
  a.c = static_cast<float>(c);
  a.mode = static_cast<int>(mode);
  const int64_t rows = dinv.numel();
  read_rows(&a, 0, x, rows, cols);
  read_rows(&a, 1, ax, rows, cols);
  read_rows(&a, 2, h, rows, cols);
  if (mode != 2) read_rows(&a, 3, *adx, rows, cols);
  const bool update_on = on(a.grid[4]), next_on = on(a.grid[5]);
  at::Tensor out = update_on ? output_empty({rows, words_per_row(cols, a.grid[4].bits)}, x.options())
                             : output_empty({rows, cols}, x.options().dtype(at::kFloat));
  at::Tensor pre = output_empty({rows, next_on ? words_per_row(cols, a.grid[5].bits) : 0}, x.options());
  if (update_on) {
    a.out_codes = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
    a.out_words = out.size(1);
  } else {
    a.out_float = out.data_ptr<float>();
  }
  if (next_on) {
    a.pre = reinterpret_cast<uint32_t*>(pre.data_ptr<int32_t>());
    a.pre_words = pre.size(1);
  }
  at::Tensor cross = run_blocks(a, rows, use_avx512() ? &smp_update_rows_avx512 : &smp_update_rows_generic);
  return {out, pre, cross};
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(qgnn, CPU, m) {
  m.impl("smp_delta", &cpu::smp_delta_cpu);
  m.impl("smp_update", &cpu::smp_update_cpu);
}

}  // namespace qgnn

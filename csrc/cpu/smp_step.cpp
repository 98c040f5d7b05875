// qgnn::smp_delta and qgnn::smp_update for CPU tensors: torch glue, the generic kernels, and run-time
// dispatch to the AVX2 and AVX-512 units (kernels.h). Semantics: qgnn_cli/kernels/smp.py.
//
// Inputs are validated in qgnn_cli/kernels/smp.py; the glue re-checks every shape, dtype and grid
// (cheap), and the kernels check each row's indptr range, its degree against the int32 accumulator and
// each column index before they read, so a direct torch.ops call raises instead of reading out of bounds.
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../common/codes.h"
#include "isa.h"
#include "kernels.h"
#include "output_cache.h"
#include "tasks.h"

// Products and sums stay separate, as in the float32 PyTorch reference (no FMA contraction).
#pragma GCC optimize("fp-contract=off")

namespace qgnn {
namespace cpu {

int64_t smp_scratch_ints(int64_t cols) { return (cols + 15) / 16 * 16 + 16; }

namespace {
template <size_t N>
int uniform_bits(int64_t cols, const Grid* const (&grids)[N]) {
  if (cols < 1 || cols > 16) return 0;
  int b = 0;
  for (const Grid* g : grids) {
    if (g == nullptr) continue;  // a grid the rows do not use
    if (b == 0) b = g->bits;
    if (g->bits != b) return 0;
  }
  return b == 2 || b == 4 || b == 8 ? b : 0;
}
}  // namespace

int smp_delta_uniform_bits(const SmpStepArgs& a) {
  const Grid* const grids[] = {&a.agg_in, a.ax_out != nullptr ? &a.agg_out : nullptr, &a.gx, &a.gh, &a.out_grid};
  return uniform_bits(a.cols, grids);
}

int smp_update_uniform_bits(const SmpStepArgs& a) {
  const Grid* agg_in = a.mode != 2 ? &a.agg_in : nullptr;
  const Grid* out = a.out_codes != nullptr ? &a.out_grid : nullptr;
  const Grid* next = a.pre != nullptr ? &a.next_grid : nullptr;
  const Grid* adx = a.mode != 2 && a.agg_out.bits != 32 ? &a.agg_out : nullptr;
  const Grid* ax = a.ax_float == nullptr ? &a.gax : nullptr;
  const Grid* const grids[] = {agg_in, adx, &a.gx, ax, &a.gh, out, next};
  return uniform_bits(a.cols, grids);
}

namespace {

inline float value_of(uint32_t code, const Grid& g) {
  return static_cast<float>(static_cast<int32_t>(code) * g.mult - g.zero) * g.scale;
}

inline float value_at(const uint32_t* row, int64_t j, const Grid& g) { return value_of(get_code(row, j, g.bits), g); }

inline uint32_t code_of(float x, const Grid& g) {
  return quantize_grid(x, g.scale, static_cast<float>(g.zero), g.bits, g.mult, g.skew);
}

inline void clear(uint32_t* row, int64_t words) { std::memset(row, 0, sizeof(uint32_t) * words); }

// Adds the codes of the valid neighbours in edges [begin, end) into acc; returns how many there were.
// The width is a template argument: get_code's word index and shift by a run-time width are
// divisions, which made this loop most of a generic SMP step.
template <int BITS>
int64_t add_neighbours(const SmpStepArgs& a, int64_t begin, int64_t end, int32_t* acc, int64_t* bad) {
  constexpr int64_t kAhead = 32;  // edges; the random neighbour rows are latency-bound (KERNELS.md)
  int64_t deg = 0;
  for (int64_t e = begin; e < end; ++e) {
    if (e + kAhead < a.nnz) {
      const uint32_t t = static_cast<uint32_t>(a.indices[e + kAhead]);
      if (t < static_cast<uint64_t>(a.rows)) __builtin_prefetch(a.agg + static_cast<int64_t>(t) * a.agg_words);
    }
    const uint32_t j = static_cast<uint32_t>(a.indices[e]);
    if (j >= static_cast<uint64_t>(a.rows)) {
      ++*bad;
      continue;
    }
    const uint32_t* row = a.agg + static_cast<int64_t>(j) * a.agg_words;
    for (int64_t f = 0; f < a.cols; ++f) acc[f] += static_cast<int32_t>(get_code<BITS>(row, f));
    ++deg;
  }
  return deg;
}

// acc[j] = sum of code j over the valid neighbours of row i; returns the edges used, counts what was skipped.
int64_t gather(const SmpStepArgs& a, int64_t i, int32_t* acc, int64_t* bad) {
  std::fill(acc, acc + a.cols, 0);
  int64_t begin, end;
  if (!smp_row_edges(a, i, &begin, &end)) {
    ++*bad;
    return 0;
  }
  switch (a.agg_in.bits) {
    case 1: return add_neighbours<1>(a, begin, end, acc, bad);
    case 2: return add_neighbours<2>(a, begin, end, acc, bad);
    case 4: return add_neighbours<4>(a, begin, end, acc, bad);
    default: return add_neighbours<8>(a, begin, end, acc, bad);  // the glue admits 1, 2, 4, 8
  }
}

// The aggregated row's value in column f, float(S) * scale * dinv: qgnn::spmm's output.
inline float aggregated_value(const SmpStepArgs& a, const int32_t* acc, int64_t f, int64_t deg, float di) {
  const int32_t s = static_cast<int32_t>(static_cast<int64_t>(a.agg_in.mult) * acc[f] - deg * a.agg_in.zero);
  return static_cast<float>(s) * a.agg_in.scale * di;
}

// The aggregated value on agg_out (qgnn::spmm_requant's epilogue), or itself where agg_out is off.
inline float aggregated_on_site(const SmpStepArgs& a, const int32_t* acc, int64_t f, int64_t deg, float di) {
  const float v = aggregated_value(a, acc, f, deg, di);
  return a.agg_out.bits == 32 ? v : value_of(code_of(v, a.agg_out), a.agg_out);
}

// x_half = (keep x + smooth ax) + eta h (nn.smp.smp_propagate's order) and dx = x_half - x.
inline void half_of(const SmpStepArgs& a, float x, float ax, float h, float* half, float* dx) {
  float t = a.keep * x;
  t = t + a.smooth * ax;
  t = t + a.eta * h;
  *half = t;
  *dx = t - x;
}

}  // namespace

SmpRows smp_delta_rows_generic(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* acc) {
  SmpRows r{0.0, 0};
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t deg = gather(a, i, acc, &r.bad);
    const float di = a.dinv[i];
    uint32_t* ax_row = a.ax_out != nullptr ? a.ax_out + i * a.ax_out_words : nullptr;
    uint32_t* dst = a.out_codes + i * a.out_words;
    if (ax_row != nullptr) clear(ax_row, a.ax_out_words);
    clear(dst, a.out_words);
    for (int64_t j = 0; j < a.cols; ++j) {
      float ax = aggregated_value(a, acc, j, deg, di);
      if (ax_row != nullptr) {
        const uint32_t axc = code_of(ax, a.agg_out);
        put_code(ax_row, j, a.agg_out.bits, axc);
        ax = value_of(axc, a.agg_out);
      } else {
        a.ax_out_float[i * a.cols + j] = ax;
      }
      float half, dx;
      half_of(a, value_at(a.x + i * a.x_words, j, a.gx), ax, value_at(a.h + i * a.h_words, j, a.gh), &half, &dx);
      if (a.out_float != nullptr) a.out_float[i * a.cols + j] = dx;
      r.energy += static_cast<double>(dx) * static_cast<double>(dx);
      put_code(dst, j, a.out_grid.bits, code_of(dx * di, a.out_grid));
    }
  }
  return r;
}

SmpRows smp_update_rows_generic(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* acc) {
  SmpRows r{0.0, 0};
  const Grid &gu = a.out_grid, &gn = a.next_grid;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t deg = a.mode != 2 ? gather(a, i, acc, &r.bad) : 0;
    const float di = a.dinv[i];
    uint32_t* dst = a.out_codes != nullptr ? a.out_codes + i * a.out_words : nullptr;
    uint32_t* pre = a.pre != nullptr ? a.pre + i * a.pre_words : nullptr;
    if (dst != nullptr) clear(dst, a.out_words);
    if (pre != nullptr) clear(pre, a.pre_words);
    for (int64_t j = 0; j < a.cols; ++j) {
      float x, dx;
      const float ax = a.ax_float != nullptr ? a.ax_float[i * a.cols + j] : value_at(a.ax + i * a.ax_words, j, a.gax);
      half_of(a, value_at(a.x + i * a.x_words, j, a.gx), ax, value_at(a.h + i * a.h_words, j, a.gh), &x, &dx);
      if (a.mode != 2) {
        const float adx = aggregated_on_site(a, acc, j, deg, di);
        r.energy += static_cast<double>(dx) * static_cast<double>(adx);
        x = a.mode == 0 ? x + a.c * adx : x - a.c * (dx - adx);
      }
      if (dst != nullptr) {
        const uint32_t code = code_of(x, gu);
        put_code(dst, j, gu.bits, code);
        x = value_of(code, gu);
      } else {
        a.out_float[i * a.cols + j] = x;
      }
      if (pre != nullptr) put_code(pre, j, gn.bits, code_of(x * di, gn));
    }
  }
  return r;
}

namespace {

// Rows per energy partial sum: fixed, so that the sums do not depend on the thread count.
constexpr int64_t kBlock = 2048;

bool valid_bits(int64_t b, bool may_be_off) { return b == 1 || b == 2 || b == 4 || b == 8 || (may_be_off && b == 32); }

// `may_be_off`: bit s set where grid s may be off (bits 32).
std::vector<Grid> read_grids(at::IntArrayRef bits, at::ArrayRef<double> scales, at::IntArrayRef zeros,
                             at::IntArrayRef mults, at::IntArrayRef skews, size_t n, uint32_t may_be_off) {
  TORCH_CHECK(bits.size() == n && scales.size() == n && zeros.size() == n && mults.size() == n && skews.size() == n,
              "expected ", n, " grids");
  std::vector<Grid> out;
  for (size_t s = 0; s < n; ++s) {
    TORCH_CHECK(valid_bits(bits[s], (may_be_off >> s) & 1u), "grid ", s, ": unsupported bit width ", bits[s]);
    if (bits[s] != 32) {
      const int64_t levels = mults[s] * ((int64_t{1} << bits[s]) - 1);
      TORCH_CHECK(mults[s] >= 1 && levels <= 255 && zeros[s] >= 0 && zeros[s] <= levels, "grid ", s, " malformed");
      TORCH_CHECK(scales[s] > 0.0 && std::isfinite(scales[s]) && skews[s] >= -255 && skews[s] <= 255, "grid ", s,
                  " malformed");
    }
    out.push_back(Grid{static_cast<int>(bits[s]), static_cast<float>(scales[s]), static_cast<int>(zeros[s]),
                       static_cast<int>(mults[s]), static_cast<int>(skews[s])});
  }
  return out;
}

const uint32_t* rows_of(const at::Tensor& t, const char* name, const Grid& g, int64_t rows, int64_t cols,
                        int64_t* words) {
  TORCH_CHECK(t.scalar_type() == at::kInt && t.dim() == 2 && t.is_contiguous(), name, " must be contiguous 2-D int32");
  TORCH_CHECK(t.size(0) == rows && t.size(1) == words_per_row(cols, g.bits), name, " has the wrong shape");
  *words = t.size(1);
  return reinterpret_cast<const uint32_t*>(t.data_ptr<int32_t>());
}

SmpStepArgs common_args(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& dinv, int64_t cols,
                        double keep, double smooth, double eta) {
  TORCH_CHECK(dinv.scalar_type() == at::kFloat && dinv.dim() == 1 && dinv.is_contiguous(), "dinv must be 1-D float32");
  TORCH_CHECK(indptr.scalar_type() == at::kLong && indptr.dim() == 1 && indptr.is_contiguous() &&
                  indptr.numel() == dinv.numel() + 1,
              "indptr must be 1-D int64 with one entry more than dinv");
  TORCH_CHECK(indices.scalar_type() == at::kInt && indices.dim() == 1 && indices.is_contiguous(),
              "indices must be 1-D int32");
  TORCH_CHECK(cols >= 0, "cols must be >= 0");
  SmpStepArgs a{};
  a.indptr = indptr.data_ptr<int64_t>();
  a.indices = indices.data_ptr<int32_t>();
  a.nnz = indices.numel();
  a.rows = dinv.numel();
  a.dinv = dinv.data_ptr<float>();
  a.cols = cols;
  a.keep = static_cast<float>(keep);
  a.smooth = static_cast<float>(smooth);
  a.eta = static_cast<float>(eta);
  return a;
}

using RowsFn = SmpRows (*)(const SmpStepArgs&, int64_t, int64_t, int32_t*);

// Runs fn over every row in blocks of kBlock; returns the energy sum, block partials added in order.
at::Tensor run_blocks(SmpStepArgs a, RowsFn fn) {
  a.max_degree = int32_degree_limit(a.agg_in.bits, a.agg_in.mult, a.agg_in.zero);
  const int64_t blocks = (a.rows + kBlock - 1) / kBlock;
  std::vector<SmpRows> partial(static_cast<size_t>(blocks), SmpRows{0.0, 0});
  // Small graphs (Cora, PubMed: a millisecond of work) run on the calling thread: waking the pool costs
  // more than it saves there, and much more when other processes hold the cores.
  const int64_t grain = a.nnz + a.rows * ((a.cols + 15) / 16) < (int64_t{1} << 20) ? std::max<int64_t>(blocks, 1) : 1;
  share_tasks(blocks, (blocks + grain - 1) / std::max<int64_t>(grain, 1), [&](const auto& take) {
    Scratch scratch(static_cast<size_t>(smp_scratch_ints(a.cols)) * 4);
    int32_t* acc = static_cast<int32_t*>(scratch.get());
    for (int64_t b = take(); b < blocks; b = take()) partial[b] = fn(a, b * kBlock, std::min(a.rows, (b + 1) * kBlock), acc);
  });
  double sum = 0.0;
  int64_t bad = 0;
  for (const SmpRows& p : partial) {
    sum += p.energy;
    bad += p.bad;
  }
  TORCH_CHECK(bad == 0, "malformed CSR: ", bad, " bad rows or out-of-range column indices were skipped");
  return at::scalar_tensor(sum, at::TensorOptions().dtype(at::kDouble));
}

// The rows function of the selected ISA.
RowsFn rows_fn(RowsFn generic, RowsFn avx2, RowsFn avx512) {
  switch (selected_isa()) {
    case Isa::Avx512: return avx512;
    case Isa::Avx2: return avx2;
    default: return generic;
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> smp_delta_cpu(
    const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& pre, const at::Tensor& x,
    const at::Tensor& h, const at::Tensor& dinv, int64_t cols, at::IntArrayRef bits, at::ArrayRef<double> scales,
    at::IntArrayRef zeros, at::IntArrayRef mults, at::IntArrayRef skews, double keep, double smooth, double eta,
    bool want_dx) {
  SmpStepArgs a = common_args(indptr, indices, dinv, cols, keep, smooth, eta);
  const std::vector<Grid> g = read_grids(bits, scales, zeros, mults, skews, 5, 1u << 1);
  a.agg_in = g[0];
  a.agg_out = a.gax = g[1];
  a.gx = g[2];
  a.gh = g[3];
  a.out_grid = g[4];
  a.agg = rows_of(pre, "pre", a.agg_in, a.rows, cols, &a.agg_words);
  a.x = rows_of(x, "x", a.gx, a.rows, cols, &a.x_words);
  a.h = rows_of(h, "h", a.gh, a.rows, cols, &a.h_words);
  const bool ax_on = a.agg_out.bits != 32;
  a.out_words = words_per_row(cols, a.out_grid.bits);
  at::Tensor ax = ax_on ? output_empty({a.rows, words_per_row(cols, a.agg_out.bits)}, x.options())
                        : output_empty({a.rows, cols}, x.options().dtype(at::kFloat));
  at::Tensor codes = output_empty({a.rows, a.out_words}, x.options());
  at::Tensor dx = output_empty({want_dx ? a.rows : 0, cols}, x.options().dtype(at::kFloat));
  if (ax_on) {
    a.ax_out = reinterpret_cast<uint32_t*>(ax.data_ptr<int32_t>());
    a.ax_out_words = ax.size(1);
  } else {
    a.ax_out_float = ax.data_ptr<float>();
  }
  a.out_codes = reinterpret_cast<uint32_t*>(codes.data_ptr<int32_t>());
  a.out_float = want_dx ? dx.data_ptr<float>() : nullptr;
  at::Tensor sq = run_blocks(a, rows_fn(&smp_delta_rows_generic, &smp_delta_rows_avx2, &smp_delta_rows_avx512));
  return {ax, codes, dx, sq};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> smp_update_cpu(
    const at::Tensor& indptr, const at::Tensor& indices, const c10::optional<at::Tensor>& dxc, const at::Tensor& x,
    const at::Tensor& ax, const at::Tensor& h, const at::Tensor& dinv, int64_t cols, at::IntArrayRef bits,
    at::ArrayRef<double> scales, at::IntArrayRef zeros, at::IntArrayRef mults, at::IntArrayRef skews, double keep,
    double smooth, double eta, double c, int64_t mode) {
  TORCH_CHECK(mode >= 0 && mode <= 2, "mode must be 0 (authors), 1 (exact) or 2 (appnp)");
  TORCH_CHECK(mode == 2 || dxc.has_value(), "modes authors and exact need dxc");
  SmpStepArgs a = common_args(indptr, indices, dinv, cols, keep, smooth, eta);
  const std::vector<Grid> g = read_grids(bits, scales, zeros, mults, skews, 7, (1u << 1) | (1u << 3) | (1u << 5) | (1u << 6));
  a.agg_in = g[0];
  a.agg_out = g[1];
  a.gx = g[2];
  a.gax = g[3];
  a.gh = g[4];
  a.out_grid = g[5];
  a.next_grid = g[6];
  a.c = static_cast<float>(c);
  a.mode = static_cast<int>(mode);
  if (mode != 2) a.agg = rows_of(*dxc, "dxc", a.agg_in, a.rows, cols, &a.agg_words);
  a.x = rows_of(x, "x", a.gx, a.rows, cols, &a.x_words);
  if (a.gax.bits != 32) {
    a.ax = rows_of(ax, "ax", a.gax, a.rows, cols, &a.ax_words);
  } else {
    TORCH_CHECK(ax.scalar_type() == at::kFloat && ax.dim() == 2 && ax.is_contiguous() && ax.size(0) == a.rows &&
                    ax.size(1) == cols,
                "ax must be contiguous float32 [rows, cols] when its site is off");
    a.ax_float = ax.data_ptr<float>();
  }
  a.h = rows_of(h, "h", a.gh, a.rows, cols, &a.h_words);
  const bool update_on = a.out_grid.bits != 32, next_on = a.next_grid.bits != 32;
  at::Tensor out = update_on ? output_empty({a.rows, words_per_row(cols, a.out_grid.bits)}, x.options())
                             : output_empty({a.rows, cols}, x.options().dtype(at::kFloat));
  at::Tensor pre = output_empty({a.rows, next_on ? words_per_row(cols, a.next_grid.bits) : 0}, x.options());
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
  at::Tensor cross = run_blocks(a, rows_fn(&smp_update_rows_generic, &smp_update_rows_avx2, &smp_update_rows_avx512));
  return {out, pre, cross};
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(qgnn, CPU, m) {
  m.impl("smp_delta", &cpu::smp_delta_cpu);
  m.impl("smp_update", &cpu::smp_update_cpu);
}

}  // namespace qgnn

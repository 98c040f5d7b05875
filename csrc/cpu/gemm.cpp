// qgnn::gemm for CPU tensors: torch glue (weight preparation, zero-point folding), the generic
// kernel, and run-time dispatch to the AVX2 / AVX-512 units (kernels.h).
//
// Inputs are validated in qgnn_cli/kernels/gemm.py; the checks here guard direct torch.ops calls.
// The integer dot products run on raw codes; zero points and mults are folded in afterwards:
//   D = am*wm*dot(qa, qw) - am*wz[c]*rowsum(qa) - az*wm*colsum(qw)[c] + k*az*wz[c]
// which is exact in wrapping int32 arithmetic because the true D fits in int32 (k*255*255 < 2^31).
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "../common/codes.h"
#include "chain.h"
#include "isa.h"
#include "kernels.h"
#include "output_cache.h"
#include "tasks.h"

namespace qgnn {
namespace cpu {

namespace {
inline int32_t wrap32(int64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(static_cast<uint64_t>(v))); }

// The plan's float thresholds moved onto D (kernels.h GemmArgs::dot_thr). A row's value in column c
// is y(D) = float(D) * sc[c] (+ bias[c]), the units' exact float32 operations. With sc[c] >= 0 and sc,
// bias finite, y is non-decreasing in D and never NaN, so "y >= thr" holds exactly for D above the
// largest D whose y falls short: found by bisection over the D that occur, |D| <= k * 255^2 < 2^31
// (`zeros_on_grid`: zero points in [0, 255], so that every factor of D is within +-255).
// INT32_MIN: every D reaches it; INT32_MAX: none does. Only where dot_thresholds_apply.
bool dot_thresholds_apply(const GemmArgs& g, bool zeros_on_grid) {
  if (!zeros_on_grid) return false;
  for (int64_t c = 0; c < g.o; ++c)
    if (!(g.sc[c] >= 0.0f && std::isfinite(g.sc[c]) && (g.bias == nullptr || std::isfinite(g.bias[c])))) return false;
  return true;
}

void dot_thresholds(const GemmArgs& g, const ChainPlan& p, std::vector<int32_t>* out) {
  out->assign(static_cast<size_t>(p.counts * g.o_pad), INT32_MAX);
  const auto y = [&](int64_t d, int64_t c) {
    float v = static_cast<float>(static_cast<int32_t>(d)) * g.sc[c];
    if (g.bias != nullptr) v = v + g.bias[c];
    return v;
  };
  const int64_t dmax = INT32_MAX;
  for (int k = 0; k < p.counts; ++k)
    for (int64_t c = 0; c < g.o; ++c) {
      const float t = p.thr[k * p.cols_pad + c];
      int32_t& e = (*out)[k * g.o_pad + c];
      if (!(y(dmax, c) >= t)) continue;  // none (NaN: never)
      if (y(-dmax, c) >= t) {
        e = INT32_MIN;
        continue;
      }
      int64_t lo = -dmax, hi = dmax;  // y(lo) < t <= y(hi)
      while (hi - lo > 1) {
        const int64_t mid = lo + (hi - lo) / 2;
        (y(mid, c) >= t ? hi : lo) = mid;
      }
      e = static_cast<int32_t>(lo);
    }
}

// The k codes of a packed row as bytes, a word at a time with constant shifts: code by code
// (get_code) it was most of preparing the weights, ~0.4 ms a call at Cora's 1433 x 128.
template <int BITS>
void decode_row(const uint32_t* row, int64_t k, uint8_t* dst) {
  constexpr int per_word = 32 / BITS;
  const int64_t whole = k / per_word;
  for (int64_t w = 0; w < whole; ++w) {
    const uint32_t v = row[w];
    for (int t = 0; t < per_word; ++t) dst[w * per_word + t] = static_cast<uint8_t>((v >> (t * BITS)) & ((1u << BITS) - 1u));
  }
  for (int64_t j = whole * per_word; j < k; ++j) dst[j] = static_cast<uint8_t>(get_code<BITS>(row, j));
}

void decode_row(const uint32_t* row, int bits, int64_t k, uint8_t* dst) {
  switch (bits) {
    case 1: return decode_row<1>(row, k, dst);
    case 2: return decode_row<2>(row, k, dst);
    case 4: return decode_row<4>(row, k, dst);
    default: return decode_row<8>(row, k, dst);
  }
}
}  // namespace

size_t gemm_scratch_bytes(const GemmArgs& a) {
  // Row sums, the A tile unpacked to bytes (AVX-512, AMX: 64 rows of k_amx), int16 (AVX2) or int32
  // (generic), a float tile for the re-quantising epilogue and its byte codes, then AMX's int32 tile.
  return gemm_acc_offset(a) + static_cast<size_t>(32) * a.o_pad * 4 + 64;
}

size_t gemm_acc_offset(const GemmArgs& a) {
  const size_t tile_and_codes =
      static_cast<size_t>(kGemmTileRows) * a.o_pad * 4 + static_cast<size_t>(a.o_pad) * 8 + 512;
  return gemm_tile_offset(a) + (tile_and_codes + 63) / 64 * 64;
}

size_t gemm_tile_offset(const GemmArgs& a) {  // byte offset of the float tile in the scratch
  const size_t a_tile = std::max<size_t>(static_cast<size_t>(kGemmTileRows) * (a.k_pad + 64) * 4,
                                         static_cast<size_t>(64) * (a.k_amx + 64));
  return (256 + a_tile + 63) / 64 * 64;
}

void gemm_rows_generic(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch) {
  int32_t* codes = static_cast<int32_t*>(scratch);
  float* y = reinterpret_cast<float*>(static_cast<char*>(scratch) + gemm_tile_offset(a));
  for (int64_t r = r0; r < r1; ++r) {
    const uint32_t* row = a.a + r * a.a_words;
    int64_t rowsum = 0;
    for (int64_t j = 0; j < a.k; ++j) {
      codes[j] = static_cast<int32_t>(get_code(row, j, a.a_bits));
      rowsum += codes[j];
    }
    for (int64_t c = 0; c < a.o; ++c) {
      const uint8_t* w = a.w_codes + c * a.k;
      int32_t dot = 0;
      for (int64_t j = 0; j < a.k; ++j) dot += codes[j] * static_cast<int32_t>(w[j]);
      const int32_t d = wrap32(static_cast<int64_t>(a.amwm) * dot + rowsum * a.coef[c] + a.colterm[c]);
      float v = static_cast<float>(d) * a.sc[c];
      if (a.bias) v = v + a.bias[c];
      y[c] = v;
    }
    if (!a.requant) {
      std::copy(y, y + a.o, a.out + r * a.o);
    } else {
      if (a.chain) apply_chain_scalar(*a.chain, y, a.o, r);
      uint32_t* dst = a.out_packed + r * a.out_words;
      std::fill(dst, dst + a.out_words, 0u);
      const Grid& g = a.out_grid;
      for (int64_t c = 0; c < a.o; ++c)
        put_code(dst, c, g.bits, quantize_grid(y[c], g.scale, static_cast<float>(g.zero), g.bits, g.mult, g.skew));
    }
  }
}

namespace {

at::Tensor gemm_impl(const at::Tensor& a_in, int64_t a_bits, int64_t k, int64_t a_mult, double a_scale,
                     int64_t a_zero, const at::Tensor& w_in, int64_t w_bits, int64_t w_mult, const at::Tensor& w_scale_in,
                     const at::Tensor& w_zero_in, const c10::optional<at::Tensor>& bias_in, const Grid* out_grid,
                     const Chain* chain = nullptr) {
  for (int64_t b : {a_bits, w_bits})
    TORCH_CHECK(b == 1 || b == 2 || b == 4 || b == 8, "unsupported bit width ", b);
  TORCH_CHECK(a_in.scalar_type() == at::kInt && a_in.dim() == 2, "a_packed must be 2-D int32");
  TORCH_CHECK(w_in.scalar_type() == at::kInt && w_in.dim() == 2, "w_packed must be 2-D int32");
  TORCH_CHECK(k >= 0 && a_in.size(1) == words_per_row(k, static_cast<int>(a_bits)) &&
                  w_in.size(1) == words_per_row(k, static_cast<int>(w_bits)),
              "packed widths do not match k");
  TORCH_CHECK(k * 255 * 255 < (int64_t(1) << 31), "k too large for the int32 accumulator");
  TORCH_CHECK(a_mult >= 1 && a_mult * ((1 << a_bits) - 1) <= 255 && w_mult >= 1 && w_mult * ((1 << w_bits) - 1) <= 255,
              "mult exceeds the 8-bit grid");
  const int64_t n = a_in.size(0), o = w_in.size(0);
  TORCH_CHECK(w_scale_in.scalar_type() == at::kFloat && w_scale_in.dim() == 1 && w_scale_in.numel() == o,
              "w_scale must be float32 [o]");
  TORCH_CHECK(w_zero_in.scalar_type() == at::kInt && w_zero_in.dim() == 1 && w_zero_in.numel() == o,
              "w_zero must be int32 [o]");
  if (bias_in.has_value())
    TORCH_CHECK(bias_in->scalar_type() == at::kFloat && bias_in->dim() == 1 && bias_in->numel() == o,
                "bias must be float32 [o]");
  const at::Tensor A = a_in.contiguous(), W = w_in.contiguous(), w_scale = w_scale_in.contiguous(),
                   w_zero = w_zero_in.contiguous();
  at::Tensor bias_t = bias_in.has_value() ? bias_in->contiguous() : at::Tensor();
  const int64_t out_words = out_grid ? words_per_row(o, out_grid->bits) : 0;
  at::Tensor out = out_grid ? output_empty({n, out_words}, A.options().dtype(at::kInt))
                            : output_empty({n, o}, A.options().dtype(at::kFloat));
  if (n == 0 || (o == 0 && !out_grid)) return out;
  if (o == 0) return out.zero_();

  GemmArgs g{};
  g.a = reinterpret_cast<const uint32_t*>(A.data_ptr<int32_t>());
  g.n = n;
  g.a_words = A.size(1);
  g.a_bits = static_cast<int>(a_bits);
  g.w_bits = static_cast<int>(w_bits);
  g.k = k;
  g.amwm = static_cast<int32_t>(a_mult * w_mult);
  g.o = o;
  g.o_pad = (o + 15) / 16 * 16;
  g.k_pad = (k + 3) / 4 * 4;
  g.k_amx = (k + 63) / 64 * 64;
  const int64_t op = g.o_pad, kp = g.k_pad;

  using Fn = void (*)(const GemmArgs&, int64_t, int64_t, void*);
  Fn fn = &gemm_rows_generic;
  if (a_bits != 1 && !(out_grid && out_grid->bits == 1)) {
    if (selected_isa() == Isa::Avx512) fn = amx_enabled() ? &gemm_rows_amx : &gemm_rows_avx512;
    else if (selected_isa() == Isa::Avx2) fn = &gemm_rows_avx2;
  }
  const bool amx = fn == &gemm_rows_amx;

  // Weights: raw codes (every path: the others are built from them), the VNNI (k/4, o, 4) u8 layout
  // (AVX-512, AMX; AVX2 for weights of <= 4 bits), AMX's and the (k/2, o, 2) int16 layout (AVX2,
  // 8-bit weights); only those the selected unit reads.
  const bool pairs = fn == &gemm_rows_avx2 && w_bits > 4, vnni = fn != &gemm_rows_generic && !pairs;
  std::vector<uint8_t> w_codes(static_cast<size_t>(o * std::max<int64_t>(k, 1)));
  std::vector<uint8_t> w_vnni(vnni ? static_cast<size_t>(kp * op) : 0, 0);
  std::vector<uint8_t> w_amx(amx ? static_cast<size_t>(g.k_amx * op) : 0, 0);
  std::vector<int16_t> w_pairs(pairs ? static_cast<size_t>(kp * op) : 0, 0);
  std::vector<int32_t> coef(op, 0), colterm(op, 0), colterm_off(op, 0);
  std::vector<float> sc(op, 0.0f), bias(op, 0.0f);
  const uint32_t* wp = reinterpret_cast<const uint32_t*>(W.data_ptr<int32_t>());
  const int32_t* wz = w_zero.data_ptr<int32_t>();
  const float* ws = w_scale.data_ptr<float>();
  const float a_scale_f = static_cast<float>(a_scale);
  g.a_offset = a_bits == 8 ? 128 : 0;
  bool zeros_on_grid = a_zero >= 0 && a_zero <= 255;
  for (int64_t c = 0; c < o; ++c) {
    zeros_on_grid = zeros_on_grid && wz[c] >= 0 && wz[c] <= 255;
    int64_t colsum = 0;
    uint8_t* row = w_codes.data() + c * k;
    decode_row(wp + c * W.size(1), static_cast<int>(w_bits), k, row);
    for (int64_t j = 0; j < k; ++j) colsum += row[j];
    if (vnni) {  // 4 codes a store
      int64_t j = 0;
      for (; j + 4 <= k; j += 4) std::memcpy(&w_vnni[j * op + c * 4], row + j, 4);
      for (; j < k; ++j) w_vnni[(j / 4) * op * 4 + c * 4 + (j % 4)] = row[j];
    }
    if (amx)
      for (int64_t j = 0; j < k; ++j) {
        const int64_t p = gemm_amx_position(j, static_cast<int>(a_bits));
        w_amx[(p / 4) * op * 4 + c * 4 + (p % 4)] = row[j];
      }
    if (pairs)
      for (int64_t j = 0; j < k; ++j) w_pairs[(j / 2) * op * 2 + c * 2 + (j % 2)] = row[j];
    coef[c] = wrap32(-a_mult * static_cast<int64_t>(wz[c]));
    const int64_t ct = -a_zero * w_mult * colsum + k * a_zero * static_cast<int64_t>(wz[c]);
    colterm[c] = wrap32(ct);
    colterm_off[c] = wrap32(ct + static_cast<int64_t>(g.amwm) * g.a_offset * colsum);
    sc[c] = a_scale_f * ws[c];
    if (bias_t.defined()) bias[c] = bias_t.data_ptr<float>()[c];
  }
  g.w_codes = w_codes.data();
  g.w_vnni = vnni ? w_vnni.data() : nullptr;
  g.w_amx = amx ? w_amx.data() : nullptr;
  g.w_pairs = pairs ? w_pairs.data() : nullptr;
  g.coef = coef.data();
  g.colterm = colterm.data();
  g.colterm_off = colterm_off.data();
  g.sc = sc.data();
  g.bias = bias_t.defined() ? bias.data() : nullptr;
  PlanHold plan;
  std::vector<int32_t> dot_thr;
  if (out_grid) {
    g.requant = true;
    g.out_packed = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
    g.out_words = out_words;
    g.out_grid = *out_grid;
    g.chain = chain;
    // The AVX2 unit compares its float values (no thresholds on D there), as do the others where
    // D's thresholds do not apply or QGNN_CHAIN_PLAN=floats asks for float compares.
    const bool on_dot = fn != &gemm_rows_generic && fn != &gemm_rows_avx2 && !plan_on_floats() &&
                        dot_thresholds_apply(g, zeros_on_grid);
    if (fn != &gemm_rows_generic) g.plan = plan_chain(chain, *out_grid, n, o, &plan, on_dot);
    if (g.plan != nullptr && on_dot) {
      dot_thresholds(g, *g.plan, &dot_thr);
      g.dot_thr = dot_thr.data();
    }
  } else {
    g.out = out.data_ptr<float>();
  }
  g.stream = stream_stores_enabled();
  const size_t scratch_bytes = gemm_scratch_bytes(g);
  // At least ~4M multiply-adds per parallel chunk, so small products run inline.
  const int64_t tile_macs = kGemmTileRows * std::max<int64_t>(k, 1) * o;
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 22) / tile_macs);
  const int64_t tiles = (n + kGemmTileRows - 1) / kGemmTileRows;
  share_tasks(tiles, (tiles + grain - 1) / grain, [&](const auto& take) {
    Scratch scratch(scratch_bytes);
    for (int64_t t = take(); t < tiles; t = take())
      fn(g, t * kGemmTileRows, std::min(n, (t + 1) * kGemmTileRows), scratch.get());
  });
  return out;
}

at::Tensor gemm_cpu(const at::Tensor& a, int64_t a_bits, int64_t k, int64_t a_mult, double a_scale, int64_t a_zero,
                    const at::Tensor& w, int64_t w_bits, int64_t w_mult, const at::Tensor& w_scale,
                    const at::Tensor& w_zero, const c10::optional<at::Tensor>& bias) {
  return gemm_impl(a, a_bits, k, a_mult, a_scale, a_zero, w, w_bits, w_mult, w_scale, w_zero, bias, nullptr);
}

at::Tensor gemm_requant_cpu(const at::Tensor& a, int64_t a_bits, int64_t k, int64_t a_mult, double a_scale,
                            int64_t a_zero, const at::Tensor& w, int64_t w_bits, int64_t w_mult,
                            const at::Tensor& w_scale, const at::Tensor& w_zero, const c10::optional<at::Tensor>& bias,
                            int64_t out_bits, double out_scale, int64_t out_zero, int64_t out_mult, int64_t out_skew,
                            const c10::optional<at::Tensor>& chain, const c10::optional<at::Tensor>& chain_row,
                            const c10::optional<at::Tensor>& chain_col) {
  TORCH_CHECK(out_bits == 1 || out_bits == 2 || out_bits == 4 || out_bits == 8, "unsupported bit width ", out_bits);
  TORCH_CHECK(out_mult >= 1 && out_mult * ((1 << out_bits) - 1) <= 255, "out_mult exceeds the 8-bit grid");
  TORCH_CHECK(out_scale > 0, "out_scale must be positive");
  const Grid grid{static_cast<int>(out_bits), static_cast<float>(out_scale), static_cast<int>(out_zero),
                  static_cast<int>(out_mult), static_cast<int>(out_skew)};
  TORCH_CHECK(a.dim() == 2 && w.dim() == 2, "a_packed and w_packed must be 2-D");
  ChainHold hold;
  const bool chained = read_chain(chain, chain_row, chain_col, a.size(0), w.size(0), &hold);
  return gemm_impl(a, a_bits, k, a_mult, a_scale, a_zero, w, w_bits, w_mult, w_scale, w_zero, bias, &grid,
                   chained ? &hold.chain : nullptr);
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(qgnn, CPU, m) {
  m.impl("gemm", &cpu::gemm_cpu);
  m.impl("gemm_requant", &cpu::gemm_requant_cpu);
}

}  // namespace qgnn

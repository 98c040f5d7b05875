// Epilogue chains (kernels.h, qgnn_cli/kernels/chain.py): the scalar path and the torch-side reader.
//
// Built for the baseline ISA with -ffp-contract=off (setup.py): every product and sum rounds to
// float32 on its own, as the PyTorch reference computes them.
#include "chain.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "../common/codes.h"
#include "isa.h"

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

// Stages [s0, s1) of `c` as a chain of their own (same row and column vectors).
Chain sub_chain(const Chain& c, int s0, int s1) {
  Chain out = c;
  out.n = s1 - s0;
  for (int s = s0; s < s1; ++s) {
    out.op[s - s0] = c.op[s];
    out.grid[s - s0] = c.grid[s];
  }
  return out;
}

// Floats in their numeric order as unsigned keys (-0 and +0 adjacent; NaNs outside [-inf, +inf]).
uint32_t float_key(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return (u >> 31) ? ~u : (u | 0x80000000u);
}
float key_float(uint32_t k) {
  const uint32_t u = (k >> 31) ? (k & 0x7FFFFFFFu) : ~k;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The counted grid's codes of buf[0, n) through the plan's prefix by the scalar stages
// (apply_chain_scalar, quantize_grid), for the AVX2 units: their stages are the same float32
// operations (the tests hold both to the reference), so a compare decides what they would.
void plan_codes_scalar(const ChainPlan& p, float* buf, int64_t n, int32_t* code) {
  apply_chain_scalar(p.prefix, buf, n, 0);  // no mul_row before the counted grid
  const Grid& g = p.counted;
  for (int64_t c = 0; c < n; ++c)
    code[c] = static_cast<int32_t>(quantize_grid(buf[c], g.scale, static_cast<float>(g.zero), g.bits, g.mult, g.skew));
}

// thr[k][c] = the smallest float whose counted code exceeds k, by bisection on the float keys (the
// codes are non-decreasing in the value, so "code > k" holds exactly from there on); -inf when every
// value's code does, NaN when none does. `codes` evaluates a row of values by the selected unit's
// own stages. Columns [0, n) are searched, the rest copy column 0 (n < cols only when no stage
// depends on the column).
void plan_thresholds(const ChainPlan& p, int64_t cols, int64_t n, float* thr,
                     void (*codes)(const ChainPlan&, float*, int64_t, int32_t*)) {
  std::vector<float> buf(static_cast<size_t>(n));
  std::vector<int32_t> code(static_cast<size_t>(n));
  std::vector<uint32_t> lo(static_cast<size_t>(n)), hi(static_cast<size_t>(n));  // code(lo) <= k < code(hi)
  const auto fill = [&](const auto& value) {
    for (int64_t c = 0; c < n; ++c) buf[c] = value(c);
    codes(p, buf.data(), n, code.data());
  };
  const float inf = std::numeric_limits<float>::infinity();
  for (int k = 0; k < p.counts; ++k) {
    fill([&](int64_t) { return -inf; });
    for (int64_t c = 0; c < n; ++c) {
      lo[c] = float_key(-inf);
      hi[c] = code[c] > k ? lo[c] : float_key(inf);
    }
    fill([&](int64_t) { return inf; });
    for (int64_t c = 0; c < n; ++c)
      if (code[c] <= k) lo[c] = hi[c] = 0;  // key 0 is a NaN: no value reaches k + 1
    for (bool open = true; open;) {
      open = false;
      fill([&](int64_t c) { return hi[c] > lo[c] + 1 ? key_float(lo[c] + (hi[c] - lo[c]) / 2) : 0.0f; });
      for (int64_t c = 0; c < n; ++c)
        if (hi[c] > lo[c] + 1) {
          const uint32_t mid = lo[c] + (hi[c] - lo[c]) / 2;
          (code[c] > k ? hi[c] : lo[c]) = mid;
          open = open || hi[c] > lo[c] + 1;
        }
    }
    float* t = thr + k * p.cols_pad;
    for (int64_t c = 0; c < cols; ++c) t[c] = key_float(hi[c < n ? c : 0]);
  }
}

// QGNN_CHAIN_PLAN is `mode`; read per call: tests switch it.
bool plan_mode_is(const char* mode) {
  const char* env = std::getenv("QGNN_CHAIN_PLAN");
  return env != nullptr && std::strcmp(env, mode) == 0;
}

}  // namespace

const ChainPlan* plan_chain(const Chain* chain, const Grid& out, int64_t rows, int64_t cols, PlanHold* hold,
                            bool int_compares) {
  const bool always = plan_mode_is("always") || plan_mode_is("floats");
  const Isa isa = selected_isa();
  if (plan_mode_is("never") || cols <= 0) return nullptr;
  // The AVX2 units pack planned codes 32 at a time (2, 4 or 8 bits): 1-bit output rows take the stages.
  if (isa != Isa::Avx512 && !(isa == Isa::Avx2 && out.bits != 1)) return nullptr;
  if (!(out.scale > 0.0f)) return nullptr;  // the compares need a non-decreasing grid (the ops check it too)
  static const Chain kEmpty{};
  const Chain& c = chain ? *chain : kEmpty;
  int last_mul = -1;
  for (int s = 0; s < c.n; ++s)
    if (c.op[s] == kChainMulRow) last_mul = s;
  ChainPlan& p = hold->plan;
  int counted_at = c.n;  // the counted grid: `out`, or the fake_quant stage before the last mul_row
  if (last_mul >= 0) {
    if (last_mul == 0 || c.op[last_mul - 1] != kChainFakeQuant) return nullptr;
    counted_at = last_mul - 1;
    for (int s = 0; s < counted_at; ++s)
      if (c.op[s] == kChainMulRow) return nullptr;
    for (int s = last_mul; s < c.n; ++s)
      if (c.op[s] == kChainAddCol) return nullptr;
  }
  p.counted = counted_at < c.n ? c.grid[counted_at] : out;
  // A 4-bit grid's 15 thresholds cost more than its stages wherever floats are compared: AVX2 takes
  // them in turn (200k x 128 SpMM re-quantised to 4 bits, one thread: 61 against 35 ms; 2 bits: 28
  // against 37), AVX-512 in a 4-step bisection of blends (37-41 against 22-34 ms; quantize_pack of
  // Cora's 2708 x 1433 features: 3.9-4.7 against 1.9-2.0 ms). The AVX-512 GEMM's compares on its
  // integer D pay at 4 bits only when they also replace a chain's stages (2M x 128 to 4 bits, two
  // threads: site + mul_row 153-156 against 165-172 ms, site + bias + ReLU 147-151 against 177-183;
  // no chain 153-164 against 127-135).
  if (p.counted.bits > (int_compares && isa == Isa::Avx512 && c.n > 0 ? 4 : 2)) return nullptr;
  const int levels = 1 << p.counted.bits;
  p.counts = levels - 1;
  p.prefix = sub_chain(c, 0, counted_at);
  bool per_col = false;
  for (int s = 0; s < p.prefix.n; ++s) per_col = per_col || p.prefix.op[s] == kChainAddCol;
  // The bisection costs ~34 row evaluations per threshold (over 16 columns when none depends on its column).
  const int64_t search_cols = per_col ? cols : std::min<int64_t>(cols, 16);
  if (!always && rows * cols < 4 * 34 * int64_t(p.counts) * search_cols) return nullptr;
  p.lut = last_mul >= 0;
  if (p.lut) {
    p.suffix = sub_chain(c, last_mul, c.n);
    const Grid& g = p.counted;
    for (int j = 0; j < levels; ++j) p.level[j] = static_cast<float>(j * g.mult - g.zero) * g.scale;
  }
  p.cols_pad = (cols + 15) / 16 * 16;
  hold->thr.assign(static_cast<size_t>(p.counts * p.cols_pad), 0.0f);
  p.thr = hold->thr.data();
  plan_thresholds(p, cols, search_cols, hold->thr.data(), isa == Isa::Avx512 ? &plan_codes_avx512 : &plan_codes_scalar);
  return &p;
}

bool plan_on_floats() { return plan_mode_is("floats"); }

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

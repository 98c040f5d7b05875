// The raw-pointer interface of the packed CPU kernels: one declaration per op and ISA.
//
// ggml style: every op has a generic implementation (spmm.cpp, gemm.cpp, quantize.cpp, compiled for
// the baseline ISA) and optional overrides in their own translation units (*_avx2.cpp,
// *_avx512.cpp) compiled with target pragmas. Those units include no torch, ATen or STL headers:
// plain structs and raw pointers in, raw pointers out. The torch glue (in the plain units) validates
// tensors, splits rows into load-balanced tasks, and calls the function of the selected ISA per task.
//
// Semantics are those of the PyTorch references in qgnn_cli/kernels/{spmm,gemm,quantize}.py.
#pragma once

#include <cstddef>
#include <cstdint>

namespace qgnn {
namespace cpu {

// A quantization grid (qgnn_cli/kernels/rounding.py): bits, scale, zero, mult, skew.
struct Grid {
  int bits;
  float scale;
  int zero;
  int mult;
  int skew;
};

// Largest degree whose integer sum over codes of `bits` bits (mult * code - zero each, as an SpMM or
// SMP aggregation adds them) cannot overflow int32; the Python wrappers enforce it too.
inline int64_t int32_degree_limit(int bits, int mult, int zero) {
  int64_t m = static_cast<int64_t>(mult) * ((int64_t{1} << bits) - 1);
  if (zero > m) m = zero;
  if (m < 1) m = 1;
  return 2147483647LL / m;
}

// An epilogue chain (qgnn_cli/kernels/chain.py, which defines the same stage codes): per-element
// float32 stages that spmm_requant and gemm_requant apply to each output row, in order, before the
// row is quantized onto the output grid. This is how a run of sites between two packed ops (output
// site, D^-1/2, bias, ReLU, update site) stays inside one kernel instead of extra passes.
enum ChainOp : int { kChainFakeQuant = 0, kChainMulRow = 1, kChainAddCol = 2, kChainRelu = 3 };
constexpr int kMaxChainStages = 8;
struct Chain {
  int n;
  int op[kMaxChainStages];
  Grid grid[kMaxChainStages];  // for kChainFakeQuant: value = (mult * code - zero) * scale
  const float* row;            // [rows], for kChainMulRow: y *= row[r]
  const float* col;            // [cols], for kChainAddCol: y += col[c]
};

// The chain on one row y[0, cols) of output row `row`, scalar (chain.cpp, baseline ISA, no FMA
// contraction); the generic path calls it, AVX2 and AVX-512 have their own (quantize_avx*.inc).
void apply_chain_scalar(const Chain& c, float* y, int64_t cols, int64_t row);

// An epilogue (a chain, then the output grid) compiled to comparisons for the AVX-512 and AVX2 units
// (chain.cpp: plan_chain). Every stage except mul_row is non-decreasing in its input (scales are
// positive), so before the last mul_row the code of the counted grid (the output grid, or the
// fake_quant stage just before that mul_row) is the number of a column's thresholds the value
// reaches: a few compares instead of the stages. From the mul_row on the values are that grid's L
// levels, so those stages become a per-row table of L codes. A row holding NaN takes the chain.
constexpr int kMaxPlanLevels = 16;
struct ChainPlan {
  int counts;        // thresholds per column: L - 1 (L = 2^bits of the counted grid, <= 16)
  int64_t cols_pad;  // row stride of thr: cols rounded up to 16
  const float* thr;  // [counts][cols_pad]: smallest value whose code exceeds k (NaN: none does)
  Chain prefix;      // the stages before the counted grid
  Grid counted;
  bool lut;          // the code goes through the per-row table
  Chain suffix;      // lut: the stages from the last mul_row on (then the output grid)
  float level[kMaxPlanLevels];  // lut: the counted grid's values (mult * code - zero) * scale
};

// The counted grid's codes of the values buf[0, n) (columns 0..n-1) through the plan's prefix, by
// the AVX-512 stages themselves (spmm_avx512.cpp), so that the thresholds chain.cpp bisects with them
// decide exactly what those stages would have. buf is overwritten.
void plan_codes_avx512(const ChainPlan& p, float* buf, int64_t n, int32_t* code);

// qgnn::spmm / qgnn::spmm_requant over the rows [r0, r1) of a CSR matrix.
struct SpmmArgs {
  const int64_t* indptr;   // [num_rows + 1]
  const int32_t* indices;  // [nnz], each in [0, num_src)
  const float* values;     // [nnz] or nullptr (unweighted: exact integer sums)
  int64_t nnz;
  const uint32_t* packed;  // [num_src, words]
  int64_t num_src;
  int64_t words;
  int64_t cols;
  int bits;
  int mult;
  float scale;
  int zero;
  const float* row_scale;  // [num_rows] or nullptr
  // Output: float rows (requant == false, row stride cols) or re-quantised packed rows.
  bool requant;
  float* out;
  uint32_t* out_packed;  // [num_rows, out_words]
  int64_t out_words;
  Grid out_grid;
  const Chain* chain;  // applied before out_grid (requant only), or nullptr
  const ChainPlan* plan;  // the chain and out_grid as compares (AVX-512, AVX2), or nullptr
  int prefetch;  // software prefetch distance in edges (0: none)
  bool stream;   // non-temporal stores allowed for float output rows (QGNN_STREAM_STORES, default 1)
};

// Whether a unit writes the float rows with non-temporal stores: allowed, and every row starts on a
// cache line (the output is 1 GB at 2M x 128; a re-quantised call writes packed rows instead).
inline bool spmm_streams(const SpmmArgs& a) {
  return a.stream && !a.requant && a.cols % 16 == 0 && (reinterpret_cast<uintptr_t>(a.out) & 63) == 0;
}

// Scratch bytes one call of spmm_rows_* needs (64-byte aligned by the caller).
size_t spmm_scratch_bytes(const SpmmArgs& a);

// Each returns the number of malformed rows or out-of-range indices it met and skipped (0 when the
// inputs are valid), so that a direct torch.ops call with bad indices cannot read out of bounds.
int64_t spmm_rows_generic(const SpmmArgs& a, int64_t r0, int64_t r1, void* scratch);
int64_t spmm_rows_avx2(const SpmmArgs& a, int64_t r0, int64_t r1, void* scratch);
int64_t spmm_rows_avx512(const SpmmArgs& a, int64_t r0, int64_t r1, void* scratch);

// qgnn::quantize_pack of rows [r0, r1) of a float matrix x [rows, cols] into out [rows, words].
struct QuantizeArgs {
  const float* x;
  int64_t cols;
  uint32_t* out;
  int64_t words;
  Grid grid;
  const ChainPlan* plan;  // the grid as compares (AVX-512, AVX2), or nullptr
};
void quantize_rows_generic(const QuantizeArgs& a, int64_t r0, int64_t r1, void* scratch);
void quantize_rows_avx2(const QuantizeArgs& a, int64_t r0, int64_t r1, void* scratch);
void quantize_rows_avx512(const QuantizeArgs& a, int64_t r0, int64_t r1, void* scratch);
size_t quantize_scratch_bytes(int64_t cols);

// qgnn::gemm. The glue prepares the weights once per call (gemm.cpp):
//   D[r, c] = am*wm * dot(qa[r], qw[c]) + rowsum_qa[r] * coef[c] + colterm[c]   (int32, wrapping)
//   out[r, c] = float(D) * sc[c] + bias[c]
// with dot over the raw codes. `a_offset` (128 for 8-bit activations, else 0) is subtracted from
// every activation code before the integer dot product on the AVX-512 path (u8 x s8 dpbusd); the
// glue folds a_offset * colsum_qw[c] * am*wm into colterm for that path.
struct GemmArgs {
  const uint32_t* a;  // [n, a_words]
  int64_t n;
  int64_t a_words;
  int a_bits;
  int w_bits;
  int64_t k;
  int32_t amwm;           // a_mult * w_mult
  int64_t o;              // output channels
  int64_t o_pad;          // o rounded up to a multiple of 16
  int64_t k_pad;          // k rounded up to a multiple of 4
  const uint8_t* w_codes;  // [o, k] raw weight codes (generic path)
  // The layouts below are built only for the unit that reads them (nullptr otherwise).
  const uint8_t* w_vnni;   // [k_pad/4][o_pad][4] u8 (AVX-512 path; AVX2 for weights of <= 4 bits)
  const uint8_t* w_amx;    // [k_amx/4][o_pad][4] u8, k in plane order (gemm_amx_position), or nullptr
  int64_t k_amx;           // k rounded up to 64 (AMX tiles take 64 bytes of k)
  const int16_t* w_pairs;  // [k_pad/2][o_pad][2] i16 (AVX2 path, 8-bit weights)
  const int32_t* coef;     // [o_pad]
  const int32_t* colterm;  // [o_pad] (generic/AVX2: without the offset term)
  const int32_t* colterm_off;  // [o_pad] (AVX-512: with a_offset folded in)
  int32_t a_offset;
  const float* sc;    // [o_pad] a_scale * w_scale[c]
  const float* bias;  // [o_pad] or nullptr
  float* out;         // [n, o] float output, or (requant) nothing
  // Re-quantised output (qgnn::gemm_requant): each float row is quantised on out_grid and packed.
  bool requant;
  bool stream;  // non-temporal stores allowed for the float output (QGNN_STREAM_STORES, default 1)
  uint32_t* out_packed;  // [n, out_words]
  int64_t out_words;
  Grid out_grid;
  const Chain* chain;  // applied before out_grid (requant only), or nullptr
  const ChainPlan* plan;  // the chain and out_grid as compares (AVX-512, AVX2), or nullptr
  // The plan's thresholds moved onto D itself, [plan->counts][o_pad]: count k is reached when
  // D > dot_thr[k][c] (gemm.cpp: dot_thresholds), so rows skip their float values. nullptr: compare floats.
  const int32_t* dot_thr;
};
// Rows per GEMM task: the units' float tile holds this many output rows (their byte codes follow
// it); a multiple of AMX's 32-row blocks.
constexpr int64_t kGemmTileRows = 64;
size_t gemm_scratch_bytes(const GemmArgs& a);
size_t gemm_tile_offset(const GemmArgs& a);  // float tile for the re-quantising epilogue
size_t gemm_acc_offset(const GemmArgs& a);   // int32 accumulator tile of the AMX path
void gemm_rows_generic(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch);
void gemm_rows_avx2(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch);
void gemm_rows_avx512(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch);
// AMX-INT8 (gemm_avx512.cpp): rows are unpacked in "plane order" (per 64 codes, every byte's first
// field, then its second, ...: shifts and masks, no shuffles), so the weights are laid out in that
// order too; this is the position of code j of k. Needs amx_enabled() and a_bits in {2, 4, 8}.
inline int64_t gemm_amx_position(int64_t j, int bits) {
  const int64_t per_byte = 8 / bits, r = j % 64;
  return j / 64 * 64 + (64 / per_byte) * (r % per_byte) + r / per_byte;
}
void gemm_rows_amx(const GemmArgs& a, int64_t r0, int64_t r1, void* scratch);

// QGNN_STREAM_STORES=0 turns non-temporal output stores off (for measurements); read once.
bool stream_stores_enabled();

// Benchmark helper (qgnn::gather_floor): touch every neighbour's packed row and nothing else.
// out[i] = XOR of every word of every neighbour row of row i; returns the malformed-input count.
int64_t gather_floor_rows_generic(const SpmmArgs& a, int64_t r0, int64_t r1, uint32_t* out);
int64_t gather_floor_rows_avx2(const SpmmArgs& a, int64_t r0, int64_t r1, uint32_t* out);
int64_t gather_floor_rows_avx512(const SpmmArgs& a, int64_t r0, int64_t r1, uint32_t* out);

// qgnn::smp_delta / qgnn::smp_update (qgnn_cli/kernels/smp.py): one half of an SMP step over the rows
// [r0, r1): the aggregation of `agg` over A + I (qgnn::spmm_requant's sums, dinv row scale, agg_out
// codes), then the step's elementwise work on each aggregated row.
struct SmpStepArgs {
  const int64_t* indptr;  // [rows + 1]
  const int32_t* indices;  // [nnz], each in [0, rows)
  int64_t nnz, rows;
  const uint32_t* agg;  // rows to aggregate (grid agg_in); nullptr: no aggregation (smp_update, mode appnp)
  int64_t agg_words;
  Grid agg_in, agg_out;
  int64_t max_degree;  // int32_degree_limit of agg_in: set once per call by run_blocks (not a division per row)
  const uint32_t *x, *ax, *h;  // ax: smp_update only (smp_delta aggregates it)
  int64_t x_words, ax_words, h_words;
  Grid gx, gax, gh;
  const float* ax_float;  // smp_update: AX as float32 [rows, cols] when its site (gax) is off, else nullptr
  const float* dinv;  // [rows]
  int64_t cols;
  float keep, smooth, eta, c;
  int mode;  // smp_update: 0 authors, 1 exact, 2 appnp
  uint32_t* ax_out;  // smp_delta: AX on agg_out (nullptr when agg_out is off)
  int64_t ax_out_words;
  float* ax_out_float;  // smp_delta: AX as float32 [rows, cols] when agg_out is off, else nullptr
  Grid out_grid;        // smp_delta: dx_in; smp_update: the update site (bits 32: off, float output)
  uint32_t* out_codes;  // on out_grid, or nullptr
  int64_t out_words;
  float* out_float;  // smp_delta: dx [rows, cols] or nullptr; smp_update: x when the update site is off
  Grid next_grid;    // smp_update: next step's aggregation input
  uint32_t* pre;     // on next_grid, or nullptr
  int64_t pre_words;
};
// Row i's edges [*begin, *end) of the aggregation, when the row is well formed and short enough for
// exact int32 sums of codes on agg_in; false (a malformed row, skipped) otherwise.
inline bool smp_row_edges(const SmpStepArgs& a, int64_t i, int64_t* begin, int64_t* end) {
  *begin = a.indptr[i];
  *end = a.indptr[i + 1];
  return *begin >= 0 && *end >= *begin && *end <= a.nnz && *end - *begin <= a.max_degree;
}

// Energy sum of the rows (sum(dx * dx) for delta, sum(dx * adx) for update) and the number of malformed
// rows or out-of-range indices skipped (0 for valid inputs). `scratch`: smp_scratch_ints(cols) int32.
struct SmpRows {
  double energy;
  int64_t bad;
};
int64_t smp_scratch_ints(int64_t cols);
// The bit width every grid the step's rows use shares (2, 4 or 8), for rows of 1-16 codes, else 0:
// where the SIMD units fold their width switches and keep the sums in registers (smp_step.cpp).
int smp_delta_uniform_bits(const SmpStepArgs& a);
int smp_update_uniform_bits(const SmpStepArgs& a);
SmpRows smp_delta_rows_generic(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch);
SmpRows smp_delta_rows_avx2(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch);
SmpRows smp_delta_rows_avx512(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch);
SmpRows smp_update_rows_generic(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch);
SmpRows smp_update_rows_avx2(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch);
SmpRows smp_update_rows_avx512(const SmpStepArgs& a, int64_t r0, int64_t r1, int32_t* scratch);

// qgnn::site_codes (qgnn_cli/kernels/site.py) over elements [i0, i1): a training site's codes in one
// pass, the same float32 ops in the same order as its PyTorch reference (so the same bits, signed
// zeros and NaNs included):
//   t = x / scale;  u = clamp(t, -zero, levels - zero);  outside = sign(|t - u|)
//   centred = round(u) + 0                                        (plain grids)
//   centred = clamp(round((round(u) + shift) / mult), 0, qmax) * mult + (-zero)   (BT: shift = zero + skew)
//   masked_t = t * (1 - outside);  value = centred * scale (when asked for)
struct SiteArgs {
  const float* x;
  float scale, zero, levels, qmax, mult, shift;
  bool fine;       // BT grid (mult != 1 or skew != 0)
  float* centred;  // outputs, [n]
  float* masked_t;
  float* value;  // or nullptr
};
void site_codes_generic(const SiteArgs& a, int64_t i0, int64_t i1);
void site_codes_avx2(const SiteArgs& a, int64_t i0, int64_t i1);
void site_codes_avx512(const SiteArgs& a, int64_t i0, int64_t i1);

}  // namespace cpu
}  // namespace qgnn

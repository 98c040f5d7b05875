// qgnn::spmm, qgnn::spmm_requant and qgnn::gather_floor for CPU tensors: torch glue, the generic
// kernel, and run-time dispatch to the AVX2 / AVX-512 units (kernels.h).
//
// Inputs are validated in qgnn_cli/kernels/spmm.py. The glue re-checks dtypes and shapes (cheap),
// and every kernel checks each row's indptr range and each column index before it reads (a compare
// per edge), so a direct torch.ops call with a malformed CSR raises instead of reading out of bounds.
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
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

size_t spmm_scratch_bytes(const SpmmArgs& a) {
  // int32 accumulators (padded to whole words of codes and to a 1024-feature column block), float
  // row, and byte codes for the re-quantising epilogue.
  const int64_t padded = std::max<int64_t>(a.words * (32 / a.bits), a.out_words * 32) + 1024 + 64;
  return static_cast<size_t>(padded) * (4 + 4 + 1) + 256;
}

namespace {

template <int BITS>
void add_codes(int32_t* acc, const uint32_t* row, int64_t words) {
  constexpr int per_word = 32 / BITS;
  constexpr uint32_t mask = (1u << BITS) - 1u;
  for (int64_t w = 0; w < words; ++w) {
    const uint32_t word = row[w];
    for (int t = 0; t < per_word; ++t) acc[w * per_word + t] += static_cast<int32_t>((word >> (t * BITS)) & mask);
  }
}

template <int BITS>
void add_weighted(float* acc, const uint32_t* row, int64_t words, float w, int mult, int zero) {
  constexpr int per_word = 32 / BITS;
  constexpr uint32_t mask = (1u << BITS) - 1u;
  for (int64_t wd = 0; wd < words; ++wd) {
    const uint32_t word = row[wd];
    for (int t = 0; t < per_word; ++t) {
      const float c = static_cast<float>(mult * static_cast<int32_t>((word >> (t * BITS)) & mask) - zero);
      acc[wd * per_word + t] += w * c;
    }
  }
}

}  // namespace

// The row epilogue shared by the generic path: float row y -> out (float) or packed codes.
static void finish_row_generic(const SpmmArgs& a, int64_t i, float* y) {
  if (!a.requant) {
    std::memcpy(a.out + i * a.cols, y, sizeof(float) * a.cols);
    return;
  }
  if (a.chain) apply_chain_scalar(*a.chain, y, a.cols, i);
  uint32_t* dst = a.out_packed + i * a.out_words;
  std::memset(dst, 0, sizeof(uint32_t) * a.out_words);
  const Grid& g = a.out_grid;
  for (int64_t j = 0; j < a.cols; ++j)
    put_code(dst, j, g.bits,
             quantize_grid(y[j], g.scale, static_cast<float>(g.zero), g.bits, g.mult, g.skew));
}

int64_t spmm_rows_generic(const SpmmArgs& a, int64_t r0, int64_t r1, void* scratch) {
  const int64_t padded = a.words * (32 / a.bits);
  int32_t* iacc = static_cast<int32_t*>(scratch);
  float* facc = reinterpret_cast<float*>(iacc + padded + 64);
  float* y = facc + padded + 64;
  int64_t bad = 0;
  const int64_t limit = int32_degree_limit(a.bits, a.mult, a.zero);
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t begin = a.indptr[i], end = a.indptr[i + 1];
    if (begin < 0 || end < begin || end > a.nnz || (a.values == nullptr && end - begin > limit)) {
      ++bad;
      continue;
    }
    const float rs = a.row_scale ? a.row_scale[i] : 1.0f;
    if (a.values == nullptr) {
      std::fill(iacc, iacc + padded, 0);
      int64_t deg = 0;
      for (int64_t e = begin; e < end; ++e) {
        const uint32_t j = static_cast<uint32_t>(a.indices[e]);
        if (j >= static_cast<uint64_t>(a.num_src)) {
          ++bad;
          continue;
        }
        ++deg;
        const uint32_t* row = a.packed + j * a.words;
        switch (a.bits) {
          case 1: add_codes<1>(iacc, row, a.words); break;
          case 2: add_codes<2>(iacc, row, a.words); break;
          case 4: add_codes<4>(iacc, row, a.words); break;
          default: add_codes<8>(iacc, row, a.words); break;
        }
      }
      const int32_t dz = static_cast<int32_t>(deg) * a.zero;
      for (int64_t f = 0; f < a.cols; ++f)
        y[f] = static_cast<float>(a.mult * iacc[f] - dz) * a.scale * rs;
    } else {
      std::fill(facc, facc + padded, 0.0f);
      for (int64_t e = begin; e < end; ++e) {
        const uint32_t j = static_cast<uint32_t>(a.indices[e]);
        if (j >= static_cast<uint64_t>(a.num_src)) {
          ++bad;
          continue;
        }
        const uint32_t* row = a.packed + j * a.words;
        const float w = a.values[e];
        switch (a.bits) {
          case 1: add_weighted<1>(facc, row, a.words, w, a.mult, a.zero); break;
          case 2: add_weighted<2>(facc, row, a.words, w, a.mult, a.zero); break;
          case 4: add_weighted<4>(facc, row, a.words, w, a.mult, a.zero); break;
          default: add_weighted<8>(facc, row, a.words, w, a.mult, a.zero); break;
        }
      }
      for (int64_t f = 0; f < a.cols; ++f) y[f] = facc[f] * a.scale * rs;
    }
    finish_row_generic(a, i, y);
  }
  return bad;
}

int64_t gather_floor_rows_generic(const SpmmArgs& a, int64_t r0, int64_t r1, uint32_t* out) {
  int64_t bad = 0;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t begin = a.indptr[i], end = a.indptr[i + 1];
    if (begin < 0 || end < begin || end > a.nnz) { ++bad; continue; }
    uint32_t h = 0;
    for (int64_t e = begin; e < end; ++e) {
      const uint32_t j = static_cast<uint32_t>(a.indices[e]);
      if (j >= static_cast<uint64_t>(a.num_src)) { ++bad; continue; }
      for (int64_t w = 0; w < a.words; ++w) h ^= a.packed[j * a.words + w];
    }
    out[i] = h;
  }
  return bad;
}

bool stream_stores_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("QGNN_STREAM_STORES");
    return env == nullptr || std::atoi(env) != 0;
  }();
  return on;
}

namespace {

int prefetch_distance() {
  static const int d = [] {
    const char* env = std::getenv("QGNN_SPMM_PREFETCH");
    return env ? std::max(0, std::atoi(env)) : 32;
  }();
  return d;
}

// Contiguous row ranges of about equal cost (edges + a per-row overhead), many more than threads:
// the threads take them one at a time (tasks.h), which balances the power-law degrees.
std::vector<int64_t> split_rows(const int64_t* indptr, int64_t rows, int64_t tasks) {
  constexpr int64_t kRowCost = 4;
  const int64_t total = indptr[rows] + kRowCost * rows;
  std::vector<int64_t> bounds{0};
  int64_t lo = 0;
  for (int64_t t = 1; t < tasks; ++t) {
    const int64_t target = total * t / tasks;
    int64_t l = lo, h = rows;  // first row r with cost(r) >= target
    while (l < h) {
      const int64_t m = l + (h - l) / 2;
      if (indptr[m] + kRowCost * m < target) l = m + 1; else h = m;
    }
    if (l > bounds.back()) bounds.push_back(l);
    lo = l;
  }
  if (bounds.back() != rows) bounds.push_back(rows);
  return bounds;
}

// Enough tasks to balance the threads (16 per thread), none smaller than ~64k edges of work: a small
// graph (Cora) runs inline, without waking (or, on a busy machine, waiting for) a second thread.
int64_t num_tasks(const int64_t* indptr, int64_t rows) {
  constexpr int64_t kMinTaskCost = 1 << 16;
  const int64_t threads = at::get_num_threads();
  const int64_t cost = indptr[rows] + 4 * rows;
  return std::max<int64_t>(1, std::min<int64_t>(threads > 1 ? threads * 16 : 1, cost / kMinTaskCost));
}

using RowsFn = int64_t (*)(const SpmmArgs&, int64_t, int64_t, void*);

RowsFn pick_spmm() {
  switch (selected_isa()) {
    case Isa::Avx512: return &spmm_rows_avx512;
    case Isa::Avx2: return &spmm_rows_avx2;
    default: return &spmm_rows_generic;
  }
}

void check_common(const at::Tensor& indptr, const at::Tensor& indices, const c10::optional<at::Tensor>& values,
                  const at::Tensor& packed, int64_t bits, int64_t cols, int64_t mult, int64_t zero,
                  const c10::optional<at::Tensor>& row_scale) {
  TORCH_CHECK(bits == 1 || bits == 2 || bits == 4 || bits == 8, "unsupported bit width ", bits);
  TORCH_CHECK(indptr.scalar_type() == at::kLong && indptr.dim() == 1 && indptr.numel() >= 1,
              "indptr must be a non-empty 1-D int64 tensor");
  TORCH_CHECK(indices.scalar_type() == at::kInt && indices.dim() == 1, "indices must be a 1-D int32 tensor");
  TORCH_CHECK(packed.scalar_type() == at::kInt && packed.dim() == 2, "packed must be a 2-D int32 tensor");
  TORCH_CHECK(cols >= 0 && packed.size(1) == words_per_row(cols, static_cast<int>(bits)),
              "packed width does not match cols");
  TORCH_CHECK(mult >= 1 && mult * ((1 << bits) - 1) <= 255, "mult exceeds the 8-bit grid");
  TORCH_CHECK(zero >= 0 && zero <= mult * ((1 << bits) - 1), "zero point outside the grid");
  if (values.has_value())
    TORCH_CHECK(values->scalar_type() == at::kFloat && values->dim() == 1 && values->numel() == indices.numel(),
                "values must be 1-D float32 with one entry per index");
  if (row_scale.has_value())
    TORCH_CHECK(row_scale->scalar_type() == at::kFloat && row_scale->dim() == 1 &&
                    row_scale->numel() == indptr.numel() - 1,
                "row_scale must be 1-D float32 with one entry per row");
}

struct Inputs {
  at::Tensor indptr, indices, values, packed, row_scale;
};

Inputs prepare(SpmmArgs& a, const at::Tensor& indptr_in, const at::Tensor& indices_in,
               const c10::optional<at::Tensor>& values_in, const at::Tensor& packed_in, int64_t bits,
               int64_t cols, int64_t mult, double scale, int64_t zero,
               const c10::optional<at::Tensor>& row_scale_in) {
  check_common(indptr_in, indices_in, values_in, packed_in, bits, cols, mult, zero, row_scale_in);
  Inputs in;
  in.indptr = indptr_in.contiguous();
  in.indices = indices_in.contiguous();
  in.packed = packed_in.contiguous();
  if (values_in.has_value()) in.values = values_in->contiguous();
  if (row_scale_in.has_value()) in.row_scale = row_scale_in->contiguous();
  const int64_t rows = in.indptr.numel() - 1;
  a = SpmmArgs{};
  a.indptr = in.indptr.data_ptr<int64_t>();
  TORCH_CHECK(a.indptr[0] == 0 && a.indptr[rows] == in.indices.numel(),
              "indptr must start at 0 and end at the number of indices");
  a.indices = in.indices.data_ptr<int32_t>();
  a.values = in.values.defined() ? in.values.data_ptr<float>() : nullptr;
  a.nnz = in.indices.numel();
  a.packed = reinterpret_cast<const uint32_t*>(in.packed.data_ptr<int32_t>());
  a.num_src = in.packed.size(0);
  a.words = in.packed.size(1);
  a.cols = cols;
  a.bits = static_cast<int>(bits);
  a.mult = static_cast<int>(mult);
  a.scale = static_cast<float>(scale);
  a.zero = static_cast<int>(zero);
  a.row_scale = in.row_scale.defined() ? in.row_scale.data_ptr<float>() : nullptr;
  a.prefetch = prefetch_distance();
  a.stream = stream_stores_enabled();
  return in;
}

void run_rows(const SpmmArgs& a, int64_t rows, RowsFn fn) {
  if (rows == 0) return;
  const std::vector<int64_t> bounds = split_rows(a.indptr, rows, num_tasks(a.indptr, rows));
  const int64_t tasks = static_cast<int64_t>(bounds.size()) - 1;
  const size_t scratch_bytes = spmm_scratch_bytes(a);
  std::atomic<int64_t> bad{0};
  share_tasks(tasks, tasks, [&](const auto& take) {
    Scratch scratch(scratch_bytes);
    int64_t local = 0;
    for (int64_t t = take(); t < tasks; t = take()) local += fn(a, bounds[t], bounds[t + 1], scratch.get());
    if (local) bad += local;
  });
  TORCH_CHECK(bad.load() == 0, "spmm: malformed CSR (", bad.load(),
              " decreasing indptr entries or column indices out of range)");
}

at::Tensor spmm_cpu(const at::Tensor& indptr, const at::Tensor& indices, const c10::optional<at::Tensor>& values,
                    const at::Tensor& packed, int64_t bits, int64_t cols, int64_t mult, double scale, int64_t zero,
                    const c10::optional<at::Tensor>& row_scale) {
  SpmmArgs a;
  Inputs keep = prepare(a, indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale);
  const int64_t rows = keep.indptr.numel() - 1;
  at::Tensor out = output_empty({rows, cols}, packed.options().dtype(at::kFloat));
  a.out = out.data_ptr<float>();
  run_rows(a, rows, pick_spmm());
  return out;
}

at::Tensor spmm_requant_cpu(const at::Tensor& indptr, const at::Tensor& indices,
                            const c10::optional<at::Tensor>& values, const at::Tensor& packed, int64_t bits,
                            int64_t cols, int64_t mult, double scale, int64_t zero,
                            const c10::optional<at::Tensor>& row_scale, int64_t out_bits, double out_scale,
                            int64_t out_zero, int64_t out_mult, int64_t out_skew,
                            const c10::optional<at::Tensor>& chain, const c10::optional<at::Tensor>& chain_row,
                            const c10::optional<at::Tensor>& chain_col) {
  TORCH_CHECK(out_bits == 1 || out_bits == 2 || out_bits == 4 || out_bits == 8, "unsupported bit width ", out_bits);
  TORCH_CHECK(out_mult >= 1 && out_mult * ((1 << out_bits) - 1) <= 255, "out_mult exceeds the 8-bit grid");
  TORCH_CHECK(out_scale > 0, "out_scale must be positive");
  SpmmArgs a;
  Inputs keep = prepare(a, indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale);
  const int64_t rows = keep.indptr.numel() - 1;
  const int64_t ow = words_per_row(cols, static_cast<int>(out_bits));
  at::Tensor out = output_empty({rows, ow}, packed.options().dtype(at::kInt));
  a.out_packed = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
  a.out_words = ow;
  a.requant = true;
  a.out_grid = Grid{static_cast<int>(out_bits), static_cast<float>(out_scale), static_cast<int>(out_zero),
                    static_cast<int>(out_mult), static_cast<int>(out_skew)};
  ChainHold hold;
  if (read_chain(chain, chain_row, chain_col, rows, cols, &hold)) a.chain = &hold.chain;
  PlanHold plan;
  a.plan = plan_chain(a.chain, a.out_grid, rows, cols, &plan);
  run_rows(a, rows, pick_spmm());
  return out;
}

// Benchmark helper: the gather-only floor (see qgnn_cli/kernels/spmm.py: gather_floor).
at::Tensor gather_floor_cpu(const at::Tensor& indptr, const at::Tensor& indices, const at::Tensor& packed) {
  SpmmArgs a;
  Inputs keep = prepare(a, indptr, indices, c10::nullopt, packed, 8, packed.size(1) * 4, 1, 1.0, 0, c10::nullopt);
  const int64_t rows = keep.indptr.numel() - 1;
  at::Tensor out = at::empty({rows}, packed.options().dtype(at::kInt));
  uint32_t* dst = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
  if (rows == 0) return out;
  const std::vector<int64_t> bounds = split_rows(a.indptr, rows, num_tasks(a.indptr, rows));
  const int64_t tasks = static_cast<int64_t>(bounds.size()) - 1;
  using FloorFn = int64_t (*)(const SpmmArgs&, int64_t, int64_t, uint32_t*);
  const FloorFn fn = selected_isa() == Isa::Avx512 ? &gather_floor_rows_avx512
                     : selected_isa() == Isa::Avx2 ? &gather_floor_rows_avx2
                                                   : &gather_floor_rows_generic;
  std::atomic<int64_t> bad{0};
  share_tasks(tasks, tasks, [&](const auto& take) {
    int64_t local = 0;
    for (int64_t t = take(); t < tasks; t = take()) local += fn(a, bounds[t], bounds[t + 1], dst);
    if (local) bad += local;
  });
  TORCH_CHECK(bad.load() == 0, "gather_floor: malformed CSR");
  return out;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(qgnn, CPU, m) {
  m.impl("spmm", &cpu::spmm_cpu);
  m.impl("spmm_requant", &cpu::spmm_requant_cpu);
  m.impl("gather_floor", &cpu::gather_floor_cpu);
}

}  // namespace qgnn

// qgnn::quantize_pack for CPU tensors: torch glue, the generic kernel, run-time ISA dispatch.
// Inputs are validated in qgnn_cli/kernels/quantize.py; the checks here guard direct torch.ops calls.
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

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

size_t quantize_scratch_bytes(int64_t cols) { return static_cast<size_t>(cols) + 256; }

void quantize_rows_generic(const QuantizeArgs& a, int64_t r0, int64_t r1, void*) {
  const Grid& g = a.grid;
  for (int64_t i = r0; i < r1; ++i) {
    uint32_t* dst = a.out + i * a.words;
    std::memset(dst, 0, sizeof(uint32_t) * a.words);
    const float* x = a.x + i * a.cols;
    for (int64_t j = 0; j < a.cols; ++j)
      put_code(dst, j, g.bits, quantize_grid(x[j], g.scale, static_cast<float>(g.zero), g.bits, g.mult, g.skew));
  }
}

namespace {

at::Tensor quantize_pack_cpu(const at::Tensor& x_in, int64_t bits, double scale, int64_t zero, int64_t mult,
                             int64_t skew) {
  TORCH_CHECK(bits == 1 || bits == 2 || bits == 4 || bits == 8, "unsupported bit width ", bits);
  TORCH_CHECK(x_in.scalar_type() == at::kFloat && x_in.dim() == 2, "quantize_pack expects 2-D float32");
  TORCH_CHECK(mult >= 1 && mult * ((1 << bits) - 1) <= 255, "mult exceeds the 8-bit grid");
  const at::Tensor x = x_in.contiguous();
  const int64_t rows = x.size(0), cols = x.size(1);
  const int64_t words = words_per_row(cols, static_cast<int>(bits));
  at::Tensor out = output_empty({rows, words}, x.options().dtype(at::kInt));
  QuantizeArgs a{x.data_ptr<float>(), cols, reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>()), words,
                 Grid{static_cast<int>(bits), static_cast<float>(scale), static_cast<int>(zero),
                      static_cast<int>(mult), static_cast<int>(skew)},
                 nullptr};
  PlanHold plan;
  a.plan = plan_chain(nullptr, a.grid, rows, cols, &plan);
  using Fn = void (*)(const QuantizeArgs&, int64_t, int64_t, void*);
  const Fn fn = selected_isa() == Isa::Avx512 ? &quantize_rows_avx512
                : selected_isa() == Isa::Avx2 ? &quantize_rows_avx2
                                              : &quantize_rows_generic;
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max<int64_t>(cols, 1));
  const int64_t chunks = (rows + grain - 1) / grain;
  share_tasks(chunks, chunks, [&](const auto& take) {
    Scratch scratch(quantize_scratch_bytes(words * 32));
    for (int64_t c = take(); c < chunks; c = take()) fn(a, c * grain, std::min(rows, (c + 1) * grain), scratch.get());
  });
  return out;
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(qgnn, CPU, m) { m.impl("quantize_pack", &cpu::quantize_pack_cpu); }

}  // namespace qgnn

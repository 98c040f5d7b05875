// qgnn::site_codes for CPU tensors: torch glue, the generic kernel, run-time ISA dispatch.
// Semantics: qgnn_cli/kernels/site.py (its reference is the op's PyTorch spelling; kernels.h, SiteArgs).
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <tuple>

#include "isa.h"
#include "kernels.h"

// Products and sums stay separate, as in the float32 PyTorch reference (no FMA contraction).
#pragma GCC optimize("fp-contract=off")

namespace qgnn {
namespace cpu {

namespace {
// ATen's vectorised clamp is min(hi, max(lo, a)) with the x86 rule "second operand if unordered or
// equal": NaN passes through, and so does the sign of a zero equal to a bound.
inline float max_ps(float a, float b) { return a > b ? a : b; }
inline float min_ps(float a, float b) { return a < b ? a : b; }
inline float clamp(float v, float lo, float hi) { return min_ps(hi, max_ps(lo, v)); }
}  // namespace

void site_codes_generic(const SiteArgs& a, int64_t i0, int64_t i1) {
  for (int64_t i = i0; i < i1; ++i) {
    const float t = a.x[i] / a.scale;
    const float u = clamp(t, -a.zero, a.levels - a.zero);
    const float outside = std::fabs(t - u) > 0.f ? 1.f : 0.f;  // torch.sign: 0 for NaN
    float c = std::nearbyint(u);
    if (a.fine) {
      c = clamp(std::nearbyint((c + a.shift) / a.mult), 0.f, a.qmax) * a.mult + -a.zero;
    } else {
      c = c + 0.f;
    }
    a.centred[i] = c;
    a.masked_t[i] = t * (1.f - outside);
    if (a.value != nullptr) a.value[i] = c * a.scale;
  }
}

namespace {

std::tuple<at::Tensor, at::Tensor, at::Tensor> site_codes_cpu(const at::Tensor& x_in, double scale, double zero,
                                                              int64_t bits, int64_t mult, int64_t skew, bool value) {
  TORCH_CHECK(bits == 1 || bits == 2 || bits == 4 || bits == 8, "unsupported bit width ", bits);
  TORCH_CHECK(x_in.scalar_type() == at::kFloat, "site_codes expects float32");
  TORCH_CHECK(mult >= 1 && mult * ((1 << bits) - 1) <= 255, "mult exceeds the 8-bit grid");
  const at::Tensor x = x_in.contiguous();
  at::Tensor centred = at::empty_like(x), masked = at::empty_like(x);
  at::Tensor out = value ? at::empty_like(x) : at::empty({0}, x.options());
  const float qmax = static_cast<float>((1 << bits) - 1);
  const SiteArgs a{x.data_ptr<float>(),
                   static_cast<float>(scale),
                   static_cast<float>(zero),
                   qmax * static_cast<float>(mult),
                   qmax,
                   static_cast<float>(mult),
                   static_cast<float>(zero + static_cast<double>(skew)),
                   mult != 1 || skew != 0,
                   centred.data_ptr<float>(),
                   masked.data_ptr<float>(),
                   value ? out.data_ptr<float>() : nullptr};
  using Fn = void (*)(const SiteArgs&, int64_t, int64_t);
  const Fn fn = selected_isa() == Isa::Avx512 ? &site_codes_avx512
                : selected_isa() == Isa::Avx2 ? &site_codes_avx2
                                              : &site_codes_generic;
  at::parallel_for(0, x.numel(), 32768, [&](int64_t i0, int64_t i1) { fn(a, i0, i1); });
  return {centred, masked, out};
}

}  // namespace
}  // namespace cpu

TORCH_LIBRARY_IMPL(qgnn, CPU, m) { m.impl("site_codes", &cpu::site_codes_cpu); }

}  // namespace qgnn

// Large op outputs from a small cache of reusable, already mapped blocks (output_cache.cpp).
#pragma once

#include <ATen/ATen.h>

namespace qgnn {
namespace cpu {

// Like at::empty(sizes, options) for a contiguous CPU tensor; large blocks are reused across calls.
at::Tensor output_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

}  // namespace cpu
}  // namespace qgnn

// qgnn::pack / qgnn::unpack for CPU tensors. Inputs are validated in qgnn_cli/kernels/pack.py;
// the checks here only guard against a direct torch.ops call with the wrong dtype or rank.
#include <torch/library.h>
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "../common/codes.h"

namespace qgnn {
namespace {

at::Tensor pack_cpu(const at::Tensor& codes_in, int64_t bits) {
  TORCH_CHECK(bits == 1 || bits == 2 || bits == 4 || bits == 8, "unsupported bit width ", bits);
  TORCH_CHECK(codes_in.scalar_type() == at::kByte && codes_in.dim() == 2, "pack expects 2-D uint8 codes");
  const at::Tensor codes = codes_in.contiguous();
  const int64_t rows = codes.size(0), cols = codes.size(1);
  const int64_t words = words_per_row(cols, static_cast<int>(bits));
  at::Tensor out = at::zeros({rows, words}, codes.options().dtype(at::kInt));
  const uint8_t* src = codes.data_ptr<uint8_t>();
  uint32_t* dst = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
  const uint32_t mask = (1u << bits) - 1u;
  at::parallel_for(0, rows, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t j = 0; j < cols; ++j)
        put_code(dst + r * words, j, static_cast<int>(bits), src[r * cols + j] & mask);
  });
  return out;
}

at::Tensor unpack_cpu(const at::Tensor& packed_in, int64_t bits, int64_t cols) {
  TORCH_CHECK(bits == 1 || bits == 2 || bits == 4 || bits == 8, "unsupported bit width ", bits);
  TORCH_CHECK(packed_in.scalar_type() == at::kInt && packed_in.dim() == 2, "unpack expects 2-D int32 words");
  const at::Tensor packed = packed_in.contiguous();
  const int64_t rows = packed.size(0), words = packed.size(1);
  TORCH_CHECK(cols >= 0 && words == words_per_row(cols, static_cast<int>(bits)),
              "packed width does not match cols");
  at::Tensor out = at::empty({rows, cols}, packed.options().dtype(at::kByte));
  const uint32_t* src = reinterpret_cast<const uint32_t*>(packed.data_ptr<int32_t>());
  uint8_t* dst = out.data_ptr<uint8_t>();
  at::parallel_for(0, rows, 1024, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      for (int64_t j = 0; j < cols; ++j)
        dst[r * cols + j] = static_cast<uint8_t>(get_code(src + r * words, j, static_cast<int>(bits)));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(qgnn, CPU, m) {
  m.impl("pack", &pack_cpu);
  m.impl("unpack", &unpack_cpu);
}

}  // namespace qgnn

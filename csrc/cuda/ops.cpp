// Torch glue for the CUDA kernels: the CUDA dispatch key of the qgnn ops declared in
// qgnn_cli/kernels/*.py. Checks devices, dtypes and shapes (the Python wrappers validate values:
// grids, index ranges, overflow bounds), makes inputs contiguous, and calls the launchers in
// csrc/cuda/*.cu on the current stream. Compiled only by setup.py where torch has CUDA.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <optional>

#include "launchers.h"

namespace qgnn {
namespace cuda {
namespace {

void check_launch(cudaError_t err, const char* op) {
  TORCH_CHECK(err == cudaSuccess, op, ": CUDA kernel launch failed: ", cudaGetErrorString(err));
}

void check_bits(int64_t bits) {
  TORCH_CHECK(bits == 1 || bits == 2 || bits == 4 || bits == 8, "unsupported bit width ", bits);
}

void check(const at::Tensor& t, const char* name, at::ScalarType dtype, int64_t dim, const at::Device& device) {
  TORCH_CHECK(t.scalar_type() == dtype && t.dim() == dim, name, " must be a ", dim, "-D ", dtype, " tensor, got ",
              t.dim(), "-D ", t.scalar_type());
  TORCH_CHECK(t.device() == device, name, " is on ", t.device(), " but the op runs on ", device);
}

const uint32_t* words_of(const at::Tensor& t) { return reinterpret_cast<const uint32_t*>(t.data_ptr<int32_t>()); }
uint32_t* words_of(at::Tensor& t) { return reinterpret_cast<uint32_t*>(t.data_ptr<int32_t>()); }

cudaStream_t stream() { return c10::cuda::getCurrentCUDAStream(); }

int sm_count(const at::Device& device) {
  int sms = 0;
  if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device.index()) != cudaSuccess || sms < 1) {
    (void)cudaGetLastError();
    sms = 80;
  }
  return sms;
}

// ---- pack / unpack / quantize_pack ------------------------------------------------------------------

at::Tensor pack_cuda(const at::Tensor& codes_in, int64_t bits) {
  check_bits(bits);
  check(codes_in, "codes", at::kByte, 2, codes_in.device());
  const c10::cuda::CUDAGuard guard(codes_in.device());
  const at::Tensor codes = codes_in.contiguous();
  const int64_t rows = codes.size(0), cols = codes.size(1);
  at::Tensor out = at::empty({rows, words_per_row(cols, static_cast<int>(bits))}, codes.options().dtype(at::kInt));
  check_launch(launch_pack(codes.data_ptr<uint8_t>(), rows, cols, static_cast<int>(bits), words_of(out), stream()),
               "qgnn::pack");
  return out;
}

at::Tensor unpack_cuda(const at::Tensor& packed_in, int64_t bits, int64_t cols) {
  check_bits(bits);
  check(packed_in, "packed", at::kInt, 2, packed_in.device());
  TORCH_CHECK(cols >= 0 && packed_in.size(1) == words_per_row(cols, static_cast<int>(bits)),
              "packed width does not match cols");
  const c10::cuda::CUDAGuard guard(packed_in.device());
  const at::Tensor packed = packed_in.contiguous();
  at::Tensor out = at::empty({packed.size(0), cols}, packed.options().dtype(at::kByte));
  check_launch(launch_unpack(words_of(packed), packed.size(0), cols, static_cast<int>(bits), out.data_ptr<uint8_t>(),
                             stream()),
               "qgnn::unpack");
  return out;
}

at::Tensor quantize_pack_cuda(const at::Tensor& x_in, int64_t bits, double scale, int64_t zero, int64_t mult,
                              int64_t skew) {
  check_bits(bits);
  check(x_in, "x", at::kFloat, 2, x_in.device());
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const int64_t rows = x.size(0), cols = x.size(1);
  at::Tensor out = at::empty({rows, words_per_row(cols, static_cast<int>(bits))}, x.options().dtype(at::kInt));
  check_launch(launch_quantize_pack(x.data_ptr<float>(), rows, cols, static_cast<int>(bits), static_cast<float>(scale),
                                    static_cast<int>(zero), static_cast<int>(mult), static_cast<int>(skew),
                                    words_of(out), stream()),
               "qgnn::quantize_pack");
  return out;
}

// ---- spmm / spmm_requant -------------------------------------------------------------------------

struct OutGrid {
  int64_t bits, zero, mult, skew;
  double scale;
};

at::Tensor spmm_impl(const at::Tensor& indptr_in, const at::Tensor& indices_in,
                     const std::optional<at::Tensor>& values_in, const at::Tensor& packed_in, int64_t bits,
                     int64_t cols, int64_t mult, double scale, int64_t zero,
                     const std::optional<at::Tensor>& row_scale_in, const std::optional<OutGrid>& out_grid) {
  check_bits(bits);
  const at::Device device = packed_in.device();
  TORCH_CHECK(device.is_cuda(), "packed must be a CUDA tensor");
  check(packed_in, "packed", at::kInt, 2, device);
  check(indptr_in, "indptr", at::kLong, 1, device);
  check(indices_in, "indices", at::kInt, 1, device);
  TORCH_CHECK(indptr_in.numel() >= 1, "indptr must be non-empty");
  TORCH_CHECK(cols >= 0 && packed_in.size(1) == words_per_row(cols, static_cast<int>(bits)),
              "packed width does not match cols");
  const int64_t num_rows = indptr_in.numel() - 1;
  TORCH_CHECK(num_rows < (int64_t{1} << 31), "more than 2^31 - 1 rows");
  if (values_in.has_value()) {
    check(*values_in, "values", at::kFloat, 1, device);
    TORCH_CHECK(values_in->numel() == indices_in.numel(), "values and indices differ in length");
  }
  if (row_scale_in.has_value()) {
    check(*row_scale_in, "row_scale", at::kFloat, 1, device);
    TORCH_CHECK(row_scale_in->numel() == num_rows, "row_scale needs one entry per row");
  }
  const c10::cuda::CUDAGuard guard(device);
  const at::Tensor indptr = indptr_in.contiguous(), indices = indices_in.contiguous(), packed = packed_in.contiguous();
  const std::optional<at::Tensor> values =
      values_in.has_value() ? std::optional<at::Tensor>(values_in->contiguous()) : std::nullopt;
  const std::optional<at::Tensor> row_scale =
      row_scale_in.has_value() ? std::optional<at::Tensor>(row_scale_in->contiguous()) : std::nullopt;

  SpmmLaunch l;
  rows::SpmmParams& p = l.p;
  p.indptr = indptr.data_ptr<int64_t>();
  p.indices = indices.data_ptr<int32_t>();
  p.values = values.has_value() ? values->data_ptr<float>() : nullptr;
  p.packed = words_of(packed);
  p.num_rows = num_rows;
  p.words = packed.size(1);
  p.cols = cols;
  p.bits = static_cast<int>(bits);
  p.mult = static_cast<int>(mult);
  p.scale = static_cast<float>(scale);
  p.zero = static_cast<int>(zero);
  p.row_scale = row_scale.has_value() ? row_scale->data_ptr<float>() : nullptr;
  l.long_blocks = 2 * sm_count(device);

  at::Tensor out;
  if (out_grid.has_value()) {
    check_bits(out_grid->bits);
    p.out_bits = static_cast<int>(out_grid->bits);
    p.out_words = words_per_row(cols, p.out_bits);
    p.out_scale = static_cast<float>(out_grid->scale);
    p.out_zero = static_cast<int>(out_grid->zero);
    p.out_mult = static_cast<int>(out_grid->mult);
    p.out_skew = static_cast<int>(out_grid->skew);
    out = at::zeros({num_rows, p.out_words}, packed.options());  // chunks OR into shared words
    p.out_packed = words_of(out);
  } else {
    out = at::empty({num_rows, cols}, packed.options().dtype(at::kFloat));
    p.out = out.data_ptr<float>();
  }
  const at::Tensor workspace =
      at::empty({static_cast<int64_t>(spmm_workspace_bytes(l))}, packed.options().dtype(at::kByte));
  check_launch(launch_spmm(l, workspace.data_ptr(), stream()),
               out_grid.has_value() ? "qgnn::spmm_requant" : "qgnn::spmm");
  return out;
}

at::Tensor spmm_cuda(const at::Tensor& indptr, const at::Tensor& indices, const std::optional<at::Tensor>& values,
                     const at::Tensor& packed, int64_t bits, int64_t cols, int64_t mult, double scale, int64_t zero,
                     const std::optional<at::Tensor>& row_scale) {
  return spmm_impl(indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale, std::nullopt);
}

at::Tensor spmm_requant_cuda(const at::Tensor& indptr, const at::Tensor& indices,
                             const std::optional<at::Tensor>& values, const at::Tensor& packed, int64_t bits,
                             int64_t cols, int64_t mult, double scale, int64_t zero,
                             const std::optional<at::Tensor>& row_scale, int64_t out_bits, double out_scale,
                             int64_t out_zero, int64_t out_mult, int64_t out_skew,
                             const std::optional<at::Tensor>& chain, const std::optional<at::Tensor>& chain_row,
                             const std::optional<at::Tensor>& chain_col) {
  (void)chain_row;
  (void)chain_col;
  TORCH_CHECK(!chain.has_value() || chain->size(0) == 0,
              "qgnn::spmm_requant: epilogue chains run on the CPU kernels only (move the tensors to the CPU)");
  return spmm_impl(indptr, indices, values, packed, bits, cols, mult, scale, zero, row_scale,
                   OutGrid{out_bits, out_zero, out_mult, out_skew, out_scale});
}

// ---- gemm ----------------------------------------------------------------------------------------

at::Tensor gemm_cuda(const at::Tensor& a_in, int64_t a_bits, int64_t k, int64_t a_mult, double a_scale, int64_t a_zero,
                     const at::Tensor& w_in, int64_t w_bits, int64_t w_mult, const at::Tensor& w_scale_in,
                     const at::Tensor& w_zero_in, const std::optional<at::Tensor>& bias_in) {
  check_bits(a_bits);
  check_bits(w_bits);
  const at::Device device = a_in.device();
  TORCH_CHECK(device.is_cuda(), "a_packed must be a CUDA tensor");
  check(a_in, "a_packed", at::kInt, 2, device);
  check(w_in, "w_packed", at::kInt, 2, device);
  TORCH_CHECK(k >= 0 && a_in.size(1) == words_per_row(k, static_cast<int>(a_bits)) &&
                  w_in.size(1) == words_per_row(k, static_cast<int>(w_bits)),
              "packed widths do not match k");
  const int64_t n = a_in.size(0), o = w_in.size(0);
  check(w_scale_in, "w_scale", at::kFloat, 1, device);
  check(w_zero_in, "w_zero", at::kInt, 1, device);
  TORCH_CHECK(w_scale_in.numel() == o && w_zero_in.numel() == o, "w_scale and w_zero need one entry per channel");
  if (bias_in.has_value()) {
    check(*bias_in, "bias", at::kFloat, 1, device);
    TORCH_CHECK(bias_in->numel() == o, "bias needs one entry per channel");
  }
  const c10::cuda::CUDAGuard guard(device);
  const at::Tensor a = a_in.contiguous(), w = w_in.contiguous(), w_scale = w_scale_in.contiguous(),
                   w_zero = w_zero_in.contiguous();
  const std::optional<at::Tensor> bias =
      bias_in.has_value() ? std::optional<at::Tensor>(bias_in->contiguous()) : std::nullopt;
  at::Tensor out = at::empty({n, o}, a.options().dtype(at::kFloat));
  at::Tensor a_sums = at::empty({n}, a.options()), w_sums = at::empty({o}, a.options());

  GemmParams g;
  g.a = words_of(a);
  g.n = n;
  g.a_words = a.size(1);
  g.a_bits = static_cast<int>(a_bits);
  g.a_mult = static_cast<int>(a_mult);
  g.a_zero = static_cast<int>(a_zero);
  g.a_scale = static_cast<float>(a_scale);
  g.w = words_of(w);
  g.o = o;
  g.w_words = w.size(1);
  g.w_bits = static_cast<int>(w_bits);
  g.w_mult = static_cast<int>(w_mult);
  g.w_scale = w_scale.data_ptr<float>();
  g.w_zero = w_zero.data_ptr<int32_t>();
  g.bias = bias.has_value() ? bias->data_ptr<float>() : nullptr;
  g.k = k;
  g.a_sums = a_sums.data_ptr<int32_t>();
  g.w_sums = w_sums.data_ptr<int32_t>();
  g.out = out.data_ptr<float>();
  const cudaStream_t s = stream();
  check_launch(launch_row_code_sums(g.a, n, g.a_words, k, g.a_bits, a_sums.data_ptr<int32_t>(), s), "qgnn::gemm");
  check_launch(launch_row_code_sums(g.w, o, g.w_words, k, g.w_bits, w_sums.data_ptr<int32_t>(), s), "qgnn::gemm");
  check_launch(launch_gemm(g, s), "qgnn::gemm");
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(qgnn, CUDA, m) {
  m.impl("pack", &pack_cuda);
  m.impl("unpack", &unpack_cuda);
  m.impl("quantize_pack", &quantize_pack_cuda);
  m.impl("spmm", &spmm_cuda);
  m.impl("spmm_requant", &spmm_requant_cuda);
  m.impl("gemm", &gemm_cuda);
}

}  // namespace cuda
}  // namespace qgnn

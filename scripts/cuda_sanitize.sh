#!/usr/bin/env bash
# Run the CUDA kernels under compute-sanitizer on a small case (for a machine with a GPU).
#
#   scripts/cuda_sanitize.sh            # memcheck, racecheck, synccheck, initcheck
#   TOOLS="memcheck" scripts/cuda_sanitize.sh
#
# Needs the extension built with CUDA (docs/CUDA.md). PyTorch's caching allocator is switched off so
# that every tensor is its own cudaMalloc and memcheck sees out-of-bounds accesses at tensor edges.
# Exits non-zero if any tool reports an error.
set -euo pipefail
cd "$(dirname "$0")/.."

SANITIZER="${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)}"
TOOLS="${TOOLS:-memcheck racecheck synccheck initcheck}"
PY="${PYTHON:-python}"
CASE="$(mktemp -t qgnn_sanitize_XXXX.py)"
trap 'rm -f "$CASE"' EXIT

cat >"$CASE" <<'PY'
import torch

from qgnn_cli import kernels
from qgnn_cli.kernels.pack import pack_reference
from qgnn_cli.kernels.spmm import spmm_reference, spmm_requant_reference
from qgnn_cli.kernels.gemm import gemm_reference

assert torch.cuda.is_available(), "no CUDA GPU"
assert torch._C._dispatch_has_kernel_for_dispatch_key("qgnn::spmm", "CUDA"), "extension built without CUDA"
g = torch.Generator().manual_seed(0)
dev = "cuda"
num_rows, cols = 300, 45  # odd width: partial words and shared output words
degrees = torch.randint(0, 6, (num_rows,), generator=g)
degrees[3], degrees[100] = 0, 1500  # an empty row and a long row (block-per-row kernel)
indptr = torch.zeros(num_rows + 1, dtype=torch.int64)
indptr[1:] = torch.cumsum(degrees, 0)
indices = torch.randint(0, num_rows, (int(indptr[-1]),), generator=g).to(torch.int32)
values = torch.rand(indices.numel(), generator=g)
row_scale = torch.rand(num_rows, generator=g) + 0.5
failures = 0
for bits in (1, 2, 4, 8):
    codes = torch.randint(0, 2**bits, (num_rows, cols), dtype=torch.uint8, generator=g)
    packed = pack_reference(codes, bits)
    d = [t.to(dev) for t in (indptr, indices, packed, values, row_scale)]
    out = kernels.spmm(d[0], d[1], d[2], bits, cols, 0.01, 1, row_scale=d[4])
    failures += not torch.equal(out.cpu(), spmm_reference(indptr, indices, None, packed, bits, cols, 1, 0.01, 1, row_scale))
    kernels.spmm(d[0], d[1], d[2], bits, cols, 0.01, 1, values=d[3])
    q = kernels.spmm_requant(d[0], d[1], d[2], bits, cols, 0.01, 1, 2, 0.05, 1, row_scale=d[4])
    failures += not torch.equal(q.cpu(), spmm_requant_reference(indptr, indices, None, packed, bits, cols, 1, 0.01, 1,
                                                                row_scale, 2, 0.05, 1, 1, 0))
    kernels.unpack(kernels.pack(codes.to(dev), bits), bits, cols)
    kernels.quantize_pack(torch.randn(7, cols, generator=g).to(dev), bits, 0.1, 0)
    n, o, k = 70, 67, 131
    a = pack_reference(torch.randint(0, 2**bits, (n, k), dtype=torch.uint8, generator=g), bits)
    w = pack_reference(torch.randint(0, 2**bits, (o, k), dtype=torch.uint8, generator=g), bits)
    ws, wz, b = torch.rand(o, generator=g) + 0.1, torch.zeros(o, dtype=torch.int32), torch.randn(o, generator=g)
    out = kernels.gemm(a.to(dev), bits, k, 0.02, 0, w.to(dev), bits, ws.to(dev), wz.to(dev), bias=b.to(dev))
    failures += not torch.equal(out.cpu(), gemm_reference(a, bits, k, 1, 0.02, 0, w, bits, 1, ws, wz, b))
torch.cuda.synchronize()
print(f"sanitize case done: {failures} result mismatches")
raise SystemExit(1 if failures else 0)
PY

status=0
for tool in $TOOLS; do
  echo "== compute-sanitizer --tool $tool"
  PYTORCH_NO_CUDA_MEMORY_CACHING=1 "$SANITIZER" --tool "$tool" --error-exitcode 99 "$PY" "$CASE" || status=1
done
exit $status

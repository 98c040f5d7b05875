"""Every ``qgnn::`` op: declared once, a PyTorch reference as default kernel, compiled kernels beside it.

Ops: ``pack``/``unpack`` (pack.py), ``quantize_pack`` (quantize.py), the training sites' ``site_codes``
(site.py), ``spmm``/``spmm_requant`` (spmm.py), ``gemm``/``gemm_requant`` (gemm.py), their epilogue
chains (chain.py), and the benchmark helper ``gather_floor`` (floor.py). The public functions validate
their inputs, then call
``torch.ops.qgnn.<op>``, which dispatches to the compiled kernel for the tensors' device when there
is one and to the reference otherwise.
"""

from qgnn_cli.kernels.chain import Chain
from qgnn_cli.kernels.floor import gather_floor
from qgnn_cli.kernels.gemm import gemm, gemm_requant
from qgnn_cli.kernels.library import (
    amx_enabled,
    cpu_features,
    extension_available,
    selected_isa,
    set_isa,
    supported_isas,
    use_isa,
)
from qgnn_cli.kernels.pack import pack, unpack, words_per_row
from qgnn_cli.kernels.quantize import quantize_pack
from qgnn_cli.kernels.site import site_codes
from qgnn_cli.kernels.smp import smp_delta, smp_update
from qgnn_cli.kernels.spmm import spmm, spmm_requant

__all__ = [
    "Chain",
    "pack",
    "unpack",
    "words_per_row",
    "quantize_pack",
    "site_codes",
    "spmm",
    "spmm_requant",
    "gemm",
    "gemm_requant",
    "gather_floor",
    "smp_delta",
    "smp_update",
    "amx_enabled",
    "cpu_features",
    "extension_available",
    "selected_isa",
    "set_isa",
    "supported_isas",
    "use_isa",
]

"""Every ``qgnn::`` op: declared once, a PyTorch reference as default kernel, compiled kernels beside it."""

from qgnn_cli.kernels import pack as _pack  # noqa: F401  (declares qgnn::pack / qgnn::unpack)
from qgnn_cli.kernels.library import (
    cpu_features,
    extension_available,
    selected_isa,
    set_isa,
    supported_isas,
    use_isa,
)
from qgnn_cli.kernels.pack import pack, unpack, words_per_row

__all__ = [
    "pack",
    "unpack",
    "words_per_row",
    "cpu_features",
    "extension_available",
    "selected_isa",
    "set_isa",
    "supported_isas",
    "use_isa",
]

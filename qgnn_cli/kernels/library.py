"""The ``qgnn`` operator namespace and the compiled extension.

Pattern (as in bitsandbytes and pytorch/extension-cpp): every op is declared once here with
``LIB.define``; its pure-PyTorch reference is registered as the ``CompositeExplicitAutograd``
(default) kernel and is also the test oracle; compiled kernels register for the ``CPU`` (and
``CUDA``) dispatch keys from C++ with ``TORCH_LIBRARY_IMPL(qgnn, CPU, m)``, which take precedence
for tensors on that device. Without the extension, the reference runs everywhere.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import torch

LIB = torch.library.Library("qgnn", "DEF")

try:  # The extension registers its kernels into the namespace on import.
    from qgnn_cli import _C  # type: ignore[attr-defined]

    EXTENSION_ERROR: str | None = None
except ImportError as exc:  # pragma: no cover - depends on the build
    _C = None
    EXTENSION_ERROR = str(exc)


def extension_available() -> bool:
    return _C is not None


def define(schema: str, reference: Callable, fake: Callable) -> None:
    """Declare ``qgnn::<name>`` with its reference (default) kernel and its fake (meta) kernel."""
    name = schema.split("(", 1)[0]
    LIB.define(schema)
    LIB.impl(name, reference, "CompositeExplicitAutograd")
    torch.library.register_fake(f"qgnn::{name}", fake, lib=LIB)


# --- CPU instruction-set selection (see csrc/cpu/isa.cpp) -------------------------------------

ISAS = ("generic", "avx2", "avx512")


def cpu_features() -> dict[str, bool]:
    """CPU features the extension detected at run time (empty without the extension)."""
    return dict(_C.cpu_features()) if _C is not None else {}


def supported_isas() -> list[str]:
    return list(_C.supported_isas()) if _C is not None else []


def amx_enabled() -> bool:
    """Whether the AVX-512 GEMM runs on AMX-INT8 tiles: CPU support, the OS grant, QGNN_AMX not 0."""
    return bool(_C.amx_enabled()) if _C is not None else False


def selected_isa() -> str:
    """The kernel path in use: ``generic``, ``avx2``, ``avx512``, or ``reference`` (no extension)."""
    return _C.selected_isa() if _C is not None else "reference"


def set_isa(name: str) -> None:
    """Force a kernel path; raises ``ValueError`` if the CPU or the build lacks it."""
    if _C is None:
        raise RuntimeError(f"the compiled extension is not available: {EXTENSION_ERROR}")
    if name not in ISAS:
        raise ValueError(f"unknown ISA {name!r}: expected one of {ISAS}")
    _C.set_isa(name)


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[None]:
    """Run a block with a forced kernel path, restoring the previous one afterwards."""
    previous = selected_isa()
    set_isa(name)
    try:
        yield
    finally:
        set_isa(previous)


def env_isa() -> str | None:
    """The ``QGNN_ISA`` override, if set (applied by the extension when it loads)."""
    return os.environ.get("QGNN_ISA") or None

"""Build the qgnn_cli._C extension from csrc/.

CPU sources always; CUDA sources (csrc/cuda/*.cu plus their torch glue csrc/cuda/*.cpp) only when
the installed torch was built with CUDA and nvcc is found. No flags for the build machine's own CPU: ISA-specific code lives
in its own translation units (csrc/cpu/*_avx2.cpp, *_avx512.cpp) with target attributes and is
chosen at run time (csrc/cpu/isa.cpp).

torch must already be installed (pip install --no-build-isolation ...), see README.md.
"""

import glob
import os
import shutil

from setuptools import setup
from torch.utils import cpp_extension

ROOT = os.path.dirname(os.path.abspath(__file__))


def rel(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern)))


def with_cuda() -> bool:
    import torch

    if os.environ.get("QGNN_NO_CUDA") == "1":
        return False
    return torch.version.cuda is not None and (
        shutil.which("nvcc") is not None or cpp_extension.CUDA_HOME is not None
    )


cpu_sources = rel("csrc/extension.cpp") + rel("csrc/cpu/*.cpp")
# -ffp-contract=off: no fused multiply-adds the PyTorch references do not make (bit-exact epilogues).
cxx_flags = ["-O3", "-fopenmp", "-fno-math-errno", "-ffp-contract=off"]
link_flags = ["-fopenmp"]

if with_cuda():
    extension = cpp_extension.CUDAExtension(
        "qgnn_cli._C",
        cpu_sources + rel("csrc/cuda/*.cpp") + rel("csrc/cuda/*.cu"),
        define_macros=[("QGNN_WITH_CUDA", "1")],
        extra_compile_args={
            "cxx": cxx_flags,
            "nvcc": ["-O3", "-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_90,code=sm_90"],
        },
        extra_link_args=link_flags,
    )
else:
    extension = cpp_extension.CppExtension(
        "qgnn_cli._C", cpu_sources, extra_compile_args={"cxx": cxx_flags}, extra_link_args=link_flags
    )

setup(
    ext_modules=[extension],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)

// The Python module qgnn_cli._C. Importing it registers every compiled kernel into the qgnn
// operator namespace (TORCH_LIBRARY_IMPL blocks in csrc/cpu and csrc/cuda); the functions here only
// expose the CPU kernel-path selection.
#include <torch/extension.h>

#include "cpu/isa.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "qgnn compiled kernels";
  m.def("cpu_features", &qgnn::cpu_features, "CPU features detected at run time");
  m.def("supported_isas", &qgnn::supported_isas, "kernel paths this CPU can run");
  m.def("selected_isa", []() { return qgnn::isa_name(qgnn::selected_isa()); }, "kernel path in use");
  m.def("set_isa", &qgnn::set_isa, "force a kernel path (generic, avx2, avx512)");
  m.def("amx_enabled", &qgnn::amx_enabled, "whether the AVX-512 GEMM runs on AMX-INT8 tiles (QGNN_AMX=0: off)");
}

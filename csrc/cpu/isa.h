// Run-time choice of the CPU kernel path (generic, AVX2, AVX-512).
//
// Each op keeps a generic implementation that compiles anywhere and optional per-ISA overrides in
// their own translation units (compiled with target attributes, no torch headers). The path is
// chosen once at load from CPU features and the QGNN_ISA environment variable, and can be forced
// from Python for tests and benchmarks.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace qgnn {

enum class Isa { Generic = 0, Avx2 = 1, Avx512 = 2 };

Isa selected_isa();
void set_isa(const std::string& name);  // throws std::invalid_argument
std::string isa_name(Isa isa);
std::vector<std::string> supported_isas();
std::map<std::string, bool> cpu_features();

// AMX-INT8 tiles for the AVX-512 GEMM: the CPU has them, Linux granted this process the tile state
// (asked once), and QGNN_AMX is not "0" (read per call, so tests and benchmarks can switch).
bool amx_enabled();

}  // namespace qgnn

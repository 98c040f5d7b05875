#include "isa.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace qgnn {
namespace {

bool cpu_has(const char* feature) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports needs string literals, hence the table.
  const std::string f(feature);
  if (f == "avx2") return __builtin_cpu_supports("avx2");
  if (f == "fma") return __builtin_cpu_supports("fma");
  if (f == "bmi2") return __builtin_cpu_supports("bmi2");
  if (f == "avx512f") return __builtin_cpu_supports("avx512f");
  if (f == "avx512bw") return __builtin_cpu_supports("avx512bw");
  if (f == "avx512vl") return __builtin_cpu_supports("avx512vl");
  if (f == "avx512vnni") return __builtin_cpu_supports("avx512vnni");
  if (f == "avx512vpopcntdq") return __builtin_cpu_supports("avx512vpopcntdq");
  if (f == "avx512bf16") return __builtin_cpu_supports("avx512bf16");
  if (f == "avxvnni") return __builtin_cpu_supports("avxvnni");
  if (f == "amx-tile") return __builtin_cpu_supports("amx-tile");
  if (f == "amx-int8") return __builtin_cpu_supports("amx-int8");
  if (f == "amx-bf16") return __builtin_cpu_supports("amx-bf16");
#endif
  (void)feature;
  return false;
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Generic: return true;
    case Isa::Avx2: return cpu_has("avx2") && cpu_has("fma") && cpu_has("bmi2");
    case Isa::Avx512:
      return cpu_has("avx512f") && cpu_has("avx512bw") && cpu_has("avx512vl") &&
             cpu_has("avx512vnni") && cpu_has("bmi2");
  }
  return false;
}

Isa parse(const std::string& name) {
  if (name == "generic") return Isa::Generic;
  if (name == "avx2") return Isa::Avx2;
  if (name == "avx512") return Isa::Avx512;
  throw std::invalid_argument("unknown ISA '" + name + "': expected generic, avx2 or avx512");
}

Isa best_isa() {
  if (isa_supported(Isa::Avx512)) return Isa::Avx512;
  if (isa_supported(Isa::Avx2)) return Isa::Avx2;
  return Isa::Generic;
}

Isa initial_isa() {
  const char* env = std::getenv("QGNN_ISA");
  if (env == nullptr || *env == '\0') return best_isa();
  Isa wanted = parse(env);
  if (!isa_supported(wanted))
    throw std::invalid_argument(std::string("QGNN_ISA=") + env + " is not supported by this CPU");
  return wanted;
}

std::atomic<int>& current() {
  static std::atomic<int> isa{static_cast<int>(initial_isa())};
  return isa;
}

}  // namespace

Isa selected_isa() { return static_cast<Isa>(current().load(std::memory_order_relaxed)); }

void set_isa(const std::string& name) {
  Isa isa = parse(name);
  if (!isa_supported(isa)) throw std::invalid_argument("ISA '" + name + "' is not supported by this CPU");
  current().store(static_cast<int>(isa));
}

std::string isa_name(Isa isa) {
  switch (isa) {
    case Isa::Generic: return "generic";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "generic";
}

std::vector<std::string> supported_isas() {
  std::vector<std::string> out;
  for (Isa isa : {Isa::Generic, Isa::Avx2, Isa::Avx512})
    if (isa_supported(isa)) out.push_back(isa_name(isa));
  return out;
}

bool amx_enabled() {
  static const bool granted = [] {
#if defined(__linux__) && defined(__x86_64__)
    if (!cpu_has("amx-tile") || !cpu_has("amx-int8")) return false;
    constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // asm/prctl.h
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  const char* env = std::getenv("QGNN_AMX");
  return granted && !(env != nullptr && std::strcmp(env, "0") == 0);
}

std::map<std::string, bool> cpu_features() {
  std::map<std::string, bool> out;
  for (const char* f : {"avx2", "fma", "bmi2", "avx512f", "avx512bw", "avx512vl", "avx512vnni",
                        "avx512vpopcntdq", "avx512bf16", "avxvnni", "amx-tile", "amx-int8",
                        "amx-bf16"})
    out[f] = cpu_has(f);
  return out;
}

}  // namespace qgnn

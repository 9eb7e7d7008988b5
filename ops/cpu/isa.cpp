// The CPU instruction-set ceiling (ops/cpu/isa.h).
#include "ops/cpu/isa.h"

#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace lm::cpu {

CpuIsa hardware_isa() {
  static const CpuIsa hw = [] {
#if LM_X86
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma"))
      return CpuIsa::Avx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::Avx2;
#endif
    return CpuIsa::Scalar;
  }();
  return hw;
}

const char* isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512: return "avx512";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Scalar: break;
  }
  return "scalar";
}

const char* target_arch() {
#if defined(__x86_64__)
  return "x86-64";
#elif defined(__i386__)
  return "x86";
#elif defined(__aarch64__)
  return "aarch64";
#else
  return "other";
#endif
}

namespace {
CpuIsa chosen_isa() {
  const char* env = std::getenv("LIBRAMIL_CPU_ISA");
  if (env == nullptr || *env == '\0') return hardware_isa();
  const std::string s(env);
  CpuIsa want;
  if (s == "avx512") want = CpuIsa::Avx512;
  else if (s == "avx2") want = CpuIsa::Avx2;
  else if (s == "scalar") want = CpuIsa::Scalar;
  else throw std::invalid_argument("LIBRAMIL_CPU_ISA=" + s + ": expected avx512, avx2 or scalar");
  if (int(want) > int(hardware_isa()))
    throw std::invalid_argument("LIBRAMIL_CPU_ISA=" + s + ": this processor supports at most " + isa_name(hardware_isa()));
  return want;
}
}  // namespace

CpuIsa cpu_isa() {
  static const CpuIsa isa = chosen_isa();  // a throw leaves it unset; the next call asks again
  return isa;
}

bool isa_allows(CpuIsa level) { return int(cpu_isa()) >= int(level); }

namespace {

bool parse_version(const std::string& name, CpuIsa* version) {
  if (name == "portable") *version = CpuIsa::Scalar;
  else if (name == "avx2") *version = CpuIsa::Avx2;
  else if (name == "avx512") *version = CpuIsa::Avx512;
  else return false;
  return true;
}

}  // namespace

const char* KernelChoice::name(CpuIsa version) {
  switch (version) {
    case CpuIsa::Avx512: return "avx512";
    case CpuIsa::Avx2: return "avx2";
    case CpuIsa::Scalar: break;
  }
  return "portable";
}

// The best permitted version, or the one `env_` names when permitted (decided once).
CpuIsa KernelChoice::default_version() {
  int d = default_.load(std::memory_order_relaxed);
  if (d >= 0) return static_cast<CpuIsa>(d);
  const CpuIsa best = isa_allows(CpuIsa::Avx512) ? CpuIsa::Avx512 : isa_allows(CpuIsa::Avx2) ? CpuIsa::Avx2 : CpuIsa::Scalar;
  CpuIsa chosen = best;
  const char* e = std::getenv(env_);
  if (e != nullptr && *e != '\0') {
    CpuIsa want = best;
    if (parse_version(e, &want) && isa_allows(want)) chosen = want;
    else std::fprintf(stderr, "libramil: %s=%s unknown or not permitted here, using %s\n", env_, e, name(best));
  }
  int expected = -1;  // first caller wins (the same answer for every caller anyway)
  default_.compare_exchange_strong(expected, static_cast<int>(chosen));
  return static_cast<CpuIsa>(default_.load(std::memory_order_relaxed));
}

CpuIsa KernelChoice::get() {
  const int f = forced_.load(std::memory_order_relaxed);
  return f < 0 ? default_version() : static_cast<CpuIsa>(f);
}

bool KernelChoice::set(const std::string& n) {
  if (n == "auto") {
    forced_ = -1;
    return true;
  }
  CpuIsa version;
  if (!parse_version(n, &version) || !isa_allows(version)) return false;
  forced_ = static_cast<int>(version);
  return true;
}

}  // namespace lm::cpu

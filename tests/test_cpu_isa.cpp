// LIBRAMIL_CPU_ISA (ops/cpu/isa.h) through the built binary: `--version` names the instruction
// set the CPU kernels use, a forced lower level is shown as forced (also by `bench --isa`, whose
// JSON names the level), and an unknown value or one
// above the processor's is one error line and exit 1. (That every op gives the same results under
// each level is checked by running the op table with LIBRAMIL_CPU_ISA=avx2 and =scalar: .ci/run.)
#include <doctest/doctest.h>

#include "ops/cpu/isa.h"
#include "tests/test_util.h"

namespace {
namespace fs = std::filesystem;
using namespace lm;
}  // namespace

TEST_CASE("LIBRAMIL_CPU_ISA: --version shows the level; forcing lower works; bad values are refused") {
  const fs::path dir = test::scratch_dir("cpu_isa");
  const std::string hw = cpu::isa_name(cpu::hardware_isa());
  REQUIRE(test::run_libramil("--version", dir / "v.txt", "env -u LIBRAMIL_CPU_ISA") == 0);
  const std::string arch = LM_X86 ? "" : std::string(", portable C++ for ") + cpu::target_arch();  // apps/main.cpp
  CHECK(test::read_text(dir / "v.txt").find("(CPU kernels: " + hw + arch + ")") != std::string::npos);
  REQUIRE(test::run_libramil("--version", dir / "s.txt", "LIBRAMIL_CPU_ISA=scalar") == 0);
  const std::string s = test::read_text(dir / "s.txt");
  CHECK_MESSAGE(s.find("CPU kernels: scalar") != std::string::npos, s);
  if (hw != "scalar") CHECK(s.find("forced by LIBRAMIL_CPU_ISA; the processor has " + hw) != std::string::npos);
  // The bench commands' --isa is the same switch, and their JSON names the level used.
  REQUIRE(test::run_libramil("bench train-step --isa scalar --instances 64 --dim 32 --repeats 1 --threads 1", dir / "bench.txt",
                             "env -u LIBRAMIL_CPU_ISA") == 0);
  CHECK(test::read_text(dir / "bench.txt").find("\"isa\":\"scalar\"") != std::string::npos);
  CHECK(test::run_libramil("--version", dir / "b.txt", "LIBRAMIL_CPU_ISA=sse9") == 1);
  CHECK(test::read_text(dir / "b.txt").find("LIBRAMIL_CPU_ISA=sse9: expected avx512, avx2 or scalar") != std::string::npos);
  if (hw != "avx512") {
    CHECK(test::run_libramil("--version", dir / "h.txt", "LIBRAMIL_CPU_ISA=avx512") == 1);
    CHECK(test::read_text(dir / "h.txt").find("supports at most " + hw) != std::string::npos);
  }
}

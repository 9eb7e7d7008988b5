// The fused CUDA attention kernels (cuda/attention.cu, docs/ops/attention.md) against the
// composed op (matmul, softmax, matmul) on the same GPU: the forward and the gradients of q,
// k and v, float32 and float64, for a Libra-MIL shape (56 prototypes over 5000 instances,
// d = dv = 512) and odd shapes (size-1 dims, d not a multiple of 32, dv != d, wide rows,
// broadcast masks, a fully masked row). LIBRAMIL_CUDA_ATTENTION selects the path; the
// profiler confirms which one ran. Without a GPU every comparison is skipped and reported as
// skipped (a MESSAGE with the count), never as passed. The op table (test_op_table.cpp,
// mode (c)) also compares the fused path with the CPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "bench/drivers/attention_benchmark.h"
#include "ops/ops.h"
#include "tests/attention_cases.h"
#include "tensor/profiler.h"
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/device.h"
#endif

namespace {

using namespace lm;

using test::AttentionMode;
constexpr const char* kEnv = AttentionMode::kEnv;

bool have_gpu() {
#ifdef LIBRAMIL_WITH_CUDA
  cuda::ensure_registered();  // docs/cuda.md: register before the first CUDA tensor
#endif
  const DeviceHooks* h = device_hooks(DeviceType::CUDA);
  return h && h->device_count && h->device_count() > 0;
}

using Case = test::AttentionCase;
const std::vector<Case>& cases() { return test::attention_cases(); }
Tensor make_mask(const Case& c, Generator& g) { return test::attention_case_mask(c, g); }

struct Outcome {
  Tensor out, dq, dk, dv;
  bool fused_ran = false;  // the profiler saw the fused forward kernel's scope
};

Outcome run(const char* mode, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask,
            const Tensor& R) {
  AttentionMode m(mode);
  const test::AttentionRun r = test::run_attention(q, k, v, mask, R);
  return Outcome{r.out, r.dq, r.dk, r.dv, r.ran("attention_forward")};
}

// max |got - want| / max |want| over the elements (want all 0: the absolute error). Elements
// NaN in both are skipped; a NaN in only one of them makes the error infinite.
double rel_err(const Tensor& got, const Tensor& want) {
  if (!got.defined() || !want.defined() || got.shape() != want.shape()) return std::numeric_limits<double>::infinity();
  const std::vector<double> a = got.to_double_vector(), b = want.to_double_vector();
  double diff = 0, scale = 0;
  for (size_t x = 0; x < a.size(); ++x) {
    const bool na = std::isnan(a[x]), nb = std::isnan(b[x]);
    if (na != nb) return std::numeric_limits<double>::infinity();
    if (na) continue;
    if (std::isinf(a[x]) || std::isinf(b[x])) {
      if (a[x] != b[x]) return std::numeric_limits<double>::infinity();
      continue;
    }
    diff = std::max(diff, std::abs(a[x] - b[x]));
    scale = std::max(scale, std::abs(b[x]));
  }
  return scale > 0 ? diff / scale : diff;
}

int64_t count_nan(const Tensor& t) {
  int64_t n = 0;
  for (double x : t.to_double_vector()) n += std::isnan(x) ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("cuda attention: LIBRAMIL_CUDA_ATTENTION accepts fused / composed / cudnn and rejects anything else") {
  Generator g(3);
  Tensor q = Tensor::randn({1, 1, 2, 3}, g), k = Tensor::randn({1, 1, 4, 3}, g), v = Tensor::randn({1, 1, 4, 2}, g);
  std::vector<double> ref = scaled_dot_product_attention(q, k, v).to_double_vector();
  for (const char* ok : {"fused", "composed", "cudnn", ""}) {
    AttentionMode m(ok);
    CHECK(scaled_dot_product_attention(q, k, v).to_double_vector() == ref);  // the CPU always composes
  }
  AttentionMode bad("flash");
  CHECK_THROWS_WITH_AS(scaled_dot_product_attention(q, k, v),
                       doctest::Contains("LIBRAMIL_CUDA_ATTENTION must be 'fused', 'composed' or 'cudnn', got 'flash'"),
                       std::invalid_argument);
}

TEST_CASE("cuda attention: fused kernels vs the composed op on the GPU (forward, dq, dk, dv; f32 and f64)") {
  const bool gpu = have_gpu();
  const std::vector<Case>& cs = cases();
  const int total = (int)cs.size() * 2 + 1;  // every case in f32 and f64, + the mask-with-grad case
  if (!gpu) {
    MESSAGE("cuda attention: " << total << " fused-vs-composed CUDA cases skipped (no GPU)");
    return;
  }
  int checked = 0;
  for (const Case& c : cs) {
    for (DType dt : {DType::F32, DType::F64}) {
      const double tol = dt == DType::F32 ? 1e-5 : 1e-10;
      const std::string name = std::string(c.what) + " [" + dtype_name(dt) + "]";
      CAPTURE(name);
      Generator g(1234 + (uint64_t)c.Lk * 7 + (uint64_t)c.d);
      const Device dev = Device::cuda(0);
      Tensor q = Tensor::randn({c.B, c.H, c.Lq, c.d}, g, DType::F64).to(dt).to(dev);
      Tensor k = Tensor::randn({c.B, c.H, c.Lk, c.d}, g, DType::F64).to(dt).to(dev);
      Tensor v = Tensor::randn({c.B, c.H, c.Lk, c.dv}, g, DType::F64).to(dt).to(dev);
      Tensor R = Tensor::randn({c.B, c.H, c.Lq, c.dv}, g, DType::F64).to(dt).to(dev);
      Tensor mask = make_mask(c, g);
      if (mask.defined()) mask = mask.to(dt).to(dev);
      Outcome f = run("fused", q, k, v, mask, R);
      Outcome r = run("composed", q, k, v, mask, R);
      CHECK_MESSAGE(f.fused_ran, name << ": LIBRAMIL_CUDA_ATTENTION=fused did not run the fused kernels");
      CHECK_MESSAGE(!r.fused_ran, name << ": LIBRAMIL_CUDA_ATTENTION=composed ran the fused kernels");
      REQUIRE(f.out.device().is_cuda());
      const double e_out = rel_err(f.out, r.out), e_dq = rel_err(f.dq, r.dq), e_dk = rel_err(f.dk, r.dk),
                   e_dv = rel_err(f.dv, r.dv);
      CHECK_MESSAGE(e_out < tol, name << ": out rel err " << e_out);
      CHECK_MESSAGE(e_dq < tol, name << ": dq rel err " << e_dq);
      CHECK_MESSAGE(e_dk < tol, name << ": dk rel err " << e_dk);
      CHECK_MESSAGE(e_dv < tol, name << ": dv rel err " << e_dv);
      if (c.mask == 3) {
        // Both paths: the masked row's output is NaN, and so is every dk / dv of its heads
        // (docs/ops/attention.md); rel_err above already requires the NaNs in the same places.
        CHECK(count_nan(r.out) == c.B * c.H * c.dv);
        CHECK(count_nan(f.dk) == f.dk.numel());
      } else {
        CHECK(count_nan(f.out) + count_nan(f.dq) + count_nan(f.dk) + count_nan(f.dv) == 0);
      }
      MESSAGE(name << ": rel err out " << e_out << ", dq " << e_dq << ", dk " << e_dk << ", dv " << e_dv);
      ++checked;
    }
  }
  {
    // A mask that requires grad keeps the composition (the fused backward has no dmask).
    Generator g(7);
    const Device dev = Device::cuda(0);
    Tensor q = Tensor::randn({1, 1, 3, 4}, g).to(dev), k = Tensor::randn({1, 1, 5, 4}, g).to(dev);
    Tensor v = Tensor::randn({1, 1, 5, 2}, g).to(dev);
    Tensor mask = Tensor::randn({3, 5}, g).to(dev);
    mask.set_requires_grad(true);
    AttentionMode m("fused");
    Tensor out = scaled_dot_product_attention(q, k, v, mask);
    backward(sum(out));
    CHECK(mask.grad().defined());
    ++checked;
  }
  CHECK(checked == total);
  MESSAGE("cuda attention: " << checked << " fused-vs-composed CUDA cases checked");
}

TEST_CASE("bench attention: times the op and reports the path that ran") {
  const char* env_before = std::getenv(kEnv);
  const std::string before = env_before ? env_before : "<unset>";
  lm::bench::AttentionBenchOptions o;
  o.B = 2, o.H = 3, o.Lq = 7, o.Lk = 11, o.d = 8, o.dv = 5, o.repeats = 2;
  lm::bench::AttentionBenchResult r = lm::bench::bench_attention(o);
  CHECK(r.forward_ran == "composed");  // the CPU always composes
  CHECK(r.backward_ran == "composed");
  CHECK(r.median_ms > 0);
  CHECK(r.forward_median_ms > 0);
  CHECK(r.forward_median_ms <= r.median_ms * 1.5 + 1e-3);
  CHECK(r.peak_bytes > 0);
  o.forward_only = true;
  o.path = "cudnn";  // accepted everywhere; the CPU still composes
  r = lm::bench::bench_attention(o);
  CHECK(r.forward_ran == "composed");
  CHECK(r.backward_ran.empty());
  const char* env_after = std::getenv(kEnv);
  CHECK((env_after ? std::string(env_after) : "<unset>") == before);  // the run's path is not left behind
  o.path = "flash";
  CHECK_THROWS_WITH_AS(lm::bench::bench_attention(o), doctest::Contains("--path must be fused, composed or cudnn"),
                       std::invalid_argument);
  o.path = "";
  o.repeats = 0;
  CHECK_THROWS_AS(lm::bench::bench_attention(o), std::invalid_argument);
  if (!have_gpu()) {
    MESSAGE("bench attention: 2 CUDA runs skipped (no GPU)");
    return;
  }
  o.repeats = 1;
  o.device = lm::Device::cuda(0);
  o.forward_only = false;
  o.path = "fused";
  r = lm::bench::bench_attention(o);
  CHECK(r.forward_ran == "fused");
  CHECK(r.backward_ran == "fused");
  o.path = "composed";
  r = lm::bench::bench_attention(o);
  CHECK(r.forward_ran == "composed");
}

// The cuDNN fast path of scaled_dot_product_attention (LIBRAMIL_CUDA_ATTENTION=cudnn,
// cuda/cudnn_attention.h):
//   (a) which calls it takes (host rules, any machine with the CUDA build);
//   (b) its SDPA operation descriptors, built by our code, finalize in the real libcudnn (no
//       GPU needed: cuDNN validates tensors and operations before a handle exists), and
//       mismatched ones are refused;
//   (c) on a GPU: forward and gradients against the float64 CPU composition at the same
//       bfloat16-rounded inputs, within the bfloat16 tolerance 2e-2 (issue 3), with the
//       profiler showing which path ran; calls it does not take run the fused kernels.
// What cannot run here (no CUDA build, no libcudnn, a cuDNN without the SDPA operations, no
// GPU) is reported as skipped with a count and the reason, never as passed.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "ops/ops.h"
#include "tensor/profiler.h"
#include "tests/attention_cases.h"
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/cudnn_attention.h"
#include "cuda/device.h"
#endif

#ifdef LIBRAMIL_WITH_CUDA
namespace {

using namespace lm;

struct Sizes {
  int64_t B, H, Lq, Lk, d, dv;
  const char* what;
};

// Shapes of the models' attention calls that cuDNN takes, and odd ones.
const std::vector<Sizes>& eligible() {
  static const std::vector<Sizes> c = {
      {1, 8, 120, 120, 64, 64, "TransMIL: 8 heads of 64 over 120 tokens"},
      {2, 12, 77, 77, 64, 64, "CONCH text tower: 12 heads of 64, 77 tokens, 2 prompts"},
      {1, 1, 56, 5000, 128, 128, "56 queries over 5000 keys, d = 128"},
      {1, 2, 3, 5, 8, 16, "d = 8, dv = 16, 3 queries over 5 keys"},
  };
  return c;
}

cuda::SdpaShape shape(const Sizes& s) { return cuda::SdpaShape{s.B, s.H, s.Lq, s.Lk, s.d, s.dv}; }

// The reason cuDNN cannot be used here at all ("" when it can be loaded), and its version.
std::string cudnn_missing(int64_t* version) {
  try {
    *version = cuda::cudnn_version();
    return "";
  } catch (const cuda::CudnnUnavailable& e) {
    return e.what();
  }
}

bool have_gpu() {
  cuda::ensure_registered();
  const DeviceHooks* h = device_hooks(DeviceType::CUDA);
  return h && h->device_count && h->device_count() > 0;
}

using test::AttentionMode;

// max |got - want| / max |want|.
double rel_err(const Tensor& got, const Tensor& want) {
  if (!got.defined() || !want.defined() || got.shape() != want.shape()) return std::numeric_limits<double>::infinity();
  const std::vector<double> a = got.to_double_vector(), b = want.to_double_vector();
  double diff = 0, scale = 0;
  for (size_t x = 0; x < a.size(); ++x) {
    if (!std::isfinite(a[x])) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, std::abs(a[x] - b[x]));
    scale = std::max(scale, std::abs(b[x]));
  }
  return scale > 0 ? diff / scale : diff;
}

using Run = test::AttentionRun;

// A profiled forward + backward, results on the CPU.
Run run(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& mask, const Tensor& R) {
  Run r = test::run_attention(q, k, v, mask, R);
  for (Tensor* t : {&r.out, &r.dq, &r.dk, &r.dv}) *t = t->to(Device::cpu());
  return r;
}

}  // namespace

TEST_CASE("cudnn attention: the calls the cuDNN path takes (host rules)") {
  using lm::cuda::cudnn_sdpa_unsupported;
  for (const Sizes& s : eligible()) {
    CAPTURE(s.what);
    CHECK(cudnn_sdpa_unsupported(shape(s), lm::DType::F32, false) == "");
  }
  const lm::cuda::SdpaShape ok{1, 8, 120, 120, 64, 64};
  CHECK(cudnn_sdpa_unsupported(ok, lm::DType::F64, false).find("float64") != std::string::npos);
  CHECK(cudnn_sdpa_unsupported(ok, lm::DType::F32, true).find("mask") != std::string::npos);
  for (auto [d, dv] : {std::pair<int64_t, int64_t>{7, 8}, {8, 12}, {136, 64}, {64, 256}, {512, 512}}) {
    lm::cuda::SdpaShape s = ok;
    s.d = d;
    s.dv = dv;
    CAPTURE(d);
    CAPTURE(dv);
    CHECK(cudnn_sdpa_unsupported(s, lm::DType::F32, false).find("head dims") != std::string::npos);
  }
  lm::cuda::SdpaShape empty = ok;
  empty.Lk = 0;
  CHECK(cudnn_sdpa_unsupported(empty, lm::DType::F32, false).find("empty") != std::string::npos);
}

TEST_CASE("cudnn attention: our SDPA operation descriptors finalize in libcudnn (no GPU needed)") {
  int64_t version = 0;
  const std::string missing = cudnn_missing(&version);
  const int total = (int)eligible().size() * 3 + 2;
  if (!missing.empty()) {
    MESSAGE("cudnn attention: " << total << " descriptor checks skipped (" << missing << ")");
    return;
  }
  MESSAGE("cudnn attention: libcudnn " << version << " loaded");
  int checked = 0, skipped = 0;
  for (const Sizes& s : eligible()) {
    CAPTURE(s.what);
    const lm::cuda::SdpaDims g = lm::cuda::sdpa_dims(shape(s));
    for (int kind = 0; kind < 3; ++kind) {  // forward, forward with statistics, backward
      const bool bwd = kind == 2;
      if (version < (bwd ? lm::cuda::kCudnnSdpaBackwardVersion : lm::cuda::kCudnnSdpaForwardVersion)) {
        ++skipped;
        continue;
      }
      CHECK(lm::cuda::cudnn_sdpa_check_operation(g, bwd, kind == 1) == "");
      ++checked;
    }
  }
  if (version >= lm::cuda::kCudnnSdpaForwardVersion) {
    // cuDNN checks the operation's tensors against each other: k's head dim differing from q's,
    // or an output whose length is not q's, is refused when the operation is finalized.
    lm::cuda::SdpaDims bad = lm::cuda::sdpa_dims(shape(eligible()[0]));
    bad.k[3] = 32;
    const std::string why = lm::cuda::cudnn_sdpa_check_operation(bad, false, true);
    CHECK_MESSAGE(why.find("finalize the SDPA forward operation") != std::string::npos, why);
    bad = lm::cuda::sdpa_dims(shape(eligible()[0]));
    bad.o[2] = bad.q[2] + 1;
    const std::string why2 = lm::cuda::cudnn_sdpa_check_operation(bad, false, true);
    CHECK_MESSAGE(why2.find("finalize the SDPA forward operation") != std::string::npos, why2);
    checked += 2;
  } else {
    skipped += 2;
  }
  CHECK(checked + skipped == total);
  MESSAGE("cudnn attention: " << checked << " descriptor checks passed, " << skipped
                              << " skipped (operations libcudnn " << version << " lacks)");
}

TEST_CASE("cudnn attention: LIBRAMIL_CUDA_ATTENTION=cudnn on the GPU vs the float64 CPU composition") {
  const int total = (int)eligible().size() + 1;
  if (!have_gpu()) {
    MESSAGE("cudnn attention: " << total << " GPU cases skipped (no GPU)");
    return;
  }
  int64_t version = 0;
  const std::string missing = cudnn_missing(&version);
  if (!missing.empty() || version < lm::cuda::kCudnnSdpaForwardVersion) {
    MESSAGE("cudnn attention: " << total << " GPU cases skipped ("
                                << (missing.empty() ? "libcudnn " + std::to_string(version) + " has no SDPA operations"
                                                    : missing)
                                << ")");
    return;
  }
  const lm::Device dev = lm::Device::cuda(0);
  AttentionMode mode("cudnn");
  int checked = 0, cudnn_backward = 0;
  for (const Sizes& s : eligible()) {
    CAPTURE(s.what);
    lm::Generator g(99 + (uint64_t)s.Lk);
    // Inputs already on the bfloat16 grid, so that the reference sees what cuDNN sees.
    auto make = [&](lm::Shape sh) {
      return lm::Tensor::randn(sh, g, lm::DType::F64).to(lm::DType::BF16).to(lm::DType::F32);
    };
    lm::Tensor q = make({s.B, s.H, s.Lq, s.d}), k = make({s.B, s.H, s.Lk, s.d});
    lm::Tensor v = make({s.B, s.H, s.Lk, s.dv}), R = make({s.B, s.H, s.Lq, s.dv});
    Run ref = run(q.to(lm::DType::F64), k.to(lm::DType::F64), v.to(lm::DType::F64), lm::Tensor(), R.to(lm::DType::F64));
    Run got = run(q.to(dev), k.to(dev), v.to(dev), lm::Tensor(), R.to(dev));
    CHECK_MESSAGE(got.ran("attention_forward_cudnn"), "the cuDNN forward did not run");
    const bool bwd_cudnn = got.ran("attention_backward_cudnn");
    CHECK_MESSAGE((bwd_cudnn || got.ran("attention_backward")), "no attention backward ran");
    cudnn_backward += bwd_cudnn ? 1 : 0;
    const double eo = rel_err(got.out, ref.out), eq = rel_err(got.dq, ref.dq), ek = rel_err(got.dk, ref.dk),
                 ev = rel_err(got.dv, ref.dv);
    CHECK_MESSAGE(eo < 2e-2, "out rel err " << eo);
    CHECK_MESSAGE(eq < 2e-2, "dq rel err " << eq);
    CHECK_MESSAGE(ek < 2e-2, "dk rel err " << ek);
    CHECK_MESSAGE(ev < 2e-2, "dv rel err " << ev);
    MESSAGE(s.what << ": rel err out " << eo << ", dq " << eq << ", dk " << ek << ", dv " << ev << " (backward "
                   << (bwd_cudnn ? "cuDNN" : "hand-written") << ")");
    ++checked;
  }
  {
    // A call cuDNN does not take (a mask) runs the fused kernels under LIBRAMIL_CUDA_ATTENTION=cudnn.
    lm::Generator g(5);
    lm::Tensor q = lm::Tensor::randn({1, 2, 4, 16}, g), k = lm::Tensor::randn({1, 2, 9, 16}, g);
    lm::Tensor v = lm::Tensor::randn({1, 2, 9, 16}, g), R = lm::Tensor::randn({1, 2, 4, 16}, g);
    lm::Tensor mask = lm::Tensor::zeros({4, 9});
    Run got = run(q.to(dev), k.to(dev), v.to(dev), mask.to(dev), R.to(dev));
    Run ref = run(q, k, v, mask, R);
    CHECK(got.ran("attention_forward"));
    CHECK(!got.ran("attention_forward_cudnn"));
    CHECK(rel_err(got.out, ref.out) < 1e-5);
    ++checked;
  }
  CHECK(checked == total);
  MESSAGE("cudnn attention: " << checked << " GPU cases checked (libcudnn " << version << ", backward by cuDNN in "
                              << cudnn_backward << " of " << eligible().size() << ")");
}

#else

TEST_CASE("cudnn attention: skipped (built without the CUDA backend)") {
  MESSAGE("cudnn attention: every case skipped (library built without the CUDA backend)");
}

#endif

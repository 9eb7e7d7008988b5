// Training on a CUDA device: the pieces a `train --device cuda` run adds to the CPU path, each
// checked against the CPU:
//   - fill / zeros / add_same_shape and autograd's gradient accumulation, and copies of
//     strided views, on the device (DeviceHooks::fill / add / copy_strided), bit for bit the
//     CPU's;
//   - dtype conversion on the device (Tensor::to(DType) through DeviceHooks::convert): the same
//     bits as the CPU's conversion for every pair of float32 / float64 / float16 / bfloat16,
//     including ties, subnormals, overflow, infinities and NaN;
//   - uploads through the pinned staging buffers (cuda::upload_pinned), many in a row;
//   - Adam / AdamW updates on the device (cuda/optim.cu) against the CPU optimizer;
//   - a training step captured as a CUDA graph (cuda/graph.h) against the eager steps, and
//     cross-entropy under a capture (no host-side target check: NaN for a bad target);
//   - the protocol through the real binary: `train --device cuda` (per-bag uploads, and with
//     resident float16 features) against `train --device cpu` on a tiny dataset.
// Without a GPU these cases report how many were skipped; the flag checks (a missing GPU is
// one clear error and nothing is written) run everywhere.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "data/tables.h"
#include "bench/drivers/benchmark.h"
#include "models/nn/optim.h"
#include "ops/ops.h"
#include "tensor/rng.h"
#include "tensor/storage.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/copy.h"
#include "cuda/device.h"
#include "cuda/graph.h"
#endif

using namespace lm;
namespace fs = std::filesystem;

namespace {

bool have_gpu() {
#ifdef LIBRAMIL_WITH_CUDA
  cuda::ensure_registered();
#endif
  const DeviceHooks* h = device_hooks(DeviceType::CUDA);
  return h && h->device_count && h->device_count() > 0;
}

// The tiny dataset's arguments (tools/make_tiny_dataset.py), without --save_dir.
std::string tiny_args(const fs::path& dir) {
  return "--data_csv " + (dir / "labels.csv").string() + " --data_split_json " + (dir / "split.json").string() +
         " --h5_file_dir " + (dir / "features").string() + " --instance_path " + (dir / "instance_priors.json").string() +
         " --bag_path " + (dir / "bag_priors.csv").string() + " --instance_embeddings " +
         (dir / "z_ins.safetensors").string() + " --bag_embeddings " + (dir / "z_bag.safetensors").string() +
         " --epochs 3 --folds 1 --heads 2 --num_vis_prototypes 3 --lr 1e-3 --warmup_steps 2 --quiet";
}

std::vector<std::vector<std::string>> read_csv(const fs::path& p) {
  std::vector<std::vector<std::string>> rows;
  for (auto& r : data::parse_csv(test::read_text(p), p.string())) rows.push_back(r.fields);
  return rows;
}

// Raw bytes of a CPU tensor.
std::vector<unsigned char> bytes_of(const Tensor& t) {
  Tensor c = t.contiguous();
  std::vector<unsigned char> b(c.nbytes());
  if (!b.empty()) std::memcpy(b.data(), c.raw_data(), b.size());
  return b;
}

}  // namespace

TEST_CASE("train --device: a missing GPU, a bad device name or a misplaced flag is one clear error, nothing written") {
  fs::path dir = test::scratch_dir("cuda_train_flags");
  test::run_python_tool("make_tiny_dataset.py", dir.string() + " --classes 2 --per-class 4 --dim 8 --folds 1");
  const std::string args = tiny_args(dir);

  CHECK(test::run_libramil("train " + args + " --device tpu --save_dir " + (dir / "r1").string(), dir / "r1.log") != 0);
  CHECK(test::read_text(dir / "r1.log").find("--device tpu: expected cpu, cuda or cuda:<index>") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "r1"));

  CHECK(test::run_libramil("train " + args + " --resident-features f16 --save_dir " + (dir / "r2").string(), dir / "r2.log") != 0);
  CHECK(test::read_text(dir / "r2.log").find("--resident-features f16 needs --device cuda") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "r2"));

  if (have_gpu()) {
    MESSAGE("a GPU is present: the missing-GPU error is not checked here");
    return;
  }
  CHECK(test::run_libramil("train " + args + " --device cuda --save_dir " + (dir / "r3").string(), dir / "r3.log") != 0);
  const std::string log = test::read_text(dir / "r3.log");
  const bool named = log.find("device cuda:0 requested, but 0 CUDA device(s) are visible") != std::string::npos ||
                     log.find("device cuda:0 requested, but libramil was built without the CUDA backend") != std::string::npos;
  CHECK_MESSAGE(named, log);
  CHECK_FALSE(fs::exists(dir / "r3"));
}

TEST_CASE("CUDA dtype conversion gives the CPU's bits for every float pair") {
  if (!have_gpu()) {
    MESSAGE("CUDA dtype conversion: 12 conversion pairs skipped (no GPU)");
    return;
  }
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  // Ties and near-ties for float16 / bfloat16 rounding, subnormals of both, overflow, specials.
  std::vector<double> v = {0.0, -0.0, 1.0, -1.0, 1.0 + 1.0 / 2048, 1.0 + 3.0 / 2048, 1.0 + 1.0 / 256, 1.0 + 3.0 / 256,
                           65504.0, 65520.0, 65519.99, 1e6, -1e6, 6.0e-8, 3.0e-8, 2.9e-8, 1.0e-5, 1e-40, 3.4e38,
                           1e300, -1e-300, (double)inf, -(double)inf, (double)nan, 0.1, 1.0 / 3.0, 123.456, -7.77e-3};
  Generator gen(11);
  Tensor r = Tensor::randn({4096}, gen, DType::F64);
  for (double x : r.to_double_vector()) v.push_back(x * 1000.0);
  const Tensor base = Tensor::from_vector(v, {(int64_t)v.size()});  // float64
  const DType all[4] = {DType::F32, DType::F64, DType::F16, DType::BF16};
  int pairs = 0;
  for (DType from : all) {
    const Tensor src_cpu = base.to(from);
    const Tensor src_gpu = src_cpu.to(Device::cuda(0));
    for (DType to : all) {
      if (to == from) continue;
      const Tensor want = src_cpu.to(to);
      const Tensor got = src_gpu.to(to);
      CHECK(got.device().is_cuda());
      CHECK_MESSAGE(bytes_of(got.to(Device::cpu())) == bytes_of(want),
                    std::string(dtype_name(from)) << " -> " << std::string(dtype_name(to)) << ": CUDA bits differ from the CPU's");
      ++pairs;
    }
  }
  CHECK(pairs == 12);
}

TEST_CASE("CUDA fill, zeros, add_same_shape and gradient accumulation give the CPU's bits") {
  if (!have_gpu()) {
    MESSAGE("CUDA tensor helpers: 1 case skipped (no GPU)");
    return;
  }
  const Device gpu = Device::cuda(0);
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16, DType::I64}) {
    Tensor c = Tensor::empty({3, 1001}, t), g = Tensor::empty({3, 1001}, t, gpu);
    c.fill(-2.7182818);
    g.fill(-2.7182818);
    CHECK_MESSAGE(bytes_of(g.to(Device::cpu())) == bytes_of(c), "fill " << std::string(dtype_name(t)));
    CHECK(bytes_of(Tensor::zeros({5, 7}, t, gpu).to(Device::cpu())) == bytes_of(Tensor::zeros({5, 7}, t)));
  }
  Generator gen(8);
  for (DType t : {DType::F32, DType::F64}) {
    const Tensor a = Tensor::randn({257, 33}, gen, t), b = Tensor::randn({257, 33}, gen, t);
    const Tensor sum_gpu = add_same_shape(a.to(gpu), b.to(gpu));
    CHECK(sum_gpu.device().is_cuda());
    CHECK(bytes_of(sum_gpu.to(Device::cpu())) == bytes_of(add_same_shape(a, b)));
    Tensor acc = a.to(gpu).clone();
    CHECK(add_same_shape_inplace(acc, b.to(gpu)));  // sole owner: in place, on the device
    CHECK(bytes_of(acc.to(Device::cpu())) == bytes_of(add_same_shape(a, b)));
  }
  // Strided device views: contiguous / clone / to(dtype) of a transposed CUDA tensor, and
  // copy_from into one (DeviceHooks::copy_strided), against the same on the CPU.
  {
    const Tensor a = Tensor::randn({6, 5, 4}, gen);
    const Tensor tc = transpose(a, 0, 2), tg = transpose(a.to(gpu), 0, 2);
    REQUIRE_FALSE(tg.is_contiguous());
    CHECK(bytes_of(tg.contiguous().to(Device::cpu())) == bytes_of(tc.contiguous()));
    CHECK(bytes_of(tg.clone().to(Device::cpu())) == bytes_of(tc.clone()));
    CHECK(bytes_of(tg.to(DType::F64).to(Device::cpu())) == bytes_of(tc.to(DType::F64)));
    CHECK(bytes_of(tg.to(Device::cpu())) == bytes_of(tc.contiguous()));
    Tensor dst_c = Tensor::zeros({4, 5, 6}), dst_g = Tensor::zeros({4, 5, 6}, DType::F32, gpu);
    Tensor view_c = transpose(dst_c, 0, 2), view_g = transpose(dst_g, 0, 2);  // (6, 5, 4) views
    view_c.copy_from(a);
    view_g.copy_from(a);                      // host -> strided device view
    CHECK(bytes_of(dst_g.to(Device::cpu())) == bytes_of(dst_c));
    view_g.copy_from(a.to(gpu).to(DType::F64));  // device, other dtype -> strided device view
    CHECK(bytes_of(dst_g.to(Device::cpu())) == bytes_of(dst_c));
  }
  // A leaf used three times: backward accumulates three gradients into .grad.
  const Tensor x0 = Tensor::randn({64, 9}, gen);
  Tensor xc = x0.clone().set_requires_grad(true), xg = x0.to(gpu).set_requires_grad(true);
  for (Tensor* x : {&xc, &xg}) backward(sum(add(mul(*x, *x), mul(*x, 3.0))));
  CHECK(xg.grad().device().is_cuda());
  CHECK(bytes_of(xg.grad().to(Device::cpu())) == bytes_of(xc.grad()));
}

#ifdef LIBRAMIL_WITH_CUDA
TEST_CASE("pinned uploads deliver every bag intact, in order, while buffers alternate and grow") {
  if (!have_gpu()) {
    MESSAGE("pinned uploads: 1 case skipped (no GPU)");
    return;
  }
  Generator gen(5);
  std::vector<Tensor> hosts, devs;
  for (int i = 0; i < 12; ++i) {
    const int64_t n = 1 + (i * 7919) % 3001;  // sizes that shrink and grow, so buffers are reused and regrown
    Tensor h = Tensor::randn({n, 24}, gen);
    hosts.push_back(h);
    devs.push_back(cuda::upload_pinned(h, Device::cuda(0)));
    // The source may change right after the call returns: the upload must not see it.
    h.fill(-1.0);
  }
  Generator again(5);
  for (int i = 0; i < 12; ++i) {
    const int64_t n = 1 + (i * 7919) % 3001;
    const Tensor want = Tensor::randn({n, 24}, again);
    CHECK(devs[i].device().is_cuda());
    CHECK_MESSAGE(bytes_of(devs[i].to(Device::cpu())) == bytes_of(want), "upload " << i << " differs");
  }
  CHECK(cuda::pinned_staging_bytes() > 0);
}
#endif

TEST_CASE("Adam and AdamW on CUDA parameters follow the CPU optimizer") {
  if (!have_gpu()) {
    MESSAGE("CUDA optimizer: 4 cases skipped (no GPU)");
    return;
  }
  for (DType dt : {DType::F32, DType::F64}) {
    for (bool adamw : {false, true}) {
      Generator gen(3);
      Tensor p_cpu = Tensor::randn({37, 19}, gen, dt).set_requires_grad(true);
      Tensor p_gpu = p_cpu.detach().to(Device::cuda(0)).set_requires_grad(true);
      std::unique_ptr<optim::Optimizer> oc, og;
      if (adamw) {
        oc = std::make_unique<optim::AdamW>(std::vector<Tensor>{p_cpu}, 1e-2, std::pair{0.9, 0.999}, 1e-8, 0.05);
        og = std::make_unique<optim::AdamW>(std::vector<Tensor>{p_gpu}, 1e-2, std::pair{0.9, 0.999}, 1e-8, 0.05);
      } else {
        oc = std::make_unique<optim::Adam>(std::vector<Tensor>{p_cpu}, 1e-2, std::pair{0.9, 0.999}, 1e-8, 0.05);
        og = std::make_unique<optim::Adam>(std::vector<Tensor>{p_gpu}, 1e-2, std::pair{0.9, 0.999}, 1e-8, 0.05);
      }
      for (int step = 0; step < 5; ++step) {
        const Tensor g = Tensor::randn({37, 19}, gen, dt);
        p_cpu.set_grad(g);
        p_gpu.set_grad(g.to(Device::cuda(0)));
        oc->step();
        og->step();
      }
      CHECK(p_gpu.device().is_cuda());
      const std::vector<double> a = p_cpu.to_double_vector(), b = p_gpu.to(Device::cpu()).to_double_vector();
      double worst = 0;
      for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(a[i])));
      // A few ulps of the parameter dtype (FMA contraction may differ between the compilers).
      const double tol = dt == DType::F32 ? 1e-6 : 1e-13;
      CHECK_MESSAGE(worst <= tol, (adamw ? "AdamW " : "Adam ") << std::string(dtype_name(dt)) << ": max rel diff " << worst);
      // The state stayed on the device and is saved from there like the CPU's.
      for (auto& [k, t] : og->state_tensors())
        if (k.find("exp_avg") != std::string::npos) CHECK_MESSAGE(t.device().is_cuda(), k);
    }
  }
}

TEST_CASE("train --device cuda follows train --device cpu on the tiny dataset (per-bag uploads and resident f16)") {
  if (!have_gpu()) {
    MESSAGE("train on CUDA: 2 protocol runs skipped (no GPU)");
    return;
  }
  fs::path dir = test::scratch_dir("cuda_train_protocol");
  test::run_python_tool("make_tiny_dataset.py", dir.string() + " --classes 2 --per-class 6 --dim 16 --folds 1");
  const std::string args = tiny_args(dir);
  REQUIRE(test::run_libramil("train " + args + " --save_dir " + (dir / "cpu").string(), dir / "cpu.log") == 0);
  REQUIRE(test::run_libramil("train " + args + " --device cuda --save_dir " + (dir / "gpu").string(), dir / "gpu.log") == 0);
  REQUIRE(test::run_libramil("train " + args + " --device cuda --resident-features f16 --save_dir " + (dir / "f16").string(),
                             dir / "f16.log") == 0);
  const auto cpu = read_csv(dir / "cpu" / "logs" / "log_0.csv");
  const auto gpu = read_csv(dir / "gpu" / "logs" / "log_0.csv");
  const auto f16 = read_csv(dir / "f16" / "logs" / "log_0.csv");
  REQUIRE(cpu.size() == 4);
  REQUIRE(gpu.size() == 4);
  REQUIRE(f16.size() == 4);
  for (int e = 1; e <= 3; ++e) {
    // Columns 1 (train_loss), 3 (val_loss), 7 (test_loss). float32 on both devices with
    // different summation orders: agreement to 1e-4 relative over 3 epochs of 4 training bags.
    for (int c : {1, 3, 7}) {
      const double a = std::stod(cpu[e][c]), b = std::stod(gpu[e][c]);
      CHECK_MESSAGE(std::abs(a - b) <= 1e-4 * std::max(1.0, std::abs(a)),
                    "epoch " << e << " column " << cpu[0][c] << ": cpu " << a << " cuda " << b);
      // float16 features round each input to 11 bits: the losses move by far less than 1e-2.
      const double h = std::stod(f16[e][c]);
      CHECK_MESSAGE(std::abs(a - h) <= 1e-2 * std::max(1.0, std::abs(a)),
                    "epoch " << e << " column " << cpu[0][c] << ": cpu " << a << " cuda f16 " << h);
    }
  }
}

#ifdef LIBRAMIL_WITH_CUDA
// A CUDA graph capture refuses anything that synchronises with the host, so a captured training
// step needs every zero / ones tensor filled on the device and cross-entropy's target check
// skipped. The graph's losses must be the eager run's (the same seed, step by step).
TEST_CASE("a training step captured as a CUDA graph replays the eager losses; cross-entropy under capture") {
  if (!have_gpu()) {
    MESSAGE("CUDA graph: 3 cases skipped (no GPU)");
    return;
  }
  for (const char* mode : {"paper", "reference"}) {
    bench::TrainStepOptions o;
    o.instances = 300, o.dim = 64, o.text_prototypes = 7, o.visual_prototypes = 4, o.mode = mode;
    o.repeats = 3, o.warmup = 1, o.device = Device::cuda(0), o.cuda_graph = true;
    const bench::TrainStepResult r = bench::bench_train_step(o);
    CHECK_MESSAGE(r.graph_nodes > 0, std::string(mode));
    CHECK_MESSAGE(r.graph_steps_compared == 4, std::string(mode));
    CHECK_MESSAGE(r.graph_max_abs_loss_diff <= 1e-5, std::string(mode) << ": eager and graph losses differ by "
                                                         << r.graph_max_abs_loss_diff);
  }
  // Under capture the targets are not read back: one in range gives the eager loss, one out of
  // range a NaN loss (never a read outside the row); eagerly the latter is a clear error.
  const Device gpu = Device::cuda(0);
  cuda::StreamScope scope(0);
  Generator gen(3);
  const Tensor logits = Tensor::randn({4, 5}, gen).to(gpu);
  const Tensor good = Tensor::from_vector(std::vector<int64_t>{0, 4, 2, 1}, {4}).to(gpu);
  const Tensor bad = Tensor::from_vector(std::vector<int64_t>{0, 5, 2, -1}, {4}).to(gpu);
  const double want = cross_entropy(logits, good).item();
  Tensor got_good, got_bad;
  cuda::Graph graph(0, [&] {
    got_good = cross_entropy(logits, good);
    got_bad = cross_entropy(logits, bad);
  });
  graph.replay();
  CHECK(got_good.item() == want);
  CHECK(std::isnan(got_bad.item()));
  CHECK_THROWS_WITH(cross_entropy(logits, bad), doctest::Contains("out of range"));
}
#endif

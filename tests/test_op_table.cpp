// The op table (docs ARCHITECTURE.md, "Testing discipline"; modeled on ggml's
// test-backend-ops): every op of ops/ops.h is listed once below, with several cases each
// (odd sizes, size-1 dims, broadcasting, non-contiguous inputs made as transposed / strided
// views of bigger tensors). Each case is checked in three modes:
//   (a) float64 central-difference gradient check (autograd/gradcheck.h) on tiny shapes;
//   (b) forward and backward against PyTorch, float32 and float64: inputs and the upstream
//       gradient R are written to a scratch dir (index.json + raw little-endian .bin files),
//       tools/op_table_reference.py evaluates the same op *by name* with torch functions, and
//       outputs / input gradients are compared per case with per-dtype tolerances;
//   (c) CUDA against CPU when a GPU is present, counted and reported as skipped otherwise.
// A summary table (op, cases, max errors per mode) is printed at the end.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "ops/ops.h"
#include "tests/test_util.h"
#include "tests/op_table_cases.h"

namespace {

using namespace lm;
using namespace lm::test::op_table;

// ---- running a case -------------------------------------------------------------------------

uint64_t case_seed(const std::string& name) {  // FNV-1a: stable across runs and table edits
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) h = (h ^ c) * 1099511628211ull;
  return h;
}

Inputs make_inputs(const OpCase& c, DType dt) {
  Generator g(case_seed(c.name));
  Draw d{g, dt};
  Inputs in = c.make(d);
  if (!c.forward_only)
    for (size_t i = 0; i < in.size(); ++i)
      if (is_floating(in[i].dtype()) && std::find(c.no_grad.begin(), c.no_grad.end(), (int)i) == c.no_grad.end())
        in[i].set_requires_grad(true);
  return in;
}

Tensor upstream_grad(const OpCase& c, const Shape& s, DType dt) {
  Generator g(case_seed(c.name) ^ 0x9e3779b97f4a7c15ull);
  return Tensor::randn(s, g, dt);
}

struct Run {
  Tensor out, R;
  std::vector<Tensor> grads;  // per input; undefined where the input needs no gradient
};

// Forward, then backward(out, R). Gradients that never arrived count as zeros.
Run run_case(const OpCase& c, const Inputs& in) {
  Run r;
  r.out = c.fn(in);
  r.grads.resize(in.size());
  if (c.forward_only) return r;
  r.R = upstream_grad(c, r.out.shape(), r.out.dtype()).to(r.out.device());
  backward(r.out, r.R);
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i].requires_grad())
      r.grads[i] = in[i].grad().defined() ? in[i].grad() : Tensor::zeros(in[i].shape(), in[i].dtype());
  return r;
}

struct Cmp {
  bool ok = true;
  double max_abs = 0, max_rel = 0;
  std::string detail;
};

// Elementwise |got - want| <= atol + rtol |want|; rel err = |got - want| / max(|want|, atol / rtol).
Cmp compare(const std::vector<double>& got, const std::vector<double>& want, Tol tol) {
  Cmp c;
  if (got.size() != want.size()) {
    c.ok = false;
    c.detail = "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
    c.max_rel = c.max_abs = std::numeric_limits<double>::infinity();
    return c;
  }
  int64_t worst = -1;
  for (size_t i = 0; i < got.size(); ++i) {
    double a = got[i], b = want[i];
    double err;
    if (std::isnan(a) || std::isnan(b)) err = (std::isnan(a) && std::isnan(b)) ? 0 : std::numeric_limits<double>::infinity();
    else if (std::isinf(a) || std::isinf(b)) err = a == b ? 0 : std::numeric_limits<double>::infinity();
    else err = std::abs(a - b);
    double rel = err / std::max(std::abs(b), tol.atol / tol.rtol);
    if (!(err <= tol.atol + tol.rtol * (std::isfinite(b) ? std::abs(b) : 0.0)) && err != 0) c.ok = false;
    c.max_abs = std::max(c.max_abs, err);
    if (rel > c.max_rel || worst < 0) {
      c.max_rel = std::max(c.max_rel, rel);
      worst = (int64_t)i;
    }
  }
  if (worst >= 0) {
    std::ostringstream ss;
    ss.precision(17);
    ss << "max abs err " << c.max_abs << ", max rel err " << c.max_rel << " (rtol " << tol.rtol << ", atol " << tol.atol
       << "); worst element " << worst << ": got " << got[worst] << " want " << want[worst];
    c.detail = ss.str();
  }
  return c;
}

// ---- raw tensor files for the Python reference ----------------------------------------------

const char* file_dtype(DType t) { return dtype_name(t); }  // float32 / float64 / int64

void write_bin(const std::filesystem::path& p, const Tensor& t) {
  Tensor c = t.detach().contiguous();
  std::ofstream f(p, std::ios::binary);
  f.write(static_cast<const char*>(c.raw_data()), (std::streamsize)c.nbytes());
  if (!f) throw std::runtime_error("cannot write " + p.string());
}

std::vector<double> read_bin(const std::filesystem::path& p, const std::string& dtype) {
  std::string raw = test::read_text(p);
  std::vector<double> v;
  if (dtype == "float32") {
    std::vector<float> f(raw.size() / 4);
    std::memcpy(f.data(), raw.data(), f.size() * 4);
    v.assign(f.begin(), f.end());
  } else if (dtype == "float64") {
    v.resize(raw.size() / 8);
    std::memcpy(v.data(), raw.data(), v.size() * 8);
  } else if (dtype == "int64") {
    std::vector<int64_t> f(raw.size() / 8);
    std::memcpy(f.data(), raw.data(), f.size() * 8);
    v.assign(f.begin(), f.end());
  } else {
    throw std::runtime_error("read_bin: unknown dtype " + dtype);
  }
  return v;
}

// A copy on `dev` with the same strides and offset (the whole storage is moved), so
// non-contiguous inputs stay non-contiguous on the device.
Tensor to_device_same_layout(const Tensor& x, Device dev) {
  auto st = x.impl().storage;
  int64_t n = (int64_t)(st->nbytes() / dtype_size(x.dtype()));
  Tensor flat = Tensor::from_storage(st, {n}, x.dtype(), 0).to(dev);
  return flat.as_strided(x.shape(), x.strides(), x.offset());
}

// ---- summary ----------------------------------------------------------------------------------

struct OpStats {
  int cases = 0, failures = 0;
  double gc = -1;                                  // gradcheck max rel err (-1: not run)
  double f64_fwd = -1, f64_bwd = -1, f32_fwd = -1, f32_bwd = -1;
  double cuda = -1;
};

std::string fmt_err(double e) {
  if (e < 0) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1e", e);
  return b;
}

}  // namespace

TEST_CASE("op table: every op of ops/ops.h (gradcheck, vs PyTorch f32/f64, CUDA vs CPU)") {
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  const auto& tab = table();
  std::map<std::string, OpStats> stats;
  std::vector<std::string> order;
  auto stat = [&](const std::string& op) -> OpStats& {
    if (!stats.count(op)) order.push_back(op);
    return stats[op];
  };

  // The table covers every op, and case names are unique (they key the fixtures).
  {
    std::set<std::string> ops, names;
    for (const OpCase& c : tab) {
      ops.insert(c.op);
      CHECK_MESSAGE(names.insert(c.name).second, "duplicate case name " << c.name);
      stat(c.op).cases++;
    }
    for (const std::string& op : kAllOps) CHECK_MESSAGE(ops.count(op) == 1, "op table has no case for " << op);
    for (const std::string& op : ops)
      CHECK_MESSAGE(std::find(kAllOps.begin(), kAllOps.end(), op) != kAllOps.end(), "unknown op " << op);
  }

  // (a) float64 central differences.
  int gc_cases = 0;
  for (const OpCase& c : tab) {
    if (c.forward_only || c.skip_gradcheck) continue;
    Inputs in = make_inputs(c, DType::F64);
    autograd::GradcheckResult r;
    try {
      r = autograd::gradcheck(c.fn, in);
    } catch (const std::exception& e) {
      r.ok = false;
      r.max_rel_err = std::numeric_limits<double>::infinity();
      r.message = std::string("threw: ") + e.what();
    }
    ++gc_cases;
    CHECK_MESSAGE(r.ok, "gradcheck " << c.name << ": " << r.message);
    if (!r.ok) stat(c.op).failures++;
    stat(c.op).gc = std::max(stat(c.op).gc, r.max_rel_err);
  }
  auto t1 = clock::now();

  // (b) against PyTorch: write inputs and R for float32 and float64, run the script once.
  auto dir = test::scratch_dir("op_table");
  json index = {{"cases", json::array()}};
  struct Pending {
    const OpCase* c;
    DType dt;
    std::string key;
    Run run;
    Inputs in;
    std::string error;
  };
  std::vector<Pending> pend;
  for (size_t k = 0; k < tab.size(); ++k) {
    const OpCase& c = tab[k];
    for (DType dt : {DType::F32, DType::F64}) {
      Pending p{&c, dt, "c" + std::to_string(k) + "_" + dtype_name(dt), {}, {}, {}};
      try {
        p.in = make_inputs(c, dt);
        p.run = run_case(c, p.in);
        json e = {{"key", p.key}, {"op", c.op}, {"params", c.params}, {"name", c.name}, {"inputs", json::array()}};
        for (size_t i = 0; i < p.in.size(); ++i) {
          std::string f = p.key + ".in" + std::to_string(i) + ".bin";
          write_bin(dir / f, p.in[i]);
          e["inputs"].push_back({{"file", f}, {"dtype", file_dtype(p.in[i].dtype())}, {"shape", p.in[i].shape()},
                                 {"grad", p.in[i].requires_grad()}});
        }
        if (c.forward_only) {
          e["grad_out"] = nullptr;
        } else {
          std::string f = p.key + ".R.bin";
          write_bin(dir / f, p.run.R);
          e["grad_out"] = {{"file", f}, {"dtype", file_dtype(p.run.R.dtype())}, {"shape", p.run.R.shape()}};
        }
        index["cases"].push_back(e);
      } catch (const std::exception& ex) {
        p.error = ex.what();
      }
      pend.push_back(std::move(p));
    }
  }
  {
    std::ofstream f(dir / "index.json");
    f << index.dump(1);
  }
  auto t1b = clock::now();
  json results;
  bool have_torch = false;
  try {
    test::run_python_tool("op_table_reference.py", dir.string());
    results = json::parse(test::read_text(dir / "results.json"));
    have_torch = true;
  } catch (const std::exception& e) {
    FAIL_CHECK("op table: the PyTorch reference did not run: " << std::string(e.what()));
  }
  auto t2 = clock::now();
  int torch_checked = 0;
  for (Pending& p : pend) {
    const OpCase& c = *p.c;
    OpStats& s = stat(c.op);
    bool f64 = p.dt == DType::F64;
    Tol tol = f64 ? c.f64 : c.f32;
    if (!p.error.empty()) {
      FAIL_CHECK(c.name << " [" << std::string(dtype_name(p.dt)) << "]: libramil threw: " << p.error);
      s.failures++;
      continue;
    }
    if (!have_torch) continue;
    const json& r = results[p.key];
    if (r.is_null() || !r["error"].is_null()) {
      FAIL_CHECK(c.name << " [" << std::string(dtype_name(p.dt)) << "]: the torch reference failed: " << (r.is_null() ? "no result" : r["error"].get<std::string>()));
      s.failures++;
      continue;
    }
    ++torch_checked;
    bool case_ok = true;
    Shape tshape = r["out_shape"].get<Shape>();
    CHECK_MESSAGE(tshape == p.run.out.shape(), c.name << ": output shape " << shape_str(p.run.out.shape()) << ", torch " << shape_str(tshape));
    case_ok = case_ok && tshape == p.run.out.shape();
    std::string odt = r["out_dtype"].get<std::string>();
    Cmp fw = compare(p.run.out.to_double_vector(), read_bin(dir / (p.key + ".out.bin"), odt), tol);
    CHECK_MESSAGE(fw.ok, c.name << " [" << std::string(dtype_name(p.dt)) << "] forward vs torch: " << fw.detail);
    case_ok = case_ok && fw.ok;
    double& fs = f64 ? s.f64_fwd : s.f32_fwd;
    fs = std::max(fs, fw.max_rel);
    for (size_t i = 0; i < p.in.size(); ++i) {
      if (!p.run.grads[i].defined()) continue;
      Cmp bw = compare(p.run.grads[i].to_double_vector(),
                       read_bin(dir / (p.key + ".gin" + std::to_string(i) + ".bin"), file_dtype(p.dt)), tol);
      CHECK_MESSAGE(bw.ok, c.name << " [" << std::string(dtype_name(p.dt)) << "] grad of input " << i << " vs torch: " << bw.detail);
      case_ok = case_ok && bw.ok;
      double& bs = f64 ? s.f64_bwd : s.f32_bwd;
      bs = std::max(bs, bw.max_rel);
    }
    if (!case_ok) s.failures++;
  }
  auto t3 = clock::now();

  // (c) CUDA against CPU (float32), when a GPU is present.
  const DeviceHooks* hooks = device_hooks(DeviceType::CUDA);
  bool gpu = hooks && hooks->device_count && hooks->device_count() > 0;
  int cuda_cases = 0, cuda_skipped = 0;
  for (const OpCase& c : tab) {
    if (!gpu) {
      ++cuda_skipped;
      continue;
    }
    ++cuda_cases;
    OpStats& s = stat(c.op);
    try {
      Inputs cpu_in = make_inputs(c, DType::F32);
      Run ref = run_case(c, cpu_in);
      Inputs gin;
      for (size_t i = 0; i < cpu_in.size(); ++i) {
        Tensor g = to_device_same_layout(cpu_in[i].detach(), Device::cuda(0));
        if (cpu_in[i].requires_grad()) g.set_requires_grad(true);
        gin.push_back(g);
      }
      Run got;
      got.out = c.fn(gin);
      got.grads.resize(gin.size());
      if (!c.forward_only) {
        backward(got.out, ref.R.to(Device::cuda(0)));
        for (size_t i = 0; i < gin.size(); ++i)
          if (gin[i].requires_grad()) got.grads[i] = gin[i].grad();
      }
      CHECK_MESSAGE(got.out.device().is_cuda(), c.name << ": CUDA output lives on " << got.out.device().str());
      Tol tol{std::max(1e-5, c.f32.rtol), std::max(1e-6, c.f32.atol)};
      Cmp fw = compare(got.out.to_double_vector(), ref.out.to_double_vector(), tol);
      CHECK_MESSAGE(fw.ok, c.name << " CUDA vs CPU forward: " << fw.detail);
      double worst = fw.max_rel;
      bool ok = fw.ok;
      for (size_t i = 0; i < gin.size(); ++i) {
        if (!ref.grads[i].defined()) continue;
        CHECK_MESSAGE(got.grads[i].defined(), c.name << " CUDA: no gradient for input " << i);
        if (!got.grads[i].defined()) { ok = false; continue; }
        Cmp bw = compare(got.grads[i].to_double_vector(), ref.grads[i].to_double_vector(), tol);
        CHECK_MESSAGE(bw.ok, c.name << " CUDA vs CPU grad of input " << i << ": " << bw.detail);
        ok = ok && bw.ok;
        worst = std::max(worst, bw.max_rel);
      }
      if (!ok) s.failures++;
      s.cuda = std::max(s.cuda, worst);
    } catch (const std::exception& e) {
      FAIL_CHECK(c.name << " on CUDA threw: " << std::string(e.what()));
      s.failures++;
    }
  }
  if (!gpu) MESSAGE("op table: " << cuda_skipped << " CUDA cases skipped (no GPU)");
  auto t4 = clock::now();

  // Summary.
  auto secs = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
  std::ostringstream ss;
  char line[256];
  std::snprintf(line, sizeof line, "%-30s %5s %9s %9s %9s %9s %9s %9s %5s\n", "op", "cases", "gradchk", "f64 fwd",
                "f64 bwd", "f32 fwd", "f32 bwd", "cuda", "fail");
  ss << "\nop table summary (max rel err = |got - want| / max(|want|, atol/rtol); '-' = not run)\n" << line;
  int total = 0, failed = 0;
  for (const std::string& op : order) {
    const OpStats& s = stats[op];
    std::snprintf(line, sizeof line, "%-30s %5d %9s %9s %9s %9s %9s %9s %5d\n", op.c_str(), s.cases, fmt_err(s.gc).c_str(),
                  fmt_err(s.f64_fwd).c_str(), fmt_err(s.f64_bwd).c_str(), fmt_err(s.f32_fwd).c_str(), fmt_err(s.f32_bwd).c_str(),
                  gpu ? fmt_err(s.cuda).c_str() : "skipped", s.failures);
    ss << line;
    total += s.cases;
    failed += s.failures;
  }
  ss << order.size() << " ops, " << total << " cases: " << gc_cases << " gradchecks, " << torch_checked
     << " torch comparisons (f32 + f64), " << cuda_cases << " CUDA comparisons, " << cuda_skipped << " CUDA skipped; "
     << failed << " failing checks.\n";
  std::snprintf(line, sizeof line, "time: gradcheck %.1fs, run + write %.1fs, torch %.1fs, compare %.1fs, cuda %.1fs\n",
                secs(t0, t1), secs(t1, t1b), secs(t1b, t2), secs(t2, t3), secs(t3, t4));
  ss << line;
  MESSAGE(ss.str());
}

// Tensor factories, metadata, element access and the strided copy / conversion loop.
#include "tensor/tensor.h"
#include "tensor/profiler.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "tensor/rng.h"

namespace lm {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = (int64_t)s.size() - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* op) {
  int64_t w = d < 0 ? d + ndim : d;
  if (w < 0 || w >= ndim)
    throw std::invalid_argument(std::string(op) + ": dimension " + std::to_string(d) + " out of range for a " + std::to_string(ndim) + "-d tensor");
  return w;
}

// ---- factories ----------------------------------------------------------------------
Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0) throw std::invalid_argument("Tensor::empty: negative dimension in shape " + shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>((size_t)shape_numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype, int64_t offset) {
  if ((size_t)((offset + shape_numel(shape)) * (int64_t)dtype_size(dtype)) > storage->nbytes())
    throw std::invalid_argument("Tensor::from_storage: shape " + shape_str(shape) + " does not fit the storage");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->offset = offset;
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  // On a device: filled there (Tensor::fill's kernel), not uploaded from the host; an upload
  // would synchronise with the host (autograd's seed gradient, zero gradients in a CUDA graph).
  Tensor t = empty(shape, dtype, device);
  t.fill(value);
  return t;
}

Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, DType::F64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < n; ++i) p[i] = (double)i;
  return t.to(dtype);
}

template <class T>
static Tensor from_vector_impl(const std::vector<T>& values, const Shape& shape) {
  if ((int64_t)values.size() != shape_numel(shape))
    throw std::invalid_argument("Tensor::from_vector: " + std::to_string(values.size()) + " values for shape " + shape_str(shape));
  Tensor t = Tensor::empty(shape, dtype_of<T>::value);
  if (!values.empty()) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}
Tensor Tensor::from_vector(const std::vector<float>& v, const Shape& s) { return from_vector_impl(v, s); }
Tensor Tensor::from_vector(const std::vector<double>& v, const Shape& s) { return from_vector_impl(v, s); }
Tensor Tensor::from_vector(const std::vector<int64_t>& v, const Shape& s) { return from_vector_impl(v, s); }

Tensor Tensor::randn(const Shape& shape, Generator& gen, DType dtype) {
  Tensor t = empty(shape, DType::F64);
  int64_t n = t.numel();
  uint64_t base = gen.advance((uint64_t)n);
  double* p = t.data<double>();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = philox_normal(gen.seed(), base + (uint64_t)i);
  return dtype == DType::F64 ? t : t.to(dtype);
}

Tensor Tensor::uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype) {
  Tensor t = empty(shape, DType::F64);
  int64_t n = t.numel();
  uint64_t base = gen.advance((uint64_t)n);
  double* p = t.data<double>();
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = lo + (hi - lo) * philox_uniform(gen.seed(), base + (uint64_t)i);
  return dtype == DType::F64 ? t : t.to(dtype);
}

// ---- metadata -------------------------------------------------------------------------
int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] == 1) continue;
    if (strides()[i] != expected) return false;
    expected *= shape()[i];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device().str();
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + offset() * (int64_t)dtype_size(dtype());
}

// ---- element loops --------------------------------------------------------------------
static double load_as_double(const char* p, DType t) {
  switch (t) {
    case DType::F32: return *reinterpret_cast<const float*>(p);
    case DType::F64: return *reinterpret_cast<const double*>(p);
    case DType::I64: return (double)*reinterpret_cast<const int64_t*>(p);
    case DType::F16: return half_to_float(*reinterpret_cast<const uint16_t*>(p));
    case DType::BF16: return bf16_to_float(*reinterpret_cast<const uint16_t*>(p));
  }
  return 0;
}

static void store_from_double(char* p, DType t, double v) {
  switch (t) {
    case DType::F32: *reinterpret_cast<float*>(p) = (float)v; break;
    case DType::F64: *reinterpret_cast<double*>(p) = v; break;
    case DType::I64: *reinterpret_cast<int64_t*>(p) = (int64_t)v; break;
    case DType::F16: *reinterpret_cast<uint16_t*>(p) = float_to_half((float)v); break;
    case DType::BF16: *reinterpret_cast<uint16_t*>(p) = float_to_bf16((float)v); break;
  }
}

// Calls f(dst_elem_offset, src_elem_offset) for every logical index, in row-major order.
template <class F>
static void for_each_index(const Shape& shape, const Shape& dst_strides, const Shape& src_strides, F&& f) {
  int64_t nd = (int64_t)shape.size();
  int64_t n = shape_numel(shape);
  if (n == 0) return;
  if (nd == 0) { f(0, 0); return; }
  std::vector<int64_t> idx(nd, 0);
  int64_t inner = shape[nd - 1], ds = dst_strides[nd - 1], ss = src_strides[nd - 1];
  int64_t outer = n / inner;
  int64_t dbase = 0, sbase = 0;
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) f(dbase + i * ds, sbase + i * ss);
    for (int64_t d = nd - 2; d >= 0; --d) {
      if (++idx[d] < shape[d]) { dbase += dst_strides[d]; sbase += src_strides[d]; break; }
      dbase -= dst_strides[d] * (shape[d] - 1);
      sbase -= src_strides[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

void Tensor::copy_from(const Tensor& src) {
  if (src.shape() != shape())
    throw std::invalid_argument("copy_from: shape " + shape_str(src.shape()) + " into " + shape_str(shape()));
  if (!device().is_cpu() || !src.device().is_cpu()) {
    // Device copies. First src becomes a packed tensor of this dtype (on its own device: the
    // backend's strided copy and conversion hooks, or the CPU paths below).
    Tensor s = src;
    if (!s.is_contiguous()) s = s.contiguous();
    if (s.dtype() != dtype()) s = s.to(dtype());
    Device dd = device(), sd = s.device();
    if (!is_contiguous()) {
      if (dd.is_cpu()) {  // download packed, then the CPU's strided copy
        copy_from(s.to(Device::cpu()));
        return;
      }
      // Stage on this device, then one strided device copy into this view.
      if (sd != dd) s = s.to(dd);
      const DeviceHooks* h = device_hooks(dd.type);
      if (!h || !h->copy_strided)
        throw std::runtime_error("copy_from: no strided device copy in this build (" + src.str() + " -> " + str() + ")");
      const Shape packed = s.strides();
      h->copy_strided(raw_data(), strides().data(), s.raw_data(), packed.data(), shape().data(), (int)dim(),
                      dtype_size(dtype()), dd.index);
      return;
    }
    const DeviceHooks* h = device_hooks(dd.is_cpu() ? sd.type : dd.type);
    if (!h) throw std::runtime_error("copy_from: no backend for " + dd.str() + " <- " + sd.str());
    h->copy(raw_data(), dd, s.raw_data(), sd, nbytes());
    return;
  }
  DType dt = dtype(), st = src.dtype();
  char* dp = static_cast<char*>(raw_data());
  const char* sp = static_cast<const char*>(src.raw_data());
  size_t dsz = dtype_size(dt), ssz = dtype_size(st);
  if (dt == st && is_contiguous() && src.is_contiguous()) {
    std::memcpy(dp, sp, nbytes());
    return;
  }
  if (dt == st && dt == DType::F32) {
    float* d = reinterpret_cast<float*>(dp);
    const float* s = reinterpret_cast<const float*>(sp);
    for_each_index(shape(), strides(), src.strides(), [&](int64_t a, int64_t b) { d[a] = s[b]; });
    return;
  }
  for_each_index(shape(), strides(), src.strides(), [&](int64_t a, int64_t b) {
    store_from_double(dp + a * dsz, dt, load_as_double(sp + b * ssz, st));
  });
}

void Tensor::fill(double value) {
  if (!device().is_cpu()) {
    const DeviceHooks* h = device_hooks(device().type);
    if (h && h->fill && is_contiguous()) {  // on the device: the element converted here, once
      alignas(8) char pattern[8];
      store_from_double(pattern, dtype(), value);
      h->fill(raw_data(), pattern, dtype_size(dtype()), numel(), device().index);
      return;
    }
    copy_from(full(shape(), value, dtype()));
    return;
  }
  char* dp = static_cast<char*>(raw_data());
  size_t sz = dtype_size(dtype());
  if (dtype() == DType::F32 && is_contiguous()) {
    float* p = reinterpret_cast<float*>(dp);
    int64_t n = numel();
    for (int64_t i = 0; i < n; ++i) p[i] = (float)value;
    return;
  }
  Shape zero(dim(), 0);
  for_each_index(shape(), strides(), zero, [&](int64_t a, int64_t) { store_from_double(dp + a * sz, dtype(), value); });
}

Tensor Tensor::as_strided(const Shape& shape, const Shape& strides, int64_t offset) const {
  auto v = std::make_shared<TensorImpl>();
  v->storage = impl().storage;
  v->shape = shape;
  v->strides = strides;
  v->offset = offset;
  v->dtype = dtype();
  return Tensor(v);
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

Tensor Tensor::clone() const {
  profiler::Scope prof("copy", 0, 2.0 * nbytes());
  Tensor t = empty(shape(), dtype(), device());
  if (device().is_cpu() || is_contiguous()) {
    t.copy_from(*this);
    return t;
  }
  // A strided device view: one device-side copy (no host round trip).
  const DeviceHooks* h = device_hooks(device().type);
  if (!h || !h->copy_strided)
    throw std::runtime_error("clone: no strided device copy in this build for " + str());
  h->copy_strided(t.raw_data(), t.strides().data(), raw_data(), strides().data(), shape().data(), (int)dim(),
                  dtype_size(dtype()), device().index);
  return t;
}

Tensor Tensor::to(DType t) const {
  if (t == dtype()) return *this;
  if (!device().is_cpu()) {
    const DeviceHooks* h = device_hooks(device().type);
    if (h && h->copy_strided && !is_contiguous()) return contiguous().to(t);  // pack on the device first
    if (h && h->convert && is_contiguous() && is_floating(t) && is_floating(dtype())) {  // on the device
      Tensor r = empty(shape(), t, device());
      h->convert(r.raw_data(), t, raw_data(), dtype(), numel(), device().index);
      return r;
    }
    return to(Device::cpu()).to(t).to(device());
  }
  Tensor r = empty(shape(), t, device());
  r.copy_from(*this);
  return r;
}

Tensor Tensor::to(Device d) const {
  if (d == device()) return *this;
  check_device_available(d);
  Tensor src = device().is_cpu() ? contiguous() : *this;
  if (!src.is_contiguous()) src = src.clone();
  Tensor r = empty(shape(), dtype(), d);
  r.copy_from(src);
  return r;
}

Tensor Tensor::detach() const { return as_strided(shape(), strides(), offset()); }

Tensor& Tensor::set_requires_grad(bool r) {
  if (r && !is_floating(dtype())) throw std::invalid_argument("set_requires_grad: only floating tensors can require gradients (" + str() + ")");
  if (!is_leaf()) throw std::invalid_argument("set_requires_grad: only leaf tensors can be flagged (this one was produced by an op)");
  impl().requires_grad = r;
  return *this;
}

double Tensor::item() const {
  if (numel() != 1) throw std::invalid_argument("item(): tensor " + str() + " has " + std::to_string(numel()) + " elements, expected 1");
  Tensor c = device().is_cpu() ? *this : to(Device::cpu());
  return load_as_double(static_cast<const char*>(c.raw_data()), dtype());
}

std::vector<double> Tensor::to_double_vector() const {
  Tensor c = to(Device::cpu()).to(DType::F64).contiguous();
  const double* p = c.data<double>();
  return std::vector<double>(p, p + c.numel());
}

std::vector<float> Tensor::to_float_vector() const {
  Tensor c = to(Device::cpu()).to(DType::F32).contiguous();
  const float* p = c.data<float>();
  return std::vector<float>(p, p + c.numel());
}

std::vector<int64_t> Tensor::to_int_vector() const {
  Tensor c = to(Device::cpu()).to(DType::I64).contiguous();
  const int64_t* p = c.data<int64_t>();
  return std::vector<int64_t>(p, p + c.numel());
}

// The backend's add hook when a and b are packed float32/float64 tensors on one device.
static const DeviceHooks* device_add_hook(const Tensor& a, const Tensor& b) {
  if (a.device().is_cpu() || a.device() != b.device() || !a.is_contiguous() || !b.is_contiguous()) return nullptr;
  if (a.dtype() != DType::F32 && a.dtype() != DType::F64) return nullptr;
  const DeviceHooks* h = device_hooks(a.device().type);
  return h && h->add ? h : nullptr;
}

bool add_same_shape_inplace(Tensor& acc, const Tensor& b) {
  if (!acc.defined() || !b.defined() || acc.shape() != b.shape() || acc.dtype() != b.dtype()) return false;
  if (acc.impl_ptr().use_count() != 1 || acc.impl().storage.use_count() != 1) return false;
  if (const DeviceHooks* h = device_add_hook(acc, b)) {  // on the device
    h->add(acc.raw_data(), acc.raw_data(), b.raw_data(), acc.dtype(), acc.numel(), acc.device().index);
    return true;
  }
  if (!acc.device().is_cpu() || !b.device().is_cpu() || !acc.is_contiguous()) return false;
  if (acc.dtype() != DType::F32 && acc.dtype() != DType::F64) return false;
  Tensor bc = b.contiguous();
  const int64_t n = acc.numel();
  if (acc.dtype() == DType::F32) {
    float* x = acc.data<float>();
    const float* y = bc.data<float>();
#pragma omp parallel for simd if (n > (1 << 19))
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  } else {
    double* x = acc.data<double>();
    const double* y = bc.data<double>();
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  }
  return true;
}

bool add_into_view(const Tensor& view, const Tensor& b) {
  if (!view.defined() || !b.defined() || view.shape() != b.shape() || view.dtype() != b.dtype()) return false;
  if (!view.device().is_cpu() || !b.device().is_cpu()) return false;
  if (view.dtype() == DType::F32) {
    float* d = view.data<float>();
    const float* s = b.data<float>();
    for_each_index(view.shape(), view.strides(), b.strides(), [&](int64_t i, int64_t j) { d[i] += s[j]; });
    return true;
  }
  if (view.dtype() == DType::F64) {
    double* d = view.data<double>();
    const double* s = b.data<double>();
    for_each_index(view.shape(), view.strides(), b.strides(), [&](int64_t i, int64_t j) { d[i] += s[j]; });
    return true;
  }
  return false;
}

Tensor add_same_shape(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    throw std::invalid_argument("add_same_shape: " + a.str() + " + " + b.str());
  if (const DeviceHooks* h = device_add_hook(a, b)) {  // on the device
    Tensor r = Tensor::empty(a.shape(), a.dtype(), a.device());
    h->add(r.raw_data(), a.raw_data(), b.raw_data(), a.dtype(), a.numel(), a.device().index);
    return r;
  }
  if (!a.device().is_cpu() || !b.device().is_cpu()) {
    Device d = a.device();
    return add_same_shape(a.to(Device::cpu()), b.to(Device::cpu())).to(d);
  }
  Tensor ac = a.contiguous(), bc = b.contiguous();
  Tensor r = Tensor::empty(a.shape(), a.dtype());
  int64_t n = r.numel();
  if (a.dtype() == DType::F32) {
    const float *x = ac.data<float>(), *y = bc.data<float>();
    float* z = r.data<float>();
#pragma omp parallel for simd if (n > (1 << 19))
    for (int64_t i = 0; i < n; ++i) z[i] = x[i] + y[i];
  } else if (a.dtype() == DType::F64) {
    const double *x = ac.data<double>(), *y = bc.data<double>();
    double* z = r.data<double>();
    for (int64_t i = 0; i < n; ++i) z[i] = x[i] + y[i];
  } else {
    auto x = ac.to_double_vector(), y = bc.to_double_vector();
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
    r = Tensor::from_vector(x, a.shape()).to(a.dtype());
  }
  return r;
}

}  // namespace lm

// Tensor: a view (shape, strides, offset, dtype) onto reference-counted Storage.
// This layer is pure data: factories, metadata, element access, layout copies and dtype /
// device conversion. Differentiable operations (including views such as reshape, permute,
// slice) live in ops/ as free functions; autograd/ fills in the gradient fields below.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/storage.h"

namespace lm {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

namespace autograd { struct Node; }

// The shared state behind a Tensor handle. Views have their own TensorImpl pointing at the
// same Storage.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::F32;
  // Autograd state (used by autograd/; opaque here).
  bool requires_grad = false;           // a leaf that wants .grad
  std::shared_ptr<TensorImpl> grad;     // accumulated gradient of a leaf
  std::shared_ptr<autograd::Node> grad_fn;  // the node that produced this tensor
};

class Generator;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories --------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::F32);
  static Tensor arange(int64_t n, DType dtype = DType::I64);
  // Copies host values; `shape` must have values.size() elements.
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape);
  static Tensor from_vector(const std::vector<int64_t>& values, const Shape& shape);
  // Standard normal / uniform [lo, hi) from a counter-based generator (tensor/rng.h).
  static Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::F32);
  static Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype = DType::F32);
  // Wraps existing storage (e.g. memory-mapped) without copying.
  static Tensor from_storage(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype, int64_t offset = 0);

  // ---- metadata ---------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return (int64_t)impl().shape.size(); }
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t offset() const { return impl().offset; }
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  size_t nbytes() const { return (size_t)numel() * dtype_size(dtype()); }
  std::string str() const;  // "float32[3, 4] cpu"

  // ---- data access (CPU) ------------------------------------------------------
  // Typed pointer to the first element; throws if T does not match the dtype.
  template <class T> T* data() const {
    if (dtype_of<T>::value != dtype())
      throw std::runtime_error(std::string("Tensor::data<") + dtype_name(dtype_of<T>::value) + ">() on a " + dtype_name(dtype()) + " tensor");
    return static_cast<T*>(raw_data());
  }
  void* raw_data() const;
  double item() const;                    // one element, converted to double
  std::vector<double> to_double_vector() const;  // all elements in logical (row-major) order
  std::vector<float> to_float_vector() const;
  std::vector<int64_t> to_int_vector() const;

  // ---- layout, copies, conversion (no autograd) -------------------------------
  Tensor as_strided(const Shape& shape, const Shape& strides, int64_t offset) const;  // shares storage
  Tensor contiguous() const;  // this tensor if already contiguous, else a packed copy
  Tensor clone() const;       // always a packed copy
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor detach() const;      // same data, no autograd history
  void copy_from(const Tensor& src);  // same shape; converts dtype; any layout
  void fill(double value);

  // ---- autograd fields (logic lives in autograd/) -----------------------------
  bool requires_grad() const { return impl().requires_grad || impl().grad_fn != nullptr; }
  Tensor& set_requires_grad(bool r);
  Tensor grad() const { return Tensor(impl().grad); }
  void set_grad(const Tensor& g) { impl().grad = g.impl_; }
  const std::shared_ptr<autograd::Node>& grad_fn() const { return impl().grad_fn; }
  bool is_leaf() const { return impl().grad_fn == nullptr; }

  TensorImpl& impl() const {
    if (!impl_) throw std::runtime_error("use of an undefined Tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// Normalises a possibly negative dimension index; throws naming `op` when out of range.
int64_t wrap_dim(int64_t d, int64_t ndim, const char* op);

// Out-of-place elementwise sum of two same-shape tensors (any layout); used by the
// autograd engine to accumulate gradients without depending on ops/.
Tensor add_same_shape(const Tensor& a, const Tensor& b);
// acc += b in place when acc is a packed CPU float tensor that nothing else references (this
// handle holds the only reference to its impl and storage); returns false (and leaves acc
// alone) otherwise. The autograd engine sums gradients with it.
bool add_same_shape_inplace(Tensor& acc, const Tensor& b);
// view += b for a view (any strides) into CPU float32 / float64 storage, b of the same shape and
// dtype (any layout); returns false (nothing touched) for other devices or dtypes. The caller
// must own what the view points into (slice's backward: the engine's running gradient sum).
bool add_into_view(const Tensor& view, const Tensor& b);

}  // namespace lm

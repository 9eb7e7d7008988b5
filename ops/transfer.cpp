// upload_to (see transfer.h).
#include "ops/transfer.h"

#include "ops/op_utils.h"
#ifdef LIBRAMIL_WITH_CUDA
#include "cuda/copy.h"
#endif

namespace lm {

Tensor upload_to(const Tensor& host, Device device) {
  if (device.is_cpu()) return host.to(device);
#ifdef LIBRAMIL_WITH_CUDA
  return cuda::upload_pinned(host, device);
#else
  ops_detail::no_cuda("upload_to");
#endif
}

}  // namespace lm

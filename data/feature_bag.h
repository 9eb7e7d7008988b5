// Per-slide feature bags as users already have them (SPEC "Data formats users already have"):
//
//  * HDF5 `<slide>.h5` / `<slide>.hdf5` (CLAM / TRIDENT layout), read with the HDF5 C API:
//      - dataset `features`, shape (N, D) or (1, N, D) (the leading 1 is squeezed);
//        float32 and float16 are read natively; float64 is read and converted to float32
//        (values outside float32's range then count as overflow errors); integer data is refused.
//      - optional dataset `coords`, shape (N, 2) (or (1, N, 2)), any integer type -> int64;
//        non-integer coords or a row count different from N are errors.
//  * PyTorch `<slide>.pt` written by torch.save of ONE plain tensor (zip serialisation,
//    torch >= 1.6). The zip is read with a minimal central-directory reader (stored entries
//    only, zip64 understood; compressed entries are refused) and `<archive>/data.pkl` with a
//    restricted pickle interpreter that only recognises what torch.save emits for one tensor:
//    GLOBAL torch._utils._rebuild_tensor_v2, torch.{Float,Half,Double,BFloat16}Storage and
//    collections.OrderedDict, persistent ids ('storage', type, key, location, numel), ints,
//    strings, tuples, booleans, None, an empty dict/OrderedDict and memo ops. Nothing is ever
//    imported or executed: any other global (os.system, nn.Parameter, tensor subclasses),
//    lists, dicts with items, or unknown opcodes are refused with
//    "file X: .pt contains an object of type Y; only a plain tensor is accepted".
//    Storage offset, sizes and strides are honoured (non-contiguous tensors are packed);
//    float64 and bfloat16 are converted to float32. Shape rules as for HDF5. No coords.
//    The legacy (pre-1.6, non-zip) torch.save format is refused with a clear message.
//
// Every failure is a std::runtime_error whose message names the file and the problem (missing
// file, not HDF5 / not a zip, no `features`, wrong rank, zero instances, NaN/Inf values, ...).
// HDF5's automatic error-stack printing is silenced. Safe to call from several threads.
#pragma once
#include <cstdint>
#include <string>

#include "tensor/tensor.h"

namespace lm::data {

struct FeatureBag {
  std::string name;  // the file name without directory and extension
  Tensor features;   // (N, D) float32 or float16 (see `keep`), contiguous, CPU
  Tensor coords;     // (N, 2) int64; undefined when the file has none (always for .pt)
};

// Reads one bag. `keep` is the dtype of the returned features: F32 (everything is converted
// to float32) or F16 (float16 data stays float16; float32/float64/bfloat16 are rounded to
// float16, and values that overflow float16 are an error). Dispatches on the extension
// (.h5/.hdf5 or .pt/.pth, case-insensitive); any other extension is an error.
FeatureBag read_feature_bag(const std::string& path, DType keep = DType::F32);

// Shape and stored dtype of a bag without reading its values (HDF5 metadata / the .pt
// pickle only). `n`, `d` are after squeezing a leading 1. Throws like read_feature_bag on
// structural problems (missing file, no features, wrong rank, refused pickle content).
struct BagInfo {
  int64_t n = 0, d = 0;
  DType stored = DType::F32;  // dtype in the file (F32, F16, F64 or BF16)
};
BagInfo probe_feature_bag(const std::string& path);

// The slide name read_feature_bag assigns to a path: file name minus directory and extension.
std::string slide_name_from_path(const std::string& path);

}  // namespace lm::data

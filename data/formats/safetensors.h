// The safetensors file format (https://github.com/huggingface/safetensors):
//   8 bytes: N, the header length, unsigned little-endian
//   N bytes: a JSON object {name: {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
//            "__metadata__": {string: string}} (padded with spaces to a multiple of 8)
//   the data section: each tensor's bytes, row-major, little-endian, at [b, e) from its start.
// Reading memory-maps the file (copy-on-write: writing into a loaded tensor never touches the
// file) and validates the header strictly; every error is a std::runtime_error naming the
// file and the problem. Writing is atomic (temporary file, fsync, rename).
// Checksum: write_safetensors_checked records in the metadata, under kChecksumKey, the
// FNV-1a 64 (data/checksum.h) of the tensors' data bytes, tensor after tensor in name order
// (bytewise), as "fnv1a64:<16 lowercase hex digits>"; read_safetensors verifies it whenever
// the key is present, so a file whose tensor bytes changed after writing is an error naming
// it. Files without the key (other writers, older libramil checkpoints) are read unchecked.
// Supported dtypes: F32, F64, F16, BF16, I64 (other safetensors dtypes are refused by name).
#pragma once
#include <concepts>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace lm::data {

struct SafetensorsFile {
  std::string path;
  std::map<std::string, Tensor> tensors;  // by name; CPU tensors backed by the mapping
  std::vector<std::string> order;         // names in the header's order
  std::map<std::string, std::string> metadata;

  bool contains(const std::string& name) const { return tensors.count(name) != 0; }
  // The named tensor; throws naming the file and the tensor when absent.
  const Tensor& at(const std::string& name) const;
};

// The metadata key of the tensor-data checksum (see above).
inline constexpr const char* kChecksumKey = "libramil.checksum";

SafetensorsFile read_safetensors(const std::string& path);

// Writes the tensors (any device, layout or supported dtype; float16/bfloat16 as they are)
// and the metadata. The data section is laid out as the Python library does (larger
// element sizes first, then by name), so every tensor is aligned to its element size.
// Throws on duplicate or empty names, or a reserved name ("__metadata__"), and on any I/O
// error (naming the path); a failed write leaves neither the file nor a temporary behind.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// As write_safetensors, with the tensor-data checksum added to the metadata (kChecksumKey;
// one given in `metadata` is replaced).
void write_safetensors_checked(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                               const std::map<std::string, std::string>& metadata = {});
// A name -> Tensor map (e.g. a state_dict). A template so that a braced list
// write_safetensors(p, {{"a", t}}) unambiguously means the vector form above.
template <class Map>
  requires std::same_as<Map, std::map<std::string, Tensor>>
void write_safetensors(const std::string& path, const Map& tensors,
                       const std::map<std::string, std::string>& metadata = {}) {
  write_safetensors(path, std::vector<std::pair<std::string, Tensor>>(tensors.begin(), tensors.end()), metadata);
}

// "F32" <-> DType; safetensors_dtype throws for names libramil cannot hold.
const char* safetensors_dtype_name(DType dtype);

}  // namespace lm::data

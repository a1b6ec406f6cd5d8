// Reads an ExecuTorch BundledProgram (.bpte) into plain structs. Kept apart from the ExecuTorch
// headers: they forward-declare flatbuffers::Vector with the two template parameters of flatbuffers
// >= 23, which older flatbuffers headers (Debian's 2.0.8) cannot share a translation unit with.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

namespace mobiledr {

struct BundledValue {
  enum class Kind { Tensor, Int, Bool, Double } kind = Kind::Tensor;
  int8_t scalar_type = 0;  // executorch ScalarType (6: float32) for tensors
  std::vector<int32_t> sizes;
  const uint8_t* data = nullptr;  // tensor bytes inside the .bpte buffer
  size_t nbytes = 0;
  int64_t int_value = 0;
  bool bool_value = false;
  double double_value = 0.0;
};

struct BundledCase {
  std::string method;
  std::vector<BundledValue> inputs, expected_outputs;
};

struct BundleFile {
  std::unique_ptr<uint8_t, decltype(&std::free)> buffer{nullptr, &std::free};  // 64-byte aligned file contents
  size_t size = 0;
  const uint8_t* program = nullptr;  // the embedded .pte, inside buffer
  size_t program_size = 0;
  std::vector<BundledCase> cases;
};

// Throws std::runtime_error naming the file when it cannot be read or is not a BundledProgram.
BundleFile read_bundle(const std::string& path);

}  // namespace mobiledr

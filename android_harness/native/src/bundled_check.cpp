#include "bundled_check.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include <executorch/extension/data_loader/buffer_data_loader.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include "bundle_reader.h"

namespace mobiledr {
namespace {

using executorch::aten::ScalarType;
using executorch::extension::TensorPtr;
using executorch::runtime::EValue;

EValue to_input(const BundledValue& value, std::vector<TensorPtr>& keep) {
  switch (value.kind) {
    case BundledValue::Kind::Int:
      return EValue(value.int_value);
    case BundledValue::Kind::Bool:
      return EValue(value.bool_value);
    case BundledValue::Kind::Double:
      return EValue(value.double_value);
    case BundledValue::Kind::Tensor:
      break;
  }
  std::vector<executorch::aten::SizesType> sizes(value.sizes.begin(), value.sizes.end());
  keep.push_back(executorch::extension::make_tensor_ptr(sizes, const_cast<uint8_t*>(value.data), {}, {}, static_cast<ScalarType>(value.scalar_type)));
  return EValue(*keep.back());
}

// Largest |actual - expected| of one output; clears `within` when a value is outside the tolerance.
double compare_output(const std::string& path, const EValue& actual, const BundledValue& expected, double rtol, double atol, bool& within) {
  if (expected.kind != BundledValue::Kind::Tensor || !actual.isTensor() || static_cast<ScalarType>(expected.scalar_type) != ScalarType::Float ||
      actual.toTensor().scalar_type() != ScalarType::Float) {
    throw std::runtime_error(path + ": only float32 tensor outputs are checked");
  }
  const auto& tensor = actual.toTensor();
  const size_t count = expected.nbytes / sizeof(float);
  if (static_cast<size_t>(tensor.numel()) != count) {
    throw std::runtime_error(path + ": an output has " + std::to_string(tensor.numel()) + " values, the bundle expects " + std::to_string(count));
  }
  std::vector<float> want(count);
  std::memcpy(want.data(), expected.data, expected.nbytes);
  const float* got = tensor.const_data_ptr<float>();
  double worst = 0.0;
  for (size_t i = 0; i < count; ++i) {
    const double error = std::fabs(static_cast<double>(got[i]) - want[i]);
    worst = std::max(worst, error);
    if (!(error <= atol + rtol * std::fabs(static_cast<double>(want[i])))) within = false;
  }
  return worst;
}

}  // namespace

BundledCheck run_bundled_check(const std::string& path, double rtol, double atol) {
  const BundleFile bundle = read_bundle(path);
  executorch::extension::Module module(std::make_unique<executorch::extension::BufferDataLoader>(bundle.program, bundle.program_size));
  BundledCheck check{true, 0, 0.0, ""};
  for (const BundledCase& test : bundle.cases) {
    std::vector<TensorPtr> keep;
    std::vector<EValue> inputs;
    for (const BundledValue& value : test.inputs) inputs.push_back(to_input(value, keep));
    auto outputs = module.execute(test.method, inputs);
    if (!outputs.ok()) {
      throw std::runtime_error(path + ": " + test.method + " failed on bundled case " + std::to_string(check.cases) + " (ExecuTorch error " +
                               std::to_string(static_cast<int>(outputs.error())) + ")");
    }
    if (outputs->size() != test.expected_outputs.size()) {
      throw std::runtime_error(path + ": " + std::to_string(outputs->size()) + " outputs, the bundle expects " + std::to_string(test.expected_outputs.size()));
    }
    bool within = true;
    for (size_t i = 0; i < outputs->size(); ++i) {
      check.max_abs_error = std::max(check.max_abs_error, compare_output(path, (*outputs)[i], test.expected_outputs[i], rtol, atol, within));
    }
    if (!within && check.passed) check.detail = "case " + std::to_string(check.cases) + " of " + test.method + " is outside the tolerance";
    check.passed = check.passed && within;
    ++check.cases;
  }
  if (check.cases == 0) {
    check.passed = false;
    check.detail = "no bundled test cases";
  }
  return check;
}

}  // namespace mobiledr

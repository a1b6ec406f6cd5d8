#include "bundled_check.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
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

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

// Largest |actual - expected| of one output; returns why a value is outside the tolerance in `outside`
// (empty when every value is within it).
double compare_output(const std::string& path, const EValue& actual, const BundledValue& expected, size_t index, const Tolerance& tolerance,
                      std::string& outside) {
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
  const OutputLimit* limit = tolerance.outputs.empty() ? nullptr : &tolerance.outputs[index];
  double worst = 0.0, worst_rel = 0.0;
  bool abs_ok = true, rel_ok = true, pair_ok = true;
  for (size_t i = 0; i < count; ++i) {
    const double reference = want[i];
    const double error = std::fabs(static_cast<double>(got[i]) - reference);
    const double relative = error / std::max(std::fabs(reference), 1e-6);  // as mobiledr.parity.compare
    worst = std::max(worst, error);
    worst_rel = std::max(worst_rel, relative);
    if (limit == nullptr) {
      if (!(error <= tolerance.atol + tolerance.rtol * std::fabs(reference))) pair_ok = false;
    } else {
      if (limit->max_abs >= 0 && !(error <= limit->max_abs)) abs_ok = false;
      if (limit->max_rel >= 0 && !(relative <= limit->max_rel)) rel_ok = false;
    }
  }
  outside.clear();
  if (limit == nullptr) {
    if (!pair_ok) outside = "output " + std::to_string(index) + " max abs error " + number(worst);
  } else if (!abs_ok) {
    outside = limit->name + " max abs error " + number(worst) + " > " + number(limit->max_abs);
  } else if (!rel_ok) {
    outside = limit->name + " max rel error " + number(worst_rel) + " > " + number(limit->max_rel);
  }
  return worst;
}

}  // namespace

std::string Tolerance::describe() const {
  if (outputs.empty()) return "rtol " + number(rtol) + ", atol " + number(atol);
  std::string text;
  for (const OutputLimit& limit : outputs) {
    std::string rules;
    if (limit.max_abs >= 0) rules += "max_abs " + number(limit.max_abs);
    if (limit.max_rel >= 0) rules += (rules.empty() ? "" : ", ") + std::string("max_rel ") + number(limit.max_rel);
    text += (text.empty() ? "" : "; ") + limit.name + " " + (rules.empty() ? "unchecked" : rules);
  }
  return text;
}

OutputLimit parse_output_limit(const std::string& text) {
  const size_t equals = text.find('='), comma = text.find(',', equals == std::string::npos ? 0 : equals);
  if (equals == std::string::npos || equals == 0 || comma == std::string::npos) {
    throw std::invalid_argument("--tolerance takes NAME=MAX_ABS,MAX_REL (- for no limit), got " + text);
  }
  OutputLimit limit;
  limit.name = text.substr(0, equals);
  auto value = [&](const std::string& part) {
    if (part == "-") return -1.0;
    size_t used = 0;
    double parsed = -1.0;
    try {
      parsed = std::stod(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || !(parsed >= 0)) throw std::invalid_argument("--tolerance limits are numbers >= 0 or -, got " + text);
    return parsed;
  };
  limit.max_abs = value(text.substr(equals + 1, comma - equals - 1));
  limit.max_rel = value(text.substr(comma + 1));
  return limit;
}

BundledCheck run_bundled_check(const std::string& path, const Tolerance& tolerance) {
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
    if (!tolerance.outputs.empty() && tolerance.outputs.size() != outputs->size()) {
      throw std::runtime_error(path + ": --tolerance names " + std::to_string(tolerance.outputs.size()) + " outputs, the program has " +
                               std::to_string(outputs->size()));
    }
    std::string outside;
    for (size_t i = 0; i < outputs->size(); ++i) {
      std::string why;
      check.max_abs_error = std::max(check.max_abs_error, compare_output(path, (*outputs)[i], test.expected_outputs[i], i, tolerance, why));
      if (outside.empty()) outside = why;
    }
    if (!outside.empty() && check.passed) {
      check.detail = "case " + std::to_string(check.cases) + " of " + test.method + " is outside the tolerance: " + outside;
    }
    check.passed = check.passed && outside.empty();
    ++check.cases;
  }
  if (check.cases == 0) {
    check.passed = false;
    check.detail = "no bundled test cases";
  }
  return check;
}

}  // namespace mobiledr

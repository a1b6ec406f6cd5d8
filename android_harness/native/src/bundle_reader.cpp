#include "bundle_reader.h"

#include <algorithm>
#include <fstream>
#include <stdexcept>

#include "bundled_program_schema_generated.h"

namespace mobiledr {
namespace {

namespace bp = bundled_program_flatbuffer;

BundledValue read_value(const std::string& path, const bp::Value* value) {
  BundledValue out;
  switch (value->val_type()) {
    case bp::ValueUnion::Tensor: {
      const bp::Tensor* t = value->val_as_Tensor();
      out.scalar_type = static_cast<int8_t>(t->scalar_type());
      out.sizes.assign(t->sizes()->begin(), t->sizes()->end());
      out.data = t->data()->data();
      out.nbytes = t->data()->size();
      break;
    }
    case bp::ValueUnion::Int:
      out.kind = BundledValue::Kind::Int;
      out.int_value = value->val_as_Int()->int_val();
      break;
    case bp::ValueUnion::Bool:
      out.kind = BundledValue::Kind::Bool;
      out.bool_value = value->val_as_Bool()->bool_val();
      break;
    case bp::ValueUnion::Double:
      out.kind = BundledValue::Kind::Double;
      out.double_value = value->val_as_Double()->double_val();
      break;
    default:
      throw std::runtime_error(path + ": a bundled value of unknown type");
  }
  return out;
}

}  // namespace

BundleFile read_bundle(const std::string& path) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  if (!file) throw std::runtime_error(path + ": cannot open");
  BundleFile bundle;
  bundle.size = static_cast<size_t>(file.tellg());
  bundle.buffer.reset(static_cast<uint8_t*>(std::aligned_alloc(64, std::max<size_t>((bundle.size + 63) / 64 * 64, 64))));
  file.seekg(0);
  if (!file.read(reinterpret_cast<char*>(bundle.buffer.get()), static_cast<std::streamsize>(bundle.size))) {
    throw std::runtime_error(path + ": read failed");
  }
  flatbuffers::Verifier verifier(bundle.buffer.get(), bundle.size);
  if (bundle.size < 8 || !bp::BundledProgramBufferHasIdentifier(bundle.buffer.get()) || !bp::VerifyBundledProgramBuffer(verifier)) {
    throw std::runtime_error(path + ": not an ExecuTorch BundledProgram (.bpte)");
  }
  const bp::BundledProgram* program = bp::GetBundledProgram(bundle.buffer.get());
  bundle.program = program->program()->data();
  bundle.program_size = program->program()->size();
  for (const bp::BundledMethodTestSuite* suite : *program->method_test_suites()) {
    for (const bp::BundledMethodTestCase* test : *suite->test_cases()) {
      BundledCase one{suite->method_name()->str(), {}, {}};
      for (const bp::Value* v : *test->inputs()) one.inputs.push_back(read_value(path, v));
      for (const bp::Value* v : *test->expected_outputs()) one.expected_outputs.push_back(read_value(path, v));
      bundle.cases.push_back(std::move(one));
    }
  }
  return bundle;
}

}  // namespace mobiledr

// mobiledr_runner: times an ExecuTorch program through the Module API and prints one JSON line.
//
//   mobiledr_runner --model FILE.pte [--inputs IMAGES.npy] [--outputs DIR] [--bundled FILE.bpte]
//                   [--threads N] [--warmup N] [--iters N] [--min-time S] [--rtol X] [--atol X]
//                   [--tolerance NAME=MAX_ABS,MAX_REL ...]
//
// It prints raw readings only (load, first, every timed iteration, memory): mobiledr.bench.native
// computes the percentiles, CV and flags, once, for every runtime.
// --inputs: float32 (N, C, H, W) images; each runs once and DIR/output_<k>.npy gets output k for all of
// them (for parity). Timing uses the first image (a constant mid-grey image without --inputs).
// --bundled: the BundledProgram self-check first. Exit 0: ok; 1: error (one line on stderr);
// 2: bad arguments; 3: the self-check failed (the JSON line is still printed).
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include "bundled_check.h"
#include "json.h"
#include "npy.h"
#include "threadpool_api.h"

namespace {

using Clock = std::chrono::steady_clock;
using executorch::extension::Module;
using executorch::runtime::EValue;

struct Options {
  std::string model, inputs, outputs, bundled;
  int threads = 0, warmup = 10, iters = 50;
  double min_time = 0.0;
  mobiledr::Tolerance tolerance;  // --rtol/--atol for every output, or --tolerance per output (in output order)
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Options parse(int argc, char** argv) {
  std::map<std::string, std::string> values;
  Options o;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag.rfind("--", 0) != 0 || i + 1 >= argc) throw UsageError("expected --flag VALUE pairs, got " + flag);
    if (flag == "--tolerance") {  // repeated: one per output
      try {
        o.tolerance.outputs.push_back(mobiledr::parse_output_limit(argv[i + 1]));
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
      continue;
    }
    values[flag.substr(2)] = argv[i + 1];
  }
  auto take = [&](const char* key, auto& field) {
    auto it = values.find(key);
    if (it == values.end()) return;
    using T = std::decay_t<decltype(field)>;
    try {
      if constexpr (std::is_same_v<T, std::string>) field = it->second;
      else if constexpr (std::is_same_v<T, int>) field = std::stoi(it->second);
      else field = std::stod(it->second);
    } catch (const std::exception&) {
      throw UsageError(std::string("--") + key + " takes a number, got " + it->second);
    }
    values.erase(it);
  };
  take("model", o.model), take("inputs", o.inputs), take("outputs", o.outputs), take("bundled", o.bundled);
  take("threads", o.threads), take("warmup", o.warmup), take("iters", o.iters), take("min-time", o.min_time);
  take("rtol", o.tolerance.rtol), take("atol", o.tolerance.atol);
  if (!values.empty()) throw UsageError("unknown option --" + values.begin()->first);
  if (o.model.empty()) throw UsageError("--model FILE.pte is required");
  if (o.iters < 1 || o.warmup < 0 || o.threads < 0) throw UsageError("--iters must be >= 1, --warmup and --threads >= 0");
  if (!o.tolerance.outputs.empty() && o.bundled.empty()) throw UsageError("--tolerance applies to the --bundled self-check");
  return o;
}

double ms_since(Clock::time_point start) { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); }

double rss_mb() {  // resident memory now (Linux and Android /proc)
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  }
  return 0.0;
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
#ifdef __APPLE__
  return usage.ru_maxrss / 1048576.0;
#else
  return usage.ru_maxrss / 1024.0;
#endif
}

std::string error_text(executorch::runtime::Error error) { return "ExecuTorch error " + std::to_string(static_cast<int>(error)); }

// One image through forward; the inputs are passed on every call (memory planning reuses the slot).
std::vector<EValue> forward(Module& module, std::vector<executorch::aten::SizesType> sizes, float* image) {
  auto tensor = executorch::extension::make_tensor_ptr(std::move(sizes), image);
  auto result = module.forward(EValue(*tensor));
  if (!result.ok()) throw std::runtime_error("forward failed: " + error_text(result.error()));
  return *result;
}

void write_outputs(Module& module, const std::vector<executorch::aten::SizesType>& sizes, mobiledr::NpyArray& images, const std::string& dir) {
  const int64_t n = images.shape[0];
  const size_t per_image = images.data.size() / static_cast<size_t>(n);
  std::vector<std::vector<float>> stacked;
  std::vector<std::vector<int64_t>> shapes;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<EValue> outputs = forward(module, sizes, images.data.data() + i * per_image);
    stacked.resize(outputs.size());
    shapes.resize(outputs.size());
    for (size_t k = 0; k < outputs.size(); ++k) {
      if (!outputs[k].isTensor() || outputs[k].toTensor().scalar_type() != executorch::aten::ScalarType::Float) {
        throw std::runtime_error("output " + std::to_string(k) + " is not a float32 tensor");
      }
      const auto& t = outputs[k].toTensor();
      stacked[k].insert(stacked[k].end(), t.const_data_ptr<float>(), t.const_data_ptr<float>() + t.numel());
      if (i == 0) {
        shapes[k] = {n};
        for (size_t d = 1; d < t.sizes().size(); ++d) shapes[k].push_back(t.sizes()[d]);
      }
    }
  }
  for (size_t k = 0; k < stacked.size(); ++k) mobiledr::write_npy(dir + "/output_" + std::to_string(k) + ".npy", shapes[k], stacked[k]);
}

int run(const Options& o) {
  mobiledr::JsonObject result;
  int exit_code = 0;
  if (o.threads > 0) executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(static_cast<uint32_t>(o.threads));
  if (!o.bundled.empty()) {
    const mobiledr::BundledCheck check = mobiledr::run_bundled_check(o.bundled, o.tolerance);
    mobiledr::JsonObject entry;
    entry.add("status", check.passed ? "passed" : "failed").add("cases", check.cases).add("max_abs_error", check.max_abs_error);
    const std::string tolerance = o.tolerance.describe();
    entry.add("detail", check.detail.empty() ? tolerance : check.detail + " (" + tolerance + ")");
    result.add("checks", mobiledr::JsonObject().add("bundled_program", entry));
    if (!check.passed) exit_code = 3;
  }
  if (!std::ifstream(o.model)) throw std::runtime_error(o.model + ": cannot open");
  const double baseline = rss_mb();
  auto start = Clock::now();
  Module module(o.model, Module::LoadMode::MmapUseMlockIgnoreErrors);
  if (auto error = module.load_forward(); error != executorch::runtime::Error::Ok) {
    throw std::runtime_error(o.model + ": cannot load the program's forward method (" + error_text(error) + ")");
  }
  const double load_ms = ms_since(start);
  auto meta = module.method_meta("forward");
  if (!meta.ok() || meta->num_inputs() != 1) throw std::runtime_error(o.model + ": forward must take one image tensor");
  auto info = meta->input_tensor_meta(0);
  if (!info.ok()) throw std::runtime_error(o.model + ": forward's input is not a tensor");
  std::vector<executorch::aten::SizesType> sizes(info->sizes().begin(), info->sizes().end());
  size_t per_image = 1;
  for (auto d : sizes) per_image *= static_cast<size_t>(d);

  mobiledr::NpyArray images{{1}, std::vector<float>(per_image, 127.5f)};
  if (!o.inputs.empty()) {
    images = mobiledr::read_npy(o.inputs);
    if (images.shape.empty() || images.shape[0] < 1 || images.data.size() != per_image * static_cast<size_t>(images.shape[0])) {
      throw std::runtime_error(o.inputs + ": expected (N, " + std::to_string(per_image) + " values per image) for the model's input");
    }
  }
  std::vector<float> image(images.data.begin(), images.data.begin() + static_cast<std::ptrdiff_t>(per_image));
  start = Clock::now();
  forward(module, sizes, image.data());
  const double first_ms = ms_since(start);
  if (!o.outputs.empty()) write_outputs(module, sizes, images, o.outputs);
  for (int i = 0; i < o.warmup; ++i) forward(module, sizes, image.data());
  std::vector<double> latencies;
  const auto began = Clock::now();
  while (static_cast<int>(latencies.size()) < o.iters || ms_since(began) < o.min_time * 1e3) {
    start = Clock::now();
    forward(module, sizes, image.data());
    latencies.push_back(ms_since(start));
  }
  result.add("status", "ok").add("runtime", "native").add("load_ms", load_ms).add("first_ms", first_ms).add("latencies_ms", latencies);
  result.add("baseline_rss_mb", baseline).add("rss_mb", rss_mb()).add("peak_rss_mb", peak_rss_mb());
  result.add("threads", static_cast<int64_t>(executorch::extension::threadpool::get_threadpool()->get_thread_count()));
  std::cout << result.str() << std::endl;
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const UsageError& e) {
    std::cerr << "mobiledr_runner: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "mobiledr_runner: " << e.what() << "\n";
    return 1;
  }
}

// The ExecuTorch BundledProgram self-check: run the program embedded in a .bpte on its bundled test
// cases and compare with the bundled expected outputs (|actual - expected| <= atol + rtol * |expected|).
#pragma once

#include <string>

namespace mobiledr {

struct BundledCheck {
  bool passed = false;
  int cases = 0;
  double max_abs_error = 0.0;
  std::string detail;
};

// Throws std::runtime_error (naming the file) when the .bpte cannot be read or run.
BundledCheck run_bundled_check(const std::string& path, double rtol, double atol);

}  // namespace mobiledr

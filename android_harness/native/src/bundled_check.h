// The ExecuTorch BundledProgram self-check: run the program embedded in a .bpte on its bundled test
// cases and compare with the bundled expected outputs, either with one (rtol, atol) pair for every
// output (|actual - expected| <= atol + rtol * |expected|) or with a limit per output, the parity
// policy's rules: |actual - expected| <= max_abs and |actual - expected| / max(|expected|, 1e-6) <= max_rel.
#pragma once

#include <string>
#include <vector>

namespace mobiledr {

struct OutputLimit {
  std::string name;      // the manifest's name of output k (for the messages)
  double max_abs = -1.0;  // < 0: no such limit
  double max_rel = -1.0;
};

struct Tolerance {
  double rtol = 1e-4, atol = 1e-4;  // used when `outputs` is empty
  std::vector<OutputLimit> outputs;  // one per program output, in order
  std::string describe() const;
};

struct BundledCheck {
  bool passed = false;
  int cases = 0;
  double max_abs_error = 0.0;
  std::string detail;
};

// Parses NAME=MAX_ABS,MAX_REL ("-" for no limit); throws std::invalid_argument with the reason.
OutputLimit parse_output_limit(const std::string& text);

// Throws std::runtime_error (naming the file) when the .bpte cannot be read or run, or when the
// per-output limits do not name every output.
BundledCheck run_bundled_check(const std::string& path, const Tolerance& tolerance);

}  // namespace mobiledr

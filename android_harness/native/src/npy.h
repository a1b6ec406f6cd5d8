// Reading and writing float32 NumPy .npy files (format versions 1-3, little-endian, C order).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mobiledr {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

// Reads a '<f4' C-order array; throws std::runtime_error naming the file and the problem.
NpyArray read_npy(const std::string& path);

// Writes `data` with `shape` as a version 1.0 '<f4' array, through a temporary file and a rename.
void write_npy(const std::string& path, const std::vector<int64_t>& shape, const std::vector<float>& data);

}  // namespace mobiledr

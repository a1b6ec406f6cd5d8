#include "npy.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

namespace mobiledr {
namespace {

constexpr char kMagic[] = "\x93NUMPY";

std::runtime_error npy_error(const std::string& path, const std::string& what) {
  return std::runtime_error(path + ": not a float32 .npy file: " + what);
}

std::vector<int64_t> parse_shape(const std::string& path, const std::string& header) {
  std::smatch match;
  if (!std::regex_search(header, match, std::regex("'shape'\\s*:\\s*\\(([^)]*)\\)"))) {
    throw npy_error(path, "no shape in the header");
  }
  std::vector<int64_t> shape;
  std::stringstream items(match[1].str());
  std::string item;
  while (std::getline(items, item, ',')) {
    if (item.find_first_not_of(" \t") != std::string::npos) shape.push_back(std::stoll(item));
  }
  return shape;
}

}  // namespace

NpyArray read_npy(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw std::runtime_error(path + ": cannot open");
  char magic[6];
  uint8_t version[2];
  if (!file.read(magic, 6) || std::memcmp(magic, kMagic, 6) != 0) throw npy_error(path, "bad magic");
  file.read(reinterpret_cast<char*>(version), 2);
  uint32_t header_len = 0;
  if (version[0] == 1) {
    uint8_t len[2];
    file.read(reinterpret_cast<char*>(len), 2);
    header_len = len[0] | (len[1] << 8);
  } else if (version[0] == 2 || version[0] == 3) {
    uint8_t len[4];
    file.read(reinterpret_cast<char*>(len), 4);
    header_len = len[0] | (len[1] << 8) | (len[2] << 16) | (static_cast<uint32_t>(len[3]) << 24);
  } else {
    throw npy_error(path, "unsupported format version " + std::to_string(version[0]));
  }
  std::string header(header_len, '\0');
  if (!file.read(header.data(), header_len)) throw npy_error(path, "truncated header");
  if (header.find("'descr': '<f4'") == std::string::npos) throw npy_error(path, "dtype is not '<f4' (float32)");
  if (header.find("'fortran_order': False") == std::string::npos) throw npy_error(path, "Fortran order");
  NpyArray array{parse_shape(path, header), {}};
  size_t count = 1;
  for (int64_t d : array.shape) count *= static_cast<size_t>(d);
  array.data.resize(count);
  if (!file.read(reinterpret_cast<char*>(array.data.data()), static_cast<std::streamsize>(count * sizeof(float)))) {
    throw npy_error(path, "truncated data (" + std::to_string(count) + " floats expected)");
  }
  return array;
}

void write_npy(const std::string& path, const std::vector<int64_t>& shape, const std::vector<float>& data) {
  std::string dims;
  for (int64_t d : shape) dims += std::to_string(d) + ",";
  if (shape.size() > 1) dims.pop_back();  // (3,) for one dimension, (3,2) otherwise
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  const size_t preamble = 10;  // magic, version, uint16 length
  header.append(64 - (preamble + header.size() + 1) % 64, ' ');
  header.push_back('\n');
  const std::string tmp = path + ".tmp";
  {
    std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
    if (!file) throw std::runtime_error(tmp + ": cannot write");
    const uint16_t len = static_cast<uint16_t>(header.size());
    const char version[2] = {1, 0};
    const char len_bytes[2] = {static_cast<char>(len & 0xff), static_cast<char>(len >> 8)};
    file.write(kMagic, 6).write(version, 2).write(len_bytes, 2).write(header.data(), static_cast<std::streamsize>(header.size()));
    file.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size() * sizeof(float)));
    if (!file.flush()) throw std::runtime_error(tmp + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot rename " + tmp);
}

}  // namespace mobiledr

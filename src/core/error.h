// The error type every layer throws for bad input, and the shape type with its printer. Kept
// apart from the tensor so that the file readers (src/io) and the fuzz targets need no tensor.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ait {

using Shape = std::vector<int64_t>;
// "[2, 3]". Inline so that readers built without tensor.cpp (the fuzz targets) can use it.
inline std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
int64_t numel(const Shape& s);

// Every error a caller's input can reach is one of these, with a message naming the op,
// tensor, file or option.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace ait

// libFuzzer target: IDX parsing, plain or gzip-compressed (as read_idx does it).
// Properties: never crash, only ait::Error escapes, and an accepted array's dims account for
// exactly its bytes.
#include <cstdint>
#include <cstdlib>

#include "io/idx.h"
#include "io/inflate.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    std::vector<uint8_t> plain;
    if (ait::is_gzip(data, size)) {
      plain = ait::gunzip(data, size, "fuzz-idx.gz", size_t(1) << 24);
      data = plain.data();
      size = plain.size();
    }
    ait::IdxArray a = ait::parse_idx(data, size, "fuzz-idx");
    size_t n = 1;
    for (int64_t d : a.dims) n *= size_t(d);
    if (n != a.data.size()) abort();
  } catch (const ait::Error&) {
  }
  return 0;
}

// libFuzzer target: NumPy .npy parsing (parse_npy) and the dataset built from a pair of them
// (dataset_from_npy, fed through in-memory files). The first byte picks a mode:
//   0: the rest is one .npy file for parse_npy;
//   1: the rest is split into an images file and a labels file for dataset_from_npy, as is;
//   2: both files are built with write_npy from fuzzed dtypes and shapes, their data cut or
//      cycled from the rest to the size the shape needs, so the conversion code (layouts,
//      float range checks, label dtypes and ranges, class lists) sees well-formed headers.
// Properties: never crash, only ait::Error escapes; an accepted array holds exactly
// itemsize * prod(shape) bytes; an accepted dataset validates (validate_dataset).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "apps/convert.h"
#include "io/npy.h"
#include "memfile.h"

namespace {

using ait_fuzz::MemFile;

size_t itemsize_of(const std::string& descr) { return size_t(std::atoi(descr.c_str() + 2)); }

struct Reader {
  const uint8_t* d;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *d++;
  }
};

std::vector<uint8_t> make_npy(Reader& r, const char* const* descrs, size_t ndescr, int max_rank, bool labels) {
  std::string descr = descrs[r.byte() % ndescr];
  int rank = r.byte() % (max_rank + 1);
  std::vector<int64_t> shape;
  for (int i = 0; i < rank; ++i) shape.push_back(int64_t(r.byte() % (labels ? 9 : 6)));
  size_t need = itemsize_of(descr);
  for (int64_t s : shape) need *= size_t(s);
  std::vector<uint8_t> data(need);
  for (size_t i = 0; i < need; ++i) data[i] = r.n ? r.d[i % r.n] : uint8_t(i);
  return ait::write_npy(descr, shape, data.data(), data.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static MemFile images("fuzz-images.npy"), labels("fuzz-labels.npy");
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  ++data, --size;
  if (mode == 0) {
    try {
      ait::NpyArray a = ait::parse_npy(std::vector<uint8_t>(data, data + size), "fuzz.npy");
      size_t need = itemsize_of(a.descr);
      for (int64_t s : a.shape) {
        if (s < 0) abort();
        need *= size_t(s);
      }
      if (a.fortran_order || need != a.data.size()) abort();
    } catch (const ait::Error&) {
    }
    return 0;
  }
  std::string layout = "nhwc";
  std::vector<std::string> classes;
  if (mode == 1) {
    if (size < 3) return 0;
    const size_t where = size_t(data[0]) | size_t(data[1]) << 8;
    if (data[2] & 1) layout = "nchw";
    if (data[2] & 2) layout = "nhwcx";
    for (int k = 0; k < (data[2] >> 2) % 8; ++k) classes.push_back("c" + std::to_string(k));
    data += 3, size -= 3;
    const size_t split = where % (size + 1);
    images.set(data, split);
    labels.set(data + split, size - split);
  } else {
    static const char* const kImageDescr[] = {"|u1", "<f4", "<u1", "|f4", ">f4", "<f8", "|i1", "<u2"};
    static const char* const kLabelDescr[] = {"|u1", "|i1", "<i2", "<u2", "<i4", "<u4",
                                              "<i8", "<u8", "<f4", "<i3", "|b1"};
    Reader r{data, size};
    uint8_t flags = r.byte();
    if (flags & 1) layout = "nchw";
    for (int k = 0; k < (flags >> 1) % 8; ++k) classes.push_back("c" + std::to_string(k));
    images.set(make_npy(r, kImageDescr, sizeof kImageDescr / sizeof *kImageDescr, 5, false));
    labels.set(make_npy(r, kLabelDescr, sizeof kLabelDescr / sizeof *kLabelDescr, 2, true));
  }
  try {
    ait::Dataset ds = ait::dataset_from_npy(images.path, labels.path, layout, classes);
    if (ds.n <= 0 || ds.labels.size() != size_t(ds.n)) abort();
    if (ds.images.size() != size_t(ds.n * ds.channels * ds.height * ds.width)) abort();
    try {
      ait::validate_dataset(ds, "fuzz npy dataset");
    } catch (const ait::Error&) {
      abort();  // the reader returned something the dataset format rejects
    }
  } catch (const ait::Error&) {
  }
  return 0;
}

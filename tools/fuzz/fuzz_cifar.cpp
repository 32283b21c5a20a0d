// libFuzzer target: CIFAR-10 / CIFAR-100 binary batches (dataset_from_cifar), fed through
// in-memory files. Layout of the input: [flags][names length lo][names length hi][names...]
// [data...]. flags: bit 0 CIFAR-100, bit 1 fine labels, bit 2 use the names file, bit 3 pad
// or cut the data to whole records (so the label and class-name handling is reached), bit 4
// split the data over two input files.
// Properties: never crash, only ait::Error escapes; an accepted dataset holds one row per
// record, labels within the classes, and validates (validate_dataset).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "apps/convert.h"
#include "memfile.h"

namespace {

using ait_fuzz::MemFile;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static MemFile names("fuzz-names.txt"), batch1("fuzz-batch1.bin"), batch2("fuzz-batch2.bin");
  if (size < 3) return 0;
  const uint8_t flags = data[0];
  const bool c100 = flags & 1, fine = flags & 2, use_names = flags & 4, whole = flags & 8, two = flags & 16;
  size_t nlen = size_t(data[1]) | size_t(data[2]) << 8;
  data += 3, size -= 3;
  if (nlen > size) nlen = size;
  if (use_names) names.set(data, nlen);
  data += nlen, size -= nlen;
  const size_t rec = c100 ? 3074 : 3073;
  std::vector<uint8_t> bytes(data, data + size);
  if (whole) {
    // Whole records: the fuzz data supplies the leading bytes of each record (labels first),
    // pixels are filled in by cycling it.
    size_t records = bytes.size() / 16 + 1;
    if (records > 4) records = 4;
    std::vector<uint8_t> r(records * rec);
    for (size_t i = 0; i < r.size(); ++i) r[i] = bytes.empty() ? 0 : bytes[i % bytes.size()];
    for (size_t k = 0; k < records && 2 * k + 1 < bytes.size(); ++k) {
      r[k * rec] = bytes[2 * k];
      if (c100) r[k * rec + 1] = bytes[2 * k + 1];
    }
    bytes.swap(r);
  }
  std::vector<std::string> files;
  if (two) {
    size_t half = whole ? (bytes.size() / rec / 2) * rec : bytes.size() / 2;
    batch1.set(bytes.data(), half);
    batch2.set(bytes.data() + half, bytes.size() - half);
    files = {batch1.path, batch2.path};
  } else {
    batch1.set(bytes.data(), bytes.size());
    files = {batch1.path};
  }
  try {
    ait::Dataset ds = ait::dataset_from_cifar(files, c100, fine, use_names ? names.path : "");
    if (ds.n <= 0 || size_t(ds.n) * rec != bytes.size()) abort();
    if (ds.images.size() != size_t(ds.n) * 3072 || ds.labels.size() != size_t(ds.n)) abort();
    for (int32_t l : ds.labels)
      if (l < 0 || size_t(l) >= ds.classes.size()) abort();
    try {
      ait::validate_dataset(ds, "fuzz cifar dataset");
    } catch (const ait::Error&) {
      abort();  // the reader returned something the dataset format rejects
    }
  } catch (const ait::Error&) {
  }
  return 0;
}

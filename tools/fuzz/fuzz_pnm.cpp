// libFuzzer target: binary PGM / PPM (P5 / P6) decoding, as dataset_from_folder does it.
// Properties: never crash, only ait::Error escapes, and an accepted image has a legal size, 1
// or 3 channels, and exactly width * height * channels pixel bytes.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "io/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> bytes(data, data + size);
  try {
    ait::Image im = ait::decode_pnm(bytes, "fuzz.pnm");
    if (im.width <= 0 || im.height <= 0 || im.width > 65535 || im.height > 65535) abort();
    if (im.channels != 1 && im.channels != 3) abort();
    if (im.pixels.size() != size_t(im.width) * size_t(im.height) * size_t(im.channels)) abort();
    if (im.pixels.size() > size) abort();  // pixels come from the input, never invented
  } catch (const ait::Error&) {
  }
  return 0;
}

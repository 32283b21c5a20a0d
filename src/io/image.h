// Image files: binary PGM / PPM (P5 / P6) and PNG, decoded to 8-bit HWC pixels, and a PNG
// encoder for the pictures the tools write. Every decoder treats its input as hostile and
// throws ait::Error naming `source`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace ait {

struct Image {
  int width = 0, height = 0, channels = 0;  // channels 1 or 3 after decoding
  std::vector<uint8_t> pixels;              // HWC
};

// Binary P5 (grey) / P6 (RGB), maxval 255, '#' comments allowed in the header. The pixel data
// must end the file: trailing bytes (a second image, a stray newline) are refused.
Image decode_pnm(const std::vector<uint8_t>& bytes, const std::string& source);
// 8-bit grey / grey+alpha / RGB / RGBA (alpha dropped) and palette at 1/2/4/8 bits (expanded
// to RGB); filters 0-4; every chunk CRC checked; interlaced images and other bit depths
// (16-bit, 1/2/4-bit grey) refused.
Image decode_png(const std::vector<uint8_t>& bytes, const std::string& source);
// channels 1 (grey), 3 (RGB) or 4 (RGBA), pixels HWC; each row filtered with the filter (0-4)
// that leaves the smallest differences, the whole compressed by deflate_compress (io/deflate.h).
std::vector<uint8_t> encode_png(const uint8_t* pixels, int w, int h, int channels);
// Nearest-neighbour resize to height x width: output pixel (y, x) takes source pixel
// ((2y+1)·H / 2h, (2x+1)·W / 2w), the source pixel under its centre.
Image resize_nearest(const Image& im, int height, int width);

}  // namespace ait

#include "io/idx.h"

#include <cstdint>
#include <cstdio>

#include "io/inflate.h"

namespace ait {

namespace {
const char* idx_type_name(uint8_t code) {
  switch (code) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return nullptr;
  }
}
}  // namespace

namespace {
// The element count the big-endian uint32 dimensions at `dims` announce; false when it does not
// fit in 64 bits.
bool idx_element_count(const uint8_t* dims, int ndims, uint64_t* count) {
  auto dim = [&](int i) {
    const uint8_t* p = dims + 4 * i;
    return (uint64_t(p[0]) << 24) | (uint64_t(p[1]) << 16) | (uint64_t(p[2]) << 8) | uint64_t(p[3]);
  };
  uint64_t c = 1;
  for (int i = 0; i < ndims; ++i)
    if (dim(i) == 0) c = 0;  // an empty array, however large the other dimensions
  for (int i = 0; i < ndims && c != 0; ++i) {
    if (c > UINT64_MAX / dim(i)) return false;
    c *= dim(i);
  }
  *count = c;
  return true;
}
}  // namespace

IdxArray parse_idx(const uint8_t* data, size_t n, const std::string& source) {
  if (n < 4) throw Error(source + ": not an IDX file: " + std::to_string(n) + " bytes, too short for the 4-byte magic");
  char magic[16];
  std::snprintf(magic, sizeof magic, "0x%02x%02x%02x%02x", data[0], data[1], data[2], data[3]);
  if (data[0] != 0 || data[1] != 0)
    throw Error(source + ": not an IDX file: bad magic " + magic + " (expected 0x000008NN)");
  uint8_t type = data[2];
  if (type != 0x08) {
    char code[8];
    std::snprintf(code, sizeof code, "0x%02x", type);
    const char* name = idx_type_name(type);
    if (name)
      throw Error(source + ": IDX element type " + code + " (" + name +
                  ") is not supported; only 0x08 (unsigned byte) is");
    throw Error(source + ": not an IDX file: unknown element type code " + code + " in magic " + magic);
  }
  int ndims = data[3];
  if (ndims == 0) throw Error(source + ": IDX magic " + magic + " declares 0 dimensions");
  size_t header = 4 + 4 * size_t(ndims);
  if (n < header)
    throw Error(source + ": truncated IDX header: magic " + magic + " declares " + std::to_string(ndims) +
                " dimensions (" + std::to_string(header) + " header bytes) but the file has " + std::to_string(n) +
                " bytes");
  IdxArray out;
  out.source = source;
  const uint64_t avail = n - header;
  std::string dims_text = "[";
  for (int i = 0; i < ndims; ++i) {
    const uint8_t* p = data + 4 + 4 * i;
    uint32_t d = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
    out.dims.push_back(int64_t(d));
    dims_text += (i ? ", " : "") + std::to_string(d);
  }
  dims_text += "]";
  uint64_t count = 0;
  const bool overflow = !idx_element_count(data + 4, ndims, &count);
  if (overflow || count > avail)
    throw Error(source + ": IDX dims " + dims_text + " need " +
                (overflow ? std::string("more than 2^64") : std::to_string(count)) +
                " bytes of data but the file has " + std::to_string(avail) + " after the header");
  if (count < avail)
    throw Error(source + ": IDX dims " + dims_text + " need " + std::to_string(count) +
                " bytes of data but the file has " + std::to_string(avail) + " (trailing bytes)");
  out.data.assign(data + header, data + n);
  return out;
}

namespace {
// The bytes an IDX file must hold according to its header (4-byte magic, big-endian dims, one
// byte per element); SIZE_MAX when the header is incomplete or the count does not fit.
size_t idx_expected_size(const std::vector<uint8_t>& head) {
  if (head.size() < 4 || head.size() < 4 + 4 * size_t(head[3])) return SIZE_MAX;
  const size_t header = 4 + 4 * size_t(head[3]);
  uint64_t count = 0;
  if (!idx_element_count(head.data() + 4, head[3], &count) || count > SIZE_MAX / 2 - header) return SIZE_MAX;
  return size_t(count) + header;
}
}  // namespace

IdxArray read_idx(const std::string& path) {
  std::vector<uint8_t> raw = read_file(path);
  if (!is_gzip(raw.data(), raw.size())) return parse_idx(raw.data(), raw.size(), path);
  // Decode the header first, then exactly what it announces plus one byte (a longer stream is
  // refused as trailing data): a small compressed file cannot make us decode gigabytes.
  std::vector<uint8_t> head = gunzip_prefix(raw.data(), raw.size(), path, 4);
  if (head.size() >= 4) head = gunzip_prefix(raw.data(), raw.size(), path, 4 + 4 * size_t(head[3]));
  const size_t want = idx_expected_size(head);
  if (want == SIZE_MAX) return parse_idx(head.data(), head.size(), path);  // names what is wrong
  // DEFLATE expands at most 1032:1, so a file this small cannot hold that much.
  if (want / 1032 > raw.size())
    throw Error(path + ": the IDX header announces " + std::to_string(want) + " bytes, more than " +
                std::to_string(raw.size()) + " compressed bytes can hold");
  std::vector<uint8_t> bytes = gunzip_prefix(raw.data(), raw.size(), path, want + 1);
  return parse_idx(bytes.data(), bytes.size(), path);
}

}  // namespace ait

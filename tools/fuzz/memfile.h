// A file that lives in memory, reachable by path (/proc/self/fd/N), so that fuzz targets can
// feed readers that only take file paths.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace ait_fuzz {

struct MemFile {
  int fd = -1;
  std::string path;
  explicit MemFile(const char* name) {
    fd = memfd_create(name, 0);
    if (fd < 0) abort();
    path = "/proc/self/fd/" + std::to_string(fd);
  }
  void set(const uint8_t* d, size_t n) {
    if (ftruncate(fd, 0) != 0) abort();
    size_t off = 0;
    while (off < n) {
      ssize_t w = pwrite(fd, d + off, n - off, off_t(off));
      if (w <= 0) abort();
      off += size_t(w);
    }
  }
  void set(const std::vector<uint8_t>& v) { set(v.data(), v.size()); }
};

}  // namespace ait_fuzz

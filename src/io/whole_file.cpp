// Whole-file read and atomic write (declared in io/inflate.h, next to the gzip reader that
// read_maybe_gzip uses).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "io/inflate.h"

namespace ait {

namespace {
struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;
}  // namespace

std::vector<uint8_t> read_file(const std::string& path) {
  FilePtr f(std::fopen(path.c_str(), "rb"));
  if (!f) throw Error(path + ": cannot open for reading: " + std::strerror(errno));
  std::vector<uint8_t> data;
  struct stat st;
  if (fstat(fileno(f.get()), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
    data.reserve(size_t(st.st_size) + 1);  // +1: the read that sees EOF needs no reallocation
  constexpr size_t kChunk = size_t(1) << 20;
  for (;;) {
    size_t have = data.size();
    size_t want = data.capacity() > have ? data.capacity() - have : kChunk;
    data.resize(have + want);
    size_t got = std::fread(data.data() + have, 1, want, f.get());
    data.resize(have + got);
    if (got < want) {
      if (std::ferror(f.get())) throw Error(path + ": read error: " + std::strerror(errno));
      break;
    }
  }
  return data;
}

std::vector<uint8_t> read_maybe_gzip(const std::string& path) {
  std::vector<uint8_t> data = read_file(path);
  if (!is_gzip(data.data(), data.size())) return data;
  return gunzip(data.data(), data.size(), path);
}

void write_file_atomic(const std::string& path, const std::vector<ByteSpan>& parts) {
  std::string tmp = path + ".tmp." + std::to_string(long(getpid()));
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(path + ": cannot write (creating " + tmp + "): " + std::strerror(errno));
  auto fail = [&](const char* what, int err) {
    if (f) std::fclose(f);
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write (" + what + "): " + std::strerror(err));
  };
  for (const ByteSpan& part : parts)
    if (part.second && std::fwrite(part.first, 1, part.second, f) != part.second) fail("write", errno);
  if (std::fflush(f) != 0) fail("flush", errno);
  if (fsync(fileno(f)) != 0) fail("fsync", errno);
  int rc = std::fclose(f);
  f = nullptr;
  if (rc != 0) fail("close", errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) fail("rename", errno);
  // Make the rename itself durable (best effort).
  std::string dir = ".";
  size_t slash = path.find_last_of('/');
  if (slash != std::string::npos) dir = slash == 0 ? "/" : path.substr(0, slash);
  int dfd = open(dir.c_str(), O_RDONLY);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  write_file_atomic(path, std::vector<ByteSpan>{ByteSpan(bytes.data(), bytes.size())});
}

}  // namespace ait

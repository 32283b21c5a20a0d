#include "io/file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>

#include "io/inflate.h"

namespace ait {

namespace {

std::atomic<int64_t> g_crash_points{0};

// AIT_TEST_KILL_AT as a number; 0 (never) when unset or not a positive integer.
int64_t kill_at() {
  static const int64_t n = [] {
    const char* s = std::getenv("AIT_TEST_KILL_AT");
    if (!s || !*s) return int64_t(0);
    char* end = nullptr;
    long long v = std::strtoll(s, &end, 10);
    return *end == '\0' && v > 0 ? int64_t(v) : int64_t(0);
  }();
  return n;
}

[[noreturn]] void fail(const std::string& path, const std::string& what, int err) {
  throw Error(path + ": cannot " + what + ": " + std::strerror(err));
}

std::string pid_text() { return std::to_string(static_cast<long long>(getpid())); }

// Writes all of `n` bytes, resuming after short writes and signals.
bool write_all(int fd, const uint8_t* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w, n -= static_cast<size_t>(w);
  }
  return true;
}

// True when the process `pid` no longer exists (or is this one: its own leftovers of an
// earlier life under a reused pid are stale too).
bool process_gone(long long pid) {
  if (pid == static_cast<long long>(getpid())) return true;
  return pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
}

// The pid of "<name>.tmp.<pid>", or -1 when the name has another form.
long long temporary_owner(const std::string& name) {
  size_t at = name.rfind(".tmp.");
  if (at == std::string::npos || at + 5 >= name.size() || name.size() - at > 5 + 18) return -1;
  long long pid = 0;
  for (size_t i = at + 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    pid = pid * 10 + (name[i] - '0');
  }
  return pid;
}

}  // namespace

void crash_point(const char* what) {
  const int64_t n = ++g_crash_points;
  if (n != kill_at()) return;
  std::fprintf(stderr, "ait: AIT_TEST_KILL_AT=%lld: killed before %s\n", static_cast<long long>(n), what);
  std::fflush(stderr);
  std::raise(SIGKILL);
}

int64_t crash_points_passed() { return g_crash_points.load(); }

void write_file_durable(const std::string& path, const std::vector<uint8_t>& bytes) {
  crash_point(("write " + path).c_str());
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail(path, "create", errno);
  auto abandon = [&](const char* what, int err) {
    ::close(fd);
    ::unlink(path.c_str());
    fail(path, what, err);
  };
  if (!write_all(fd, bytes.data(), bytes.size())) abandon("write", errno ? errno : EIO);
  crash_point(("fsync " + path).c_str());
  if (::fsync(fd) != 0) abandon("fsync", errno);
  if (::close(fd) != 0) {
    ::unlink(path.c_str());
    fail(path, "close", errno);
  }
}

void fsync_directory(const std::string& dir) {
  crash_point(("fsync " + dir + "/").c_str());
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail(dir, "open the directory", errno);
  // Some file systems cannot fsync a directory (EINVAL): their entries are as durable as they get.
  if (::fsync(fd) != 0 && errno != EINVAL) {
    int err = errno;
    ::close(fd);
    fail(dir, "fsync the directory", err);
  }
  ::close(fd);
}

void replace_symlink(const std::string& target, const std::string& link) {
  const std::string tmp = link + ".tmp." + pid_text();
  ::unlink(tmp.c_str());
  crash_point(("symlink " + tmp).c_str());
  if (::symlink(target.c_str(), tmp.c_str()) != 0) fail(link, "create the link " + tmp, errno);
  crash_point(("rename " + tmp).c_str());
  if (std::rename(tmp.c_str(), link.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(link, "rename " + tmp + " onto it", err);
  }
}

std::string read_symlink(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return "";
  std::vector<char> buf(static_cast<size_t>(st.st_size > 0 ? st.st_size : 255) + 1);
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
  if (n < 0) fail(path, "read the link", errno);
  if (static_cast<size_t>(n) >= buf.size()) throw Error(path + ": link target changed while being read");
  return std::string(buf.data(), static_cast<size_t>(n));
}

void link_or_copy(const std::string& from, const std::string& to) {
  crash_point(("link " + to).c_str());
  if (::link(from.c_str(), to.c_str()) == 0) return;
  if (errno != EXDEV && errno != EPERM && errno != ENOTSUP && errno != EMLINK) fail(to, "link it to " + from, errno);
  write_file_durable(to, read_file(from));
}

void remove_tree(const std::string& path) {
  crash_point(("remove " + path).c_str());
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) throw Error(path + ": cannot remove: " + ec.message());
}

FileDigest digest_file(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail(path, "open", errno);
  FileDigest d;
  std::vector<uint8_t> buf(size_t(1) << 20);
  for (size_t n; (n = std::fread(buf.data(), 1, buf.size(), f)) > 0;) {
    d.crc32 = crc32(buf.data(), n, d.crc32);
    d.size += n;
  }
  bool bad = std::ferror(f) != 0;
  std::fclose(f);
  if (bad) throw Error(path + ": read error");
  return d;
}

std::vector<std::string> remove_stale_temporaries(const std::string& dir) {
  std::vector<std::string> stale;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    long long pid = temporary_owner(name);
    if (pid >= 0 && process_gone(pid)) stale.push_back(name);
  }
  if (ec) throw Error(dir + ": cannot list the directory: " + ec.message());
  for (const std::string& name : stale) remove_tree(dir + "/" + name);
  return stale;
}

FileLock::FileLock(const std::string& path, const std::string& what) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path, "open the lock file", errno);
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    std::string holder;
    // The holder writes its pid right after taking the lock: give it a moment.
    for (int attempt = 0; err == EWOULDBLOCK && attempt < 50 && holder.empty(); ++attempt) {
      char buf[32] = {};
      ssize_t n = ::pread(fd_, buf, sizeof buf - 1, 0);
      for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) holder += buf[i];
      if (holder.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ::close(fd_);
    if (err != EWOULDBLOCK) fail(path, "lock", err);
    throw Error(what + " is in use by " + (holder.empty() ? "another process" : "process " + holder) + " (it holds " +
                path + ")");
  }
  const std::string text = pid_text() + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    int err = errno;
    ::close(fd_);
    fail(path, "write the lock holder's pid", err);
  }
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace ait

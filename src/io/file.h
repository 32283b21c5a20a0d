// Durable file operations for directories that must survive a crash at any instant (the run
// directory of `ait train`, docs/spec.md §8): write-once files made durable with fsync, atomic
// symlink replacement, directory fsync, an exclusive lock, and removal of the temporaries a
// killed process leaves behind.
//
// Every step that changes the disk first passes crash_point(), the one place where the crash
// tests stop a process (AIT_TEST_KILL_AT, below).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace ait {

// Called before each write, fsync, link, rename and removal of a crash-consistent protocol.
// Test hook: with the environment variable AIT_TEST_KILL_AT=N the process raises SIGKILL on
// itself just before its N-th crash point (counted from 1 over the life of the process), so a
// test can stop a run between any two of its disk operations. Without the variable it only
// counts.
void crash_point(const char* what);
// Crash points passed so far by this process.
int64_t crash_points_passed();

// Creates `path` (it must not exist), writes `bytes`, fsyncs and closes it. Throws naming the
// path; a partly written file is removed.
void write_file_durable(const std::string& path, const std::vector<uint8_t>& bytes);
// fsync of a directory: makes the entries created, renamed or removed in it durable.
void fsync_directory(const std::string& dir);
// Points the symbolic link `link` at `target` in one atomic step: a new link under the name
// `link + ".tmp.<pid>"`, renamed over `link` (which may be a file or an older link).
void replace_symlink(const std::string& target, const std::string& link);
// The target text of the symbolic link `path`; empty when `path` is absent or not a link.
std::string read_symlink(const std::string& path);
// A second name `to` for the file `from` (a hard link; a durable copy where the file system
// refuses links). Only for files that are never modified in place.
void link_or_copy(const std::string& from, const std::string& to);
// Removes a file or a whole directory tree; a missing path is not an error.
void remove_tree(const std::string& path);

struct FileDigest {
  uint64_t size = 0;
  uint32_t crc32 = 0;
};
// Size and CRC-32 of a file's contents; throws naming the path when it cannot be read.
FileDigest digest_file(const std::string& path);

// Removes the entries of `dir` named "<anything>.tmp.<pid>" whose process is gone (or is this
// process, whose temporaries of an earlier life under the same pid are stale too). Returns the
// names removed.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);

// An exclusive lock on the file `path` (created when missing, never truncated before the lock
// is held) for the life of the object. flock(2): the kernel releases it when the holder exits,
// even by SIGKILL, so a lock of a dead process never blocks. The holder writes its pid into
// the file; when the lock is taken, the constructor throws "<what> is in use by process <pid>".
class FileLock {
public:
  FileLock(const std::string& path, const std::string& what);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

private:
  int fd_ = -1;
};

}  // namespace ait

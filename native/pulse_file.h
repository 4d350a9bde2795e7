// File operations of the heartbeat: plain POSIX, no Node-API.
// Every function returns 0 or an errno value; none follows a symlink at the
// final path component.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace pulse {

// What a failed file operation was doing, reported to JS with the errno.
enum class FileOp : int {
  kNone = 0,
  kMkdir = 1,     // creating a missing parent directory
  kInspect = 2,   // looking at what is at the path
  kNotRegular = 3,  // something other than a regular file is at the path
  kWrite = 4,     // writing the record to a temporary file
  kRename = 5,    // moving the record into place
  kTouch = 6,     // setting the file's times (the beat itself)
  kRemove = 7,    // unlinking the file on stop
  kResolve = 8,   // resolving the parent directory
};

struct FileResult {
  int err = 0;  // errno, 0 on success
  FileOp op = FileOp::kNone;
  bool ok() const { return err == 0; }
};

// Creates the missing parent directories of `path` with mode 0755.
FileResult MakeParents(const std::string& path);

// Fails with ELOOP for a symlink (dangling or not), EISDIR for a directory and
// kNotRegular/EINVAL for any other non-regular file. A missing file is fine,
// and sets *missing when given. One statx, never following a link.
FileResult InspectTarget(const std::string& path, bool* missing = nullptr);

// Replaces the content of `path` atomically: writes `tmp_path` (created
// exclusively, mode 0644 minus umask), sets its atime and mtime to
// `mtime_ns` (wall clock), then renames it over `path`.
FileResult WriteRecord(const std::string& path, const std::string& tmp_path,
                       const std::string& content, int64_t mtime_ns);

// The beat: sets the times of `path` to `wall_ns` without following a
// symlink. One syscall; the heartbeat calls it after InspectTarget found a
// regular file there, so a link planted in between only gets its own times
// set, and the next look reports it.
FileResult Touch(const std::string& path, int64_t wall_ns);

FileResult Remove(const std::string& path);

// The wall-clock mtime (ns) of what is at `path`, without following a
// symlink; 0 when nothing is there or it cannot be read.
int64_t MtimeNs(const std::string& path);

// The file type bits (S_IFMT) of what descriptor `fd` refers to; 0 when
// unknown. Same symbol floor as InspectTarget (statx on glibc).
mode_t DescriptorType(int fd);

// realpath() of the parent directory joined with the base name: one key per
// file however the path is spelled.
FileResult CanonicalKey(const std::string& path, std::string* key);

}  // namespace pulse

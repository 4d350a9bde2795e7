#include "pulse_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

namespace pulse {
namespace {

// One look at what is at `path`, never following a link: its type and mode,
// and its mtime in wall-clock ns. On glibc statx (2.28) rather than lstat,
// whose symbol is glibc 2.33. musl has statx() only from 1.2.5, and its
// fstatat has no symbol versions, so musl builds use that instead.
int LookAt(const std::string& path, mode_t* mode, int64_t* mtime_ns) {
#if defined(__GLIBC__)
  struct statx st;
  if (statx(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MTIME, &st) != 0) return -1;
  *mode = st.stx_mode;
  *mtime_ns = static_cast<int64_t>(st.stx_mtime.tv_sec) * 1000000000 + st.stx_mtime.tv_nsec;
#else
  struct stat st;
  if (fstatat(AT_FDCWD, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return -1;
  *mode = st.st_mode;
  *mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
#endif
  return 0;
}

FileResult Fail(FileOp op) { return FileResult{errno, op}; }

}  // namespace

mode_t DescriptorType(int fd) {
#if defined(__GLIBC__)
  struct statx st;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_TYPE, &st) != 0) return 0;
  return st.stx_mode & S_IFMT;
#else
  struct stat st;
  if (fstatat(fd, "", &st, AT_EMPTY_PATH) != 0) return 0;
  return st.st_mode & S_IFMT;
#endif
}

namespace {

std::string DirName(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

timespec ToTimespec(int64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  return ts;
}

}  // namespace

FileResult MakeParents(const std::string& path) {
  std::string dir = DirName(path);
  // Walk down from the root, creating each missing component.
  for (size_t pos = 1; pos <= dir.size(); ++pos) {
    if (pos != dir.size() && dir[pos] != '/') continue;
    std::string part = dir.substr(0, pos);
    if (mkdir(part.c_str(), 0755) != 0 && errno != EEXIST) {
      return Fail(FileOp::kMkdir);
    }
  }
  return FileResult{};
}

FileResult InspectTarget(const std::string& path, bool* missing) {
  if (missing != nullptr) *missing = false;
  mode_t mode = 0;
  int64_t mtime_ns = 0;
  if (LookAt(path, &mode, &mtime_ns) != 0) {
    if (errno == ENOENT) {
      if (missing != nullptr) *missing = true;
      return FileResult{};
    }
    return Fail(FileOp::kInspect);
  }
  if (S_ISLNK(mode)) return FileResult{ELOOP, FileOp::kInspect};
  if (S_ISDIR(mode)) return FileResult{EISDIR, FileOp::kInspect};
  if (!S_ISREG(mode)) return FileResult{EINVAL, FileOp::kNotRegular};
  return FileResult{};
}

FileResult WriteRecord(const std::string& path, const std::string& tmp_path,
                       const std::string& content, int64_t mtime_ns) {
  const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int fd = open(tmp_path.c_str(), flags, 0644);
  if (fd < 0 && errno == EEXIST) {
    // Left behind by a crash of a process that had our pid: ours to replace.
    unlink(tmp_path.c_str());
    fd = open(tmp_path.c_str(), flags, 0644);
  }
  if (fd < 0) return Fail(FileOp::kWrite);

  FileResult result;
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      result = Fail(FileOp::kWrite);
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (result.ok()) {
    timespec times[2] = {ToTimespec(mtime_ns), ToTimespec(mtime_ns)};
    if (futimens(fd, times) != 0) result = Fail(FileOp::kWrite);
  }
  if (close(fd) != 0 && result.ok()) result = Fail(FileOp::kWrite);
  if (result.ok() && rename(tmp_path.c_str(), path.c_str()) != 0) {
    result = Fail(FileOp::kRename);
  }
  if (!result.ok()) unlink(tmp_path.c_str());
  return result;
}

FileResult Touch(const std::string& path, int64_t wall_ns) {
  timespec times[2] = {ToTimespec(wall_ns), ToTimespec(wall_ns)};
  if (utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return Fail(FileOp::kTouch);
  }
  return FileResult{};
}

FileResult Remove(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno != ENOENT) return Fail(FileOp::kRemove);
  return FileResult{};
}

int64_t MtimeNs(const std::string& path) {
  mode_t mode = 0;
  int64_t mtime_ns = 0;
  if (LookAt(path, &mode, &mtime_ns) != 0) return 0;
  return mtime_ns;
}

FileResult CanonicalKey(const std::string& path, std::string* key) {
  char resolved[PATH_MAX];
  if (realpath(DirName(path).c_str(), resolved) == nullptr) {
    return Fail(FileOp::kResolve);
  }
  size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  *key = std::string(resolved) + "/" + base;
  return FileResult{};
}

}  // namespace pulse

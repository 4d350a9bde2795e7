// waitingFor: what a thread asleep in a system call waits for, found by
// following its descriptor through /proc: a child process (execSync and
// spawnSync wait on the child's pipes from a private epoll set), a socket
// (addresses from /proc/net/*), a pipe or FIFO, a file (path, file system).
// Read by the heartbeat thread; whatever cannot be read is left unknown.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace pulse {

// stat() of `path` (following links), or of descriptor `fd` when path is
// null: type, device and size. On glibc through statx (2.28: stat's symbol
// is 2.33, above the glibc floor); on musl through fstatat.
struct FileInfo {
  unsigned mode = 0;
  unsigned dev_major = 0;
  unsigned dev_minor = 0;
  uint64_t size = 0;
};
bool StatFile(const char* path, int fd, FileInfo* out);

// {"kind":"child","pid":42,"command":"sleep 15","state":"sleeping","runningMs":1200}
// or {"kind":"socket",...}, {"kind":"pipe",...}, {"kind":"fifo","path":...},
// {"kind":"file","path":...,"fsType":...}; empty when the descriptor leads
// nowhere known. `fd` and `syscall` come from the thread view; `*line` gets
// the words for the log block and check ("child 42: sleep 15").
std::string WaitingForJson(int fd, const std::string& syscall, std::string* line);

}  // namespace pulse

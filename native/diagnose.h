// The stall diagnosis's kernel view of the stuck thread: what /proc says about
// it (state, system call, wait channel, descriptor) and the CPU time it uses.
// Plain POSIX; read by the heartbeat thread while the JS thread is stuck.
// Nothing here may fail a beat: whatever cannot be read is left unknown.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pulse {

// Names of the system calls, by number, and which of them take a descriptor
// as their first argument. Handed over by the TypeScript side, which holds the
// one table for both strategies (src/diagnosis/diagnosis.ts).
struct SyscallTable {
  std::vector<std::string> names;
  std::vector<bool> fd_first;
};

// "read write  open" (space-separated, empty names allowed) plus the names of
// the calls whose first argument is a descriptor.
SyscallTable ParseSyscallTable(const std::string& names, const std::string& fd_first);

// The same table for every pulse of the process: parsed once, counted, and
// freed with the last pulse that holds it. Both are called from JS threads.
struct SharedSyscallTable {
  std::string names;     // the text it was parsed from
  std::string fd_first;
  SyscallTable table;
  int refs = 0;          // guarded by the mutex in diagnose.cc
};
const SharedSyscallTable* AcquireSyscallTable(const std::string& names, const std::string& fd_first);
void ReleaseSyscallTable(const SharedSyscallTable* table);

struct ThreadView {
  std::string state;    // "running", "sleeping", ...; empty: unknown
  double cpu_percent = -1;  // < 0: unknown
  std::string syscall;  // name, or "#N" for a number the table lacks; empty: none
  std::string wchan;    // empty: none or hidden
  int fd = -1;          // < 0: none
  std::string fd_target;  // readlink of the descriptor; empty: none
};

// Reads a /proc file whole, stopping once more than `limit` bytes are in;
// empty when it cannot be read.
std::string ReadProcFile(const std::string& path, size_t limit = 8192);

// The word for a /proc state letter ('R' -> "running"); empty when unknown.
const char* ProcStateName(char code);

// The calling thread's id (gettid), for the heartbeat to look at later.
pid_t CurrentTid();

// CPU time (ns) thread `tid` of this process has used; -1 when unknown.
int64_t ThreadCpuNs(pid_t tid);

// Reads /proc/self/task/<tid>/{stat,syscall,wchan} and the descriptor link.
// cpu_percent is left to the caller (it needs two samples).
ThreadView ReadThreadView(pid_t tid, const SyscallTable& table);

// {"state":"running","cpuPercent":99.6,"syscall":null,...}
std::string ThreadViewJson(const ThreadView& view);

// "running, 99.6% CPU" / "sleeping in epoll_pwait on fd 13 (anon_inode:[eventpoll]), 0.2% CPU"
std::string ThreadViewLine(const ThreadView& view);

}  // namespace pulse

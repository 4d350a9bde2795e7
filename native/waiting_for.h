// waitingFor: what a thread asleep in a system call waits for, found by
// following its descriptor through /proc: a child process (execSync and
// spawnSync wait on the child's pipes from a private epoll set), a socket
// (addresses from /proc/net/*), a pipe or FIFO, a file (path, file system).
// Read by the heartbeat thread; whatever cannot be read is left unknown.
#pragma once

#include <sys/types.h>

#include <string>

namespace pulse {

// {"kind":"child","pid":42,"command":"sleep 15","state":"sleeping","runningMs":1200}
// or {"kind":"socket",...}, {"kind":"pipe",...}, {"kind":"fifo","path":...},
// {"kind":"file","path":...,"fsType":...}; empty when the descriptor leads
// nowhere known. `fd` and `syscall` come from the thread view; `*line` gets
// the words for the log block and check ("child 42: sleep 15").
std::string WaitingForJson(int fd, const std::string& syscall, std::string* line);

}  // namespace pulse

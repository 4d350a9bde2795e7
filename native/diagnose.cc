#include "diagnose.h"

#include <pthread.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

namespace pulse {

std::string ReadProcFile(const std::string& path, size_t limit) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::string();
  char buf[4096];
  std::string out;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > limit) break;
  }
  close(fd);
  return out;
}

const char* ProcStateName(char code) {
  switch (code) {
    case 'R': return "running";
    case 'S': return "sleeping";
    case 'D': return "disk-sleep";
    case 'T': return "stopped";
    case 't': return "tracing-stop";
    case 'Z': return "zombie";
    case 'X': return "dead";
    case 'I': return "idle";
    case 'P': return "parked";
    default: return "";
  }
}

namespace {

std::vector<std::string> Words(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  for (;;) {
    size_t space = text.find(' ', pos);
    out.push_back(text.substr(pos, space == std::string::npos ? std::string::npos : space - pos));
    if (space == std::string::npos) break;
    pos = space + 1;
  }
  return out;
}

}  // namespace

SyscallTable ParseSyscallTable(const std::string& names, const std::string& fd_first) {
  SyscallTable table;
  table.names = Words(names);
  table.fd_first.assign(table.names.size(), false);
  for (const std::string& name : Words(fd_first)) {
    if (name.empty()) continue;
    for (size_t i = 0; i < table.names.size(); i++) {
      if (table.names[i] == name) table.fd_first[i] = true;
    }
  }
  return table;
}

namespace {
// Guards shared_table and every SharedSyscallTable's refs. Plain POD, so
// nothing runs at exit.
pthread_mutex_t shared_table_mutex = PTHREAD_MUTEX_INITIALIZER;
// The table the live pulses share: a heap object, not a static one, so no
// exit-time destructor runs; freed when the last pulse that holds it lets it
// go. (Counted here, not by std::shared_ptr, whose inlined code asks for a
// glibc 2.32 symbol.)
SharedSyscallTable* shared_table = nullptr;
}  // namespace

const SharedSyscallTable* AcquireSyscallTable(const std::string& names, const std::string& fd_first) {
  pthread_mutex_lock(&shared_table_mutex);
  SharedSyscallTable* held = shared_table;
  if (held != nullptr && held->names == names && held->fd_first == fd_first) {
    held->refs++;
    pthread_mutex_unlock(&shared_table_mutex);
    return held;
  }
  pthread_mutex_unlock(&shared_table_mutex);
  // Parsed outside the lock. The text is the TypeScript side's one table, so
  // it matches whenever a table is held; one that did not would be this
  // pulse's own.
  auto* fresh = new SharedSyscallTable();
  fresh->names = names;
  fresh->fd_first = fd_first;
  fresh->table = ParseSyscallTable(names, fd_first);
  fresh->refs = 1;
  pthread_mutex_lock(&shared_table_mutex);
  if (shared_table == nullptr) shared_table = fresh;
  pthread_mutex_unlock(&shared_table_mutex);
  return fresh;
}

void ReleaseSyscallTable(const SharedSyscallTable* table) {
  if (table == nullptr) return;
  auto* held = const_cast<SharedSyscallTable*>(table);
  pthread_mutex_lock(&shared_table_mutex);
  const bool last = --held->refs == 0;
  if (last && shared_table == held) shared_table = nullptr;
  pthread_mutex_unlock(&shared_table_mutex);
  if (last) delete held;
}

pid_t CurrentTid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

int64_t ThreadCpuNs(pid_t tid) {
  // Linux's clock id for a thread's CPU time (what pthread_getcpuclockid
  // computes): ~tid << 3, per-thread bit, scheduler clock.
  const clockid_t clock = static_cast<clockid_t>((~static_cast<unsigned>(tid) << 3) | 6);
  timespec ts;
  if (clock_gettime(clock, &ts) != 0) return -1;
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

ThreadView ReadThreadView(pid_t tid, const SyscallTable& table) {
  ThreadView view;
  const std::string dir = "/proc/self/task/" + std::to_string(tid) + "/";
  // "tid (comm) S ...": the name may hold spaces and parentheses.
  const std::string stat = ReadProcFile(dir + "stat");
  size_t paren = stat.rfind(')');
  if (paren != std::string::npos && paren + 2 < stat.size()) view.state = ProcStateName(stat[paren + 2]);

  // "nr arg1 ... arg6 sp pc", "-1 sp pc" (blocked outside a call) or "running".
  const std::string call = ReadProcFile(dir + "syscall");
  if (!call.empty() && call[0] >= '0' && call[0] <= '9') {
    char* end = nullptr;
    long nr = strtol(call.c_str(), &end, 10);
    if (nr >= 0 && static_cast<size_t>(nr) < table.names.size() && !table.names[nr].empty()) {
      view.syscall = table.names[nr];
      if (table.fd_first[nr]) {
        long long fd = strtoll(end, nullptr, 16);  // the arguments are hex
        if (fd >= 0 && fd < (1 << 24)) view.fd = static_cast<int>(fd);
      }
    } else {
      view.syscall = "#" + std::to_string(nr);
    }
  }

  std::string wchan = ReadProcFile(dir + "wchan");
  if (!wchan.empty() && wchan != "0") view.wchan = wchan;

  if (view.fd >= 0) {
    char target[512];
    const std::string link = "/proc/self/fd/" + std::to_string(view.fd);
    ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
    if (n > 0) view.fd_target.assign(target, static_cast<size_t>(n));
  }
  return view;
}

std::string ThreadViewJson(const ThreadView& view) {
  std::string out = "{\"state\":" + JsonStringOrNull(view.state) + ",\"cpuPercent\":";
  if (view.cpu_percent >= 0) {
    char buf[32];
    snprintf(buf, sizeof buf, "%.1f", view.cpu_percent);
    out += buf;
  } else {
    out += "null";
  }
  out += ",\"syscall\":" + JsonStringOrNull(view.syscall) + ",\"wchan\":" + JsonStringOrNull(view.wchan) +
         ",\"fd\":" + (view.fd >= 0 ? std::to_string(view.fd) : std::string("null")) +
         ",\"fdTarget\":" + JsonStringOrNull(view.fd_target) + "}";
  return out;
}

std::string ThreadViewLine(const ThreadView& view) {
  std::string out = view.state.empty() ? std::string("state unknown") : view.state;
  if (!view.syscall.empty()) out += " in " + view.syscall;
  if (view.fd >= 0) {
    out += " on fd " + std::to_string(view.fd);
    if (!view.fd_target.empty()) out += " (" + view.fd_target + ")";
  }
  if (view.cpu_percent >= 0) {
    char buf[32];
    snprintf(buf, sizeof buf, ", %.1f%% CPU", view.cpu_percent);
    out += buf;
  }
  return out;
}

}  // namespace pulse

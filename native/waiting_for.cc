#include "waiting_for.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <vector>

#include "diagnose.h"
#include "json.h"

namespace pulse {

bool StatFile(const char* path, int fd, FileInfo* out) {
#if defined(__GLIBC__)
  struct statx st;
  const int flags = path == nullptr ? AT_EMPTY_PATH : 0;
  if (statx(path == nullptr ? fd : AT_FDCWD, path == nullptr ? "" : path, flags,
            STATX_TYPE | STATX_SIZE, &st) != 0) {
    return false;
  }
  out->mode = st.stx_mode;
  out->dev_major = st.stx_dev_major;
  out->dev_minor = st.stx_dev_minor;
  out->size = st.stx_size;
#else
  struct stat st;
  if ((path == nullptr ? fstat(fd, &st) : fstatat(AT_FDCWD, path, &st, 0)) != 0) return false;
  out->mode = st.st_mode;
  out->dev_major = major(st.st_dev);
  out->dev_minor = minor(st.st_dev);
  out->size = static_cast<uint64_t>(st.st_size);
#endif
  return true;
}

namespace {

// Processes looked at when searching this process's descendants: a bound on
// the time one diagnosis may spend on a crowded host.
constexpr size_t kMaxProcs = 8192;
// Descriptors of one process looked at, at most.
constexpr int kMaxFds = 4096;


std::string Link(const std::string& path) {
  char target[1024];
  ssize_t n = readlink(path.c_str(), target, sizeof target - 1);
  return n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string();
}

// "pipe:[123]" / "socket:[123]" -> 123 when `target` starts with `prefix`; 0 otherwise.
unsigned long long Inode(const std::string& target, const char* prefix) {
  const size_t len = strlen(prefix);
  if (target.compare(0, len, prefix) != 0) return 0;
  return strtoull(target.c_str() + len, nullptr, 10);
}


struct Proc {
  pid_t pid;
  pid_t ppid;
  char state;
  unsigned long long start_ticks;
  int depth;  // below this process: 1 for a child
};

// The fields after "pid (comm) " of /proc/<pid>/stat; false if unreadable.
bool ReadStat(pid_t pid, Proc* out) {
  const std::string stat = ReadProcFile("/proc/" + std::to_string(pid) + "/stat", 4096);
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) return false;
  // state(3) ppid(4) ... starttime(22): counted from the state field.
  std::vector<std::string> fields;
  size_t pos = paren + 2;
  while (pos < stat.size() && fields.size() < 20) {
    size_t space = stat.find(' ', pos);
    if (space == std::string::npos) space = stat.size();
    fields.push_back(stat.substr(pos, space - pos));
    pos = space + 1;
  }
  if (fields.size() < 20) return false;
  out->pid = pid;
  out->state = fields[0].empty() ? '?' : fields[0][0];
  out->ppid = static_cast<pid_t>(atol(fields[1].c_str()));
  out->start_ticks = strtoull(fields[19].c_str(), nullptr, 10);
  return true;
}

// This process's descendants (children first), from one scan of /proc.
std::vector<Proc> Descendants() {
  std::vector<Proc> all;
  DIR* dir = opendir("/proc");
  if (dir == nullptr) return all;
  while (dirent* entry = readdir(dir)) {
    if (all.size() >= kMaxProcs) break;
    if (entry->d_name[0] < '1' || entry->d_name[0] > '9') continue;
    Proc p{};
    if (ReadStat(static_cast<pid_t>(atol(entry->d_name)), &p)) all.push_back(p);
  }
  closedir(dir);
  std::vector<Proc> out;
  std::vector<pid_t> level = {getpid()};
  for (int depth = 1; depth <= 16 && !level.empty(); depth++) {
    std::vector<pid_t> next;
    for (const Proc& p : all) {
      for (pid_t parent : level) {
        if (p.ppid == parent) {
          Proc found = p;
          found.depth = depth;
          out.push_back(found);
          next.push_back(p.pid);
          break;
        }
      }
    }
    level.swap(next);
  }
  return out;
}

// True when process `pid` holds a descriptor whose link is one of `targets`.
bool Holds(pid_t pid, const std::vector<std::string>& targets) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd/";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  int seen = 0;
  while (dirent* entry = readdir(d)) {
    if (entry->d_name[0] == '.') continue;
    if (++seen > kMaxFds) break;
    const std::string target = Link(dir + entry->d_name);
    for (const std::string& t : targets) {
      if (target == t) found = true;
    }
    if (found) break;
  }
  closedir(d);
  return found;
}

std::string Command(pid_t pid) {
  std::string cmd = ReadProcFile("/proc/" + std::to_string(pid) + "/cmdline", 4096);
  while (!cmd.empty() && cmd.back() == '\0') cmd.pop_back();
  for (char& c : cmd) {
    if (c == '\0') c = ' ';
  }
  if (cmd.size() > 512) cmd.resize(512);
  if (cmd.empty()) {
    // A zombie or kernel thread has no command line: its name, as ps shows it.
    const std::string stat = ReadProcFile("/proc/" + std::to_string(pid) + "/stat", 4096);
    size_t open_paren = stat.find('('), close_paren = stat.rfind(')');
    if (open_paren != std::string::npos && close_paren > open_paren) {
      cmd = "[" + stat.substr(open_paren + 1, close_paren - open_paren - 1) + "]";
    }
  }
  return cmd;
}

std::string ChildJson(const Proc& p, std::string* line) {
  const std::string command = Command(p.pid);
  long ticks = sysconf(_SC_CLK_TCK);
  if (ticks <= 0) ticks = 100;
  timespec boot;  // CLOCK_BOOTTIME: the clock /proc's start times count on
  std::string running = "null";
  if (clock_gettime(CLOCK_BOOTTIME, &boot) == 0) {
    const long long now_ms = static_cast<long long>(boot.tv_sec) * 1000 + boot.tv_nsec / 1000000;
    const long long start_ms = static_cast<long long>(p.start_ticks * 1000 / static_cast<unsigned long long>(ticks));
    if (now_ms >= start_ms) running = std::to_string(now_ms - start_ms);
  }
  *line = "child " + std::to_string(p.pid) + ": " + command;
  return "{\"kind\":\"child\",\"pid\":" + std::to_string(p.pid) + ",\"command\":" + JsonStringOrNull(command) +
         ",\"state\":" + JsonStringOrNull(ProcStateName(p.state)) + ",\"runningMs\":" + running + "}";
}

// The deepest descendant holding one of `targets` (the process that really
// runs: `sh -c cmd` passes its descriptors on to cmd), or null.
const Proc* ChildHolding(const std::vector<Proc>& procs, const std::vector<std::string>& targets) {
  const Proc* best = nullptr;
  for (const Proc& p : procs) {
    if (best != nullptr && p.depth <= best->depth) continue;
    if (Holds(p.pid, targets)) best = &p;
  }
  return best;
}

// "0100007F:1F90" (IPv4) or 32 hex digits (IPv6), as /proc/net/tcp prints
// them: 32-bit words in host byte order.
std::string Address(const std::string& hex) {
  size_t colon = hex.find(':');
  if (colon == std::string::npos) return hex;
  const std::string host = hex.substr(0, colon);
  const unsigned port = static_cast<unsigned>(strtoul(hex.c_str() + colon + 1, nullptr, 16));
  unsigned char bytes[16];
  const size_t words = host.size() / 8;
  if ((words != 1 && words != 4) || host.size() % 8 != 0) return hex;
  for (size_t w = 0; w < words; w++) {
    uint32_t word = static_cast<uint32_t>(strtoul(host.substr(w * 8, 8).c_str(), nullptr, 16));
    memcpy(bytes + w * 4, &word, 4);  // back to the bytes in memory: network order
  }
  char buf[64];
  if (words == 1) {
    snprintf(buf, sizeof buf, "%u.%u.%u.%u:%u", bytes[0], bytes[1], bytes[2], bytes[3], port);
    return buf;
  }
  std::string out = "[";
  for (int i = 0; i < 8; i++) {
    snprintf(buf, sizeof buf, "%s%x", i ? ":" : "", (bytes[2 * i] << 8) | bytes[2 * i + 1]);
    out += buf;
  }
  snprintf(buf, sizeof buf, "]:%u", port);
  return out + buf;
}

const char* TcpState(unsigned code) {
  static const char* const kNames[] = {"",          "established", "syn-sent", "syn-recv",
                                       "fin-wait1", "fin-wait2",   "time-wait", "close",
                                       "close-wait", "last-ack",   "listen",    "closing"};
  return code < sizeof kNames / sizeof kNames[0] ? kNames[code] : "";
}

// The socket with inode `ino`, from /proc/net/{tcp,tcp6,udp,udp6,unix}; empty if not found.
std::string SocketJson(unsigned long long ino, std::string* line) {
  static const char* const kInet[] = {"tcp", "tcp6", "udp", "udp6"};
  for (const char* proto : kInet) {
    const std::string table = ReadProcFile(std::string("/proc/net/") + proto, 1 << 22);
    size_t pos = table.find('\n');  // past the header
    while (pos != std::string::npos && pos + 1 < table.size()) {
      size_t end = table.find('\n', pos + 1);
      const std::string row = table.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
      pos = end;
      // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
      char local[80], peer[80];
      unsigned st = 0;
      unsigned long long inode = 0;
      if (sscanf(row.c_str(), " %*s %79s %79s %x %*s %*s %*s %*s %*s %llu", local, peer, &st, &inode) != 4) continue;
      if (inode != ino) continue;
      const std::string l = Address(local), r = Address(peer);
      const bool listening = proto[0] == 't' && st == 10;
      const std::string kind = proto[0] == 't' ? "tcp" : "udp";
      *line = "socket " + kind + " " + l + (listening ? " (listening)" : " -> " + r);
      return "{\"kind\":\"socket\",\"protocol\":\"" + kind + "\",\"local\":\"" + l + "\",\"peer\":" +
             (listening ? std::string("null") : "\"" + r + "\"") + ",\"state\":" +
             JsonStringOrNull(proto[0] == 't' ? TcpState(st) : "") + "}";
    }
  }
  const std::string table = ReadProcFile("/proc/net/unix", 1 << 22);
  size_t pos = table.find('\n');
  while (pos != std::string::npos && pos + 1 < table.size()) {
    size_t end = table.find('\n', pos + 1);
    const std::string row = table.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1);
    pos = end;
    // Num RefCount Protocol Flags Type St Inode [Path]
    unsigned long long inode = 0;
    int consumed = 0;
    if (sscanf(row.c_str(), " %*s %*s %*s %*s %*s %*s %llu%n", &inode, &consumed) != 1) continue;
    if (inode != ino) continue;
    std::string path = row.substr(static_cast<size_t>(consumed));
    while (!path.empty() && path[0] == ' ') path.erase(0, 1);
    *line = "socket unix " + (path.empty() ? "socket:[" + std::to_string(ino) + "]" : path);
    return "{\"kind\":\"socket\",\"protocol\":\"unix\",\"local\":" + JsonStringOrNull(path) + ",\"peer\":null}";
  }
  return std::string();
}

// The file system type of device major:minor, from /proc/self/mountinfo.
std::string FsType(unsigned dev_major, unsigned dev_minor) {
  const std::string info = ReadProcFile("/proc/self/mountinfo", 1 << 22);
  char want[32];
  snprintf(want, sizeof want, "%u:%u", dev_major, dev_minor);
  size_t pos = 0;
  while (pos < info.size()) {
    size_t end = info.find('\n', pos);
    if (end == std::string::npos) end = info.size();
    const std::string row = info.substr(pos, end - pos);
    pos = end + 1;
    // id parent major:minor root mountpoint options [optional...] - fstype source options
    char devs[32];
    if (sscanf(row.c_str(), "%*s %*s %31s", devs) != 1 || strcmp(devs, want) != 0) continue;
    size_t dash = row.find(" - ");
    if (dash == std::string::npos) continue;
    char type[64];
    if (sscanf(row.c_str() + dash + 3, "%63s", type) == 1) return type;
  }
  return std::string();
}

enum Rank { kNothing = 0, kPipe = 1, kFile = 2, kSocket = 3, kChild = 4 };

// What descriptor `fd` of this process leads to. `procs` is filled on first
// need (one /proc scan per diagnosis).
Rank Resolve(int fd, std::vector<Proc>* procs, bool* scanned, std::string* json, std::string* line) {
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const std::string target = Link(link);
  if (target.empty()) return kNothing;
  const unsigned long long pipe = Inode(target, "pipe:[");
  const unsigned long long sock = Inode(target, "socket:[");
  if (pipe != 0 || sock != 0) {
    if (!*scanned) {
      *procs = Descendants();
      *scanned = true;
    }
    // A child holds the other end: the same pipe, or the peer of a socket
    // pair, which the kernel numbers next to this one (libuv gives a child
    // its stdio as socket pairs).
    std::vector<std::string> targets;
    if (pipe != 0) {
      targets.push_back(target);
    } else {
      targets.push_back("socket:[" + std::to_string(sock + 1) + "]");
      targets.push_back("socket:[" + std::to_string(sock - 1) + "]");
    }
    if (const Proc* child = ChildHolding(*procs, targets)) {
      *json = ChildJson(*child, line);
      return kChild;
    }
    if (pipe != 0) {
      *line = target;
      *json = "{\"kind\":\"pipe\",\"inode\":" + std::to_string(pipe) + "}";
      return kPipe;
    }
    *json = SocketJson(sock, line);
    if (json->empty()) {
      *line = target;
      *json = "{\"kind\":\"socket\",\"protocol\":null,\"local\":null,\"peer\":null}";
    }
    return kSocket;
  }
  if (target[0] != '/') return kNothing;  // anon_inode:..., a deleted object
  FileInfo st;
  if (!StatFile(link.c_str(), -1, &st)) return kNothing;
  if (S_ISFIFO(st.mode)) {
    *line = "FIFO " + target;
    *json = "{\"kind\":\"fifo\",\"path\":\"" + JsonEscape(target) + "\"}";
    return kPipe;
  }
  const std::string fs = FsType(st.dev_major, st.dev_minor);
  *line = "file " + target + (fs.empty() ? std::string() : " (" + fs + ")");
  *json = "{\"kind\":\"file\",\"path\":\"" + JsonEscape(target) + "\",\"fsType\":" + JsonStringOrNull(fs) + "}";
  return kFile;
}

}  // namespace

std::string WaitingForJson(int fd, const std::string& syscall, std::string* line) {
  line->clear();
  std::vector<Proc> procs;
  bool scanned = false;
  std::string json;
  if (syscall == "wait4" || syscall == "waitid") {
    procs = Descendants();
    const Proc* youngest = nullptr;
    for (const Proc& p : procs) {
      if (p.depth == 1 && (youngest == nullptr || p.start_ticks >= youngest->start_ticks)) youngest = &p;
    }
    return youngest != nullptr ? ChildJson(*youngest, line) : std::string();
  }
  if (fd < 0) return std::string();
  const std::string target = Link("/proc/self/fd/" + std::to_string(fd));
  if (target != "anon_inode:[eventpoll]") {
    Resolve(fd, &procs, &scanned, &json, line);
    return json;
  }
  // An epoll set (execSync and spawnSync run a loop of their own): the most
  // telling of the descriptors it watches.
  const std::string info = ReadProcFile("/proc/self/fdinfo/" + std::to_string(fd), 1 << 20);
  Rank best = kNothing;
  size_t pos = 0;
  int looked = 0;
  while ((pos = info.find("tfd:", pos)) != std::string::npos && looked++ < 64) {
    pos += 4;
    const int tfd = atoi(info.c_str() + pos);
    std::string j, l;
    Rank rank = Resolve(tfd, &procs, &scanned, &j, &l);
    if (rank > best) {
      best = rank;
      json.swap(j);
      line->swap(l);
    }
    if (best == kChild) break;
  }
  return json;
}

}  // namespace pulse

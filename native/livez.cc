#include "livez.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmath>

#include "json_value.h"

namespace pulse {
namespace {

using T = JsonValue::Type;

// A record is a few hundred bytes; anything much larger is not one (probe.ts).
constexpr size_t kMaxRecordBytes = 64 * 1024;

// What the verdict needs of a stat.
struct FileStat {
  mode_t mode = 0;
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_sec = 0;
  int64_t mtime_nsec = 0;
};

// fstatat(dirfd, path, flags): on glibc through statx (2.28), since lstat and
// fstat bind to glibc 2.33 symbols (as native/pulse_file.cc does); musl has
// no symbol versions and statx only from 1.2.5, so fstatat there.
bool StatAt(int dirfd, const char* path, int flags, FileStat* out) {
#if defined(__GLIBC__)
  struct statx st;
  if (statx(dirfd, path, flags, STATX_TYPE | STATX_INO | STATX_SIZE | STATX_MTIME, &st) != 0) return false;
  out->mode = st.stx_mode;
  out->dev = (static_cast<uint64_t>(st.stx_dev_major) << 32) | st.stx_dev_minor;
  out->ino = st.stx_ino;
  out->size = st.stx_size;
  out->mtime_sec = st.stx_mtime.tv_sec;
  out->mtime_nsec = st.stx_mtime.tv_nsec;
#else
  struct stat st;
  if (fstatat(dirfd, path, &st, flags) != 0) return false;
  out->mode = st.st_mode;
  out->dev = st.st_dev;
  out->ino = st.st_ino;
  out->size = static_cast<uint64_t>(st.st_size);
  out->mtime_sec = st.st_mtim.tv_sec;
  out->mtime_nsec = st.st_mtim.tv_nsec;
#endif
  return true;
}

bool Lstat(const std::string& path, FileStat* out) { return StatAt(AT_FDCWD, path.c_str(), AT_SYMLINK_NOFOLLOW, out); }
bool Fstat(int fd, FileStat* out) { return StatAt(fd, "", AT_EMPTY_PATH, out); }

// Node's error code names for the errno values an open() may give.
const char* ErrnoName(int err) {
  switch (err) {
    case EACCES: return "EACCES";
    case EPERM: return "EPERM";
    case ELOOP: return "ELOOP";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case ENXIO: return "ENXIO";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOMEM: return "ENOMEM";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EINVAL: return "EINVAL";
    case EISDIR: return "EISDIR";
    case EAGAIN: return "EAGAIN";
    case EOVERFLOW: return "EOVERFLOW";
    case ETXTBSY: return "ETXTBSY";
    case EROFS: return "EROFS";
    default: return "EIO";
  }
}

bool IsString(const JsonValue* v) { return v != nullptr && v->type == T::kString; }
bool IsNumber(const JsonValue* v) { return v != nullptr && v->type == T::kNumber; }

// JavaScript truthiness of a member (absent is undefined: false).
bool Truthy(const JsonValue* v) {
  if (v == nullptr) return false;
  switch (v->type) {
    case T::kNull: return false;
    case T::kBool: return v->boolean;
    case T::kNumber: return v->number != 0 && !std::isnan(v->number);
    case T::kString: return !v->string.empty();
    default: return true;
  }
}

// `${value}` of a member that may be absent.
std::string Template(const JsonValue* v) { return v == nullptr ? "undefined" : JsToString(*v); }

// Math.round(x): halves go up.
double JsRound(double x) { return std::floor(x + 0.5); }

// probe.ts seconds(): "0.4 s", "315 s (5.3 min)", ...
std::string Seconds(double ms) {
  const double s = ms / 1000;
  const double a = std::fabs(s);
  if (a < 100) return ToFixed1(s) + " s";
  const std::string whole = JsNumber(JsRound(s) == 0 ? 0 : JsRound(s));
  if (a < 3600) return whole + " s (" + ToFixed1(s / 60) + " min)";
  if (a < 172800) return whole + " s (" + ToFixed1(s / 3600) + " h)";
  return whole + " s (" + ToFixed1(s / 86400) + " days)";
}

// Date.parse of the ISO times the records hold ("2026-11-25T13:14:15.123Z");
// false for anything else.
bool ParseIso(const std::string& text, double* ms) {
  int y, mo, d, h, mi, s, frac_len = 0;
  char frac[16] = {0};
  if (text.size() < 20 || text.back() != 'Z') return false;
  if (sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) != 6) return false;
  if (text.size() > 20) {
    if (text[19] != '.') return false;
    frac_len = static_cast<int>(text.size()) - 21;
    if (frac_len < 1 || frac_len > 9) return false;
    memcpy(frac, text.c_str() + 20, frac_len);
    for (int i = 0; i < frac_len; i++) {
      if (frac[i] < '0' || frac[i] > '9') return false;
    }
  }
  if (text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':') return false;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || s > 59) return false;
  struct tm tm = {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  const double secs = static_cast<double>(timegm(&tm));
  double millis = 0;
  for (int i = 0; i < frac_len && i < 3; i++) millis += (frac[i] - '0') * (i == 0 ? 100 : i == 1 ? 10 : 1);
  *ms = secs * 1000 + millis;
  return true;
}

std::string Ago(const JsonValue* iso, double now) {
  double t;
  if (!IsString(iso) || !ParseIso(iso->string, &t)) return std::string();
  return Seconds(now - t) + " ago";
}

std::string Hostname() {
  char name[256];
  if (gethostname(name, sizeof name) != 0) return std::string();
  name[sizeof name - 1] = 0;
  return name;
}

// probe.ts writerGone(): written on this host and its pid no longer exists.
bool WriterGone(const JsonValue& record) {
  const JsonValue* pid = record.Get("pid");
  if (!IsNumber(pid) || pid->number != std::floor(pid->number) || pid->number <= 0 ||
      pid->number > 2147483647.0) {
    return false;
  }
  const JsonValue* host = record.Get("hostname");
  if (IsString(host) && host->string != Hostname()) return false;
  if (kill(static_cast<pid_t>(pid->number), 0) == 0) return false;
  return errno == ESRCH;
}

std::string Writer(const JsonValue& record) {
  const JsonValue* pid = record.Get("pid");
  if (!IsNumber(pid)) return std::string();
  const std::string text = "pid " + JsNumber(pid->number);
  const JsonValue* host = record.Get("hostname");
  if (IsString(host) && host->string != Hostname()) return text + " on " + host->string;
  return WriterGone(record) ? text + ", no longer running" : text;
}

}  // namespace

const JsonValue* UserTopFrame(const JsonValue& diagnosis) {
  const JsonValue* stack = diagnosis.Get("stack");
  if (stack == nullptr || stack->type != T::kArray) return nullptr;
  for (const JsonValue& frame : stack->items) {
    const JsonValue* internal = frame.type == T::kObject ? frame.Get("internal") : nullptr;
    if (internal == nullptr || internal->type != T::kBool || !internal->boolean) return &frame;
  }
  return nullptr;
}

std::string OutsideJsText(const JsonValue& diagnosis) {
  const JsonValue* w = diagnosis.Get("waitingFor");
  if (w != nullptr && w->type == T::kObject) {
    // stall-text.ts waitingLine()
    const JsonValue* kind = w->Get("kind");
    const std::string k = IsString(kind) ? kind->string : std::string();
    auto text = [&](const char* key) {
      const JsonValue* v = w->Get(key);
      return v == nullptr || v->type == T::kNull ? std::string() : JsToString(*v);
    };
    std::string line;
    if (k == "child") {
      line = "child " + Template(w->Get("pid")) + ": " + text("command");
    } else if (k == "socket") {
      if (text("protocol") == "unix") {
        line = "socket unix " + text("local");
        while (!line.empty() && line.back() == ' ') line.pop_back();
      } else {
        const std::string peer = text("peer");
        line = "socket " + text("protocol") + " " + text("local") + (peer.empty() ? " (listening)" : " -> " + peer);
      }
    } else if (k == "pipe") {
      line = "pipe:[" + Template(w->Get("inode")) + "]";
    } else if (k == "fifo") {
      line = "FIFO " + Template(w->Get("path"));
    } else if (k == "file") {
      const std::string fs = text("fsType");
      line = "file " + Template(w->Get("path")) + (fs.empty() ? std::string() : " (" + fs + ")");
    }
    return "waiting for " + line;
  }
  const JsonValue* native = diagnosis.Get("nativeStack");
  if (native != nullptr && native->type == T::kArray && !native->items.empty() &&
      native->items[0].type == T::kObject) {
    // stall-text.ts nativeFrameLine()
    const JsonValue* symbol = native->items[0].Get("symbol");
    const std::string name = symbol == nullptr || symbol->type == T::kNull ? "<unknown>" : JsToString(*symbol);
    return "in " + name + " (" + Template(native->items[0].Get("module")) + ")";
  }
  return std::string();
}

namespace {

// stall-text.ts frameLine() after "at " became "in ", or outsideJsText().
std::string Innermost(const JsonValue& record) {
  const JsonValue* user = UserTopFrame(record);
  if (user == nullptr) {
    const std::string outside = OutsideJsText(record);
    return outside.empty() ? outside : " " + outside;
  }
  const JsonValue& top = *user;
  if (top.type != T::kObject && top.type != T::kArray) return std::string();
  const JsonValue* file = top.Get("file");
  const JsonValue* fn = top.Get("function");
  const std::string where = (Truthy(file) ? Template(file) : std::string("<unknown>")) + ":" +
                            Template(top.Get("line")) + ":" + Template(top.Get("column"));
  return " in " + (Truthy(fn) ? Template(fn) : std::string("<anonymous>")) + " (" + where + ")";
}

// stall-text.ts threadLine().
std::string ThreadLine(const JsonValue& view) {
  const JsonValue* state = view.Get("state");
  std::string out = state == nullptr || state->type == T::kNull ? "state unknown" : JsToString(*state);
  const JsonValue* syscall = view.Get("syscall");
  if (Truthy(syscall)) out += " in " + JsToString(*syscall);
  const JsonValue* fd = view.Get("fd");
  if (fd == nullptr || fd->type != T::kNull) {
    const JsonValue* target = view.Get("fdTarget");
    out += " on fd " + Template(fd) + (Truthy(target) ? " (" + JsToString(*target) + ")" : std::string());
  }
  const JsonValue* cpu = view.Get("cpuPercent");
  if (IsNumber(cpu)) out += ", " + ToFixed1(cpu->number) + "% CPU";
  const JsonValue* wchan = view.Get("wchan");
  if (!Truthy(syscall) && Truthy(wchan)) out += ", wchan " + JsToString(*wchan);
  return out;
}

// probe.ts diagnosisText().
std::string DiagnosisText(const JsonValue& record) {
  std::string out;
  const JsonValue* thread = record.Get("thread");
  if (thread != nullptr && (thread->type == T::kObject || thread->type == T::kArray)) {
    out += "; thread " + ThreadLine(*thread);
  }
  const JsonValue* active = record.Get("active");
  if (active != nullptr && active->type == T::kArray) {
    std::string names;
    for (size_t i = 0; i < active->items.size(); i++) {
      if (i) names += ", ";
      const JsonValue* label = active->items[i].Get("label");
      if (label != nullptr && label->type != T::kNull) names += Template(label);
    }
    out += "; active: " + (names.empty() ? std::string("none") : names);
  }
  return out;
}

enum class ReadKind { kRecord, kNone, kErrno, kReplaced };

// probe.ts readRecord().
ReadKind ReadRecord(const std::string& file, const FileStat& st, JsonValue* record, std::string* code) {
  const int fd = open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    *code = ErrnoName(errno);
    return ReadKind::kErrno;
  }
  ReadKind kind = ReadKind::kNone;
  FileStat again;
  if (Fstat(fd, &again) && S_ISREG(again.mode)) {
    if (again.ino != st.ino || again.dev != st.dev) {
      kind = ReadKind::kReplaced;
    } else {
      const size_t want = again.size < kMaxRecordBytes + 1 ? static_cast<size_t>(again.size) : kMaxRecordBytes + 1;
      std::string text(want, '\0');
      const ssize_t n = pread(fd, &text[0], want, 0);
      if (n >= 0 && static_cast<size_t>(n) <= kMaxRecordBytes) {
        text.resize(static_cast<size_t>(n));
        if (ParseJson(text, record) && record->type == T::kObject) kind = ReadKind::kRecord;
      }
    }
  }
  close(fd);
  return kind;
}

struct Explained {
  std::string state;
  std::string reason;
};

// probe.ts explain().
Explained Explain(bool ok, double age, double max_age, ReadKind kind, const JsonValue& record,
                  const std::string& code, double now) {
  if (kind == ReadKind::kErrno) {
    return {"no-record", "the record cannot be read (" + code + "); the mtime alone decides"};
  }
  if (kind != ReadKind::kRecord) {
    return {"no-record",
            "the file holds no pulse record (it was not written by celery-pulse-native, or was emptied)"};
  }
  const std::string by = Writer(record);
  const std::string paren = by.empty() ? std::string() : " (" + by + ")";
  const std::string written = Ago(record.Get("updatedAt"), now);
  const JsonValue* state = record.Get("state");
  const JsonValue* message = record.Get("message");
  const std::string s = IsString(state) ? state->string : std::string();
  if (s == "stalled") {
    const JsonValue* since = record.Get("stalledSince");
    const JsonValue* silent = record.Get("loopSilentMs");
    const std::string head = IsString(since) ? "stalled since " + since->string : "stalled";
    const std::string silent_text =
        IsNumber(silent) ? ", event loop silent for " + Seconds(silent->number) : std::string();
    const std::string when = written.empty() ? std::string() : " as of " + written;
    const std::string tail =
        ok ? "; beats withheld, the file goes stale in " + Seconds(max_age - age) : "; beats withheld";
    return {"stalled", head + silent_text + Innermost(record) + when + DiagnosisText(record) + tail + paren};
  }
  if (s == "unhealthy") {
    const std::string text = IsString(message) ? message->string : "a health check fails; beats withheld";
    const std::string when = written.empty() ? std::string() : " (as of " + written + ")";
    const std::string tail = ok ? "; the file goes stale in " + Seconds(max_age - age) : std::string();
    return {"unhealthy", text + when + tail + paren};
  }
  if (s == "stopped") {
    return {"stopped", "the pulse was " + (IsString(message) ? message->string : std::string("stopped")) + paren};
  }
  if (s == "running") {
    if (ok) {
      const std::string note =
          IsString(message) && message->string != "started" ? ": " + message->string : std::string();
      return {"running", "running" + note + paren};
    }
    const std::string gone = ", no longer running";
    if (by.size() >= gone.size() && by.compare(by.size() - gone.size(), gone.size(), gone) == 0) {
      return {"running", "the record says running, but its process is gone: it died without stopping its pulse" + paren};
    }
    return {"running", "the record says running, but no beat for " + Seconds(age) +
                           ": the process was killed or frozen, or cannot write the file" + paren};
  }
  return {"no-record", "the file holds no pulse record (state " +
                           (state == nullptr ? std::string("undefined") : JsonStringify(*state)) + ")"};
}

const char* FileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

}  // namespace

std::string ToFixed1(double value) {
  // toFixed picks the nearer of two neighbours and, on an exact tie, the one
  // away from zero; printf's %.1f rounds an exact tie to even. Ties are exact
  // only for quarters (x.25, x.75), so those are settled here.
  const double a = std::fabs(value);
  const double tenths = a * 10;
  char buf[64];
  if (a < 1e15 && a * 4 == std::floor(a * 4) && tenths - std::floor(tenths) == 0.5) {
    snprintf(buf, sizeof buf, "%s%.1f", value < 0 ? "-" : "", (std::floor(tenths) + 1) / 10);
  } else {
    snprintf(buf, sizeof buf, "%.1f", value);
  }
  // (-0.04).toFixed(1) is "-0.0"; printf agrees. (-0).toFixed(1) is "0.0".
  if (value == 0) return "0.0";
  return buf;
}

bool ParseMaxAge(const std::string& text, double* seconds) {
  // parseSeconds(): trimmed, then /^\+?(\d+(\.\d*)?|\.\d+)(e[+-]?\d+)?$/i.
  size_t b = 0, e = text.size();
  while (b < e && isspace(static_cast<unsigned char>(text[b]))) b++;
  while (e > b && isspace(static_cast<unsigned char>(text[e - 1]))) e--;
  const std::string t = text.substr(b, e - b);
  size_t i = 0;
  if (i < t.size() && t[i] == '+') i++;
  size_t digits = 0;
  while (i < t.size() && isdigit(static_cast<unsigned char>(t[i]))) i++, digits++;
  size_t fraction = 0;
  if (i < t.size() && t[i] == '.') {
    i++;
    while (i < t.size() && isdigit(static_cast<unsigned char>(t[i]))) i++, fraction++;
    if (digits == 0 && fraction == 0) return false;
  } else if (digits == 0) {
    return false;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    i++;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) i++;
    size_t exp = 0;
    while (i < t.size() && isdigit(static_cast<unsigned char>(t[i]))) i++, exp++;
    if (exp == 0) return false;
  }
  if (i != t.size()) return false;
  const double value = strtod(t.c_str(), nullptr);
  if (std::isnan(value) || value < 0.01 || value > 86400) return false;
  *seconds = value;
  return true;
}

std::string ReadRecordText(const std::string& file) {
  const int fd = open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return std::string();
  std::string text;
  FileStat st;
  if (Fstat(fd, &st) && S_ISREG(st.mode)) {
    char buf[8192];
    for (;;) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      text.append(buf, static_cast<size_t>(n));
      if (text.size() > kMaxRecordBytes) {
        text.clear();
        break;
      }
    }
  }
  close(fd);
  return text;
}

Verdict CheckFile(const std::string& file, int64_t max_age_ms, int64_t now_ms) {
  const double max_age = static_cast<double>(max_age_ms);
  const double now = static_cast<double>(now_ms);
  Verdict v;
  auto fail = [&](const char* word, const std::string& reason) {
    v.ok = false;
    v.line = std::string(word) + ": " + file + ": " + reason + "\n";
    return v;
  };
  FileStat st;
  JsonValue record;
  std::string code;
  ReadKind kind = ReadKind::kNone;
  for (int attempt = 1;; attempt++) {
    if (!Lstat(file, &st)) {
      const int err = errno;
      if (err == ENOENT) {
        return fail("missing", "no such file: the pulse has not started, or was stopped with removeOnStop");
      }
      if (err == ENOTDIR) return fail("missing", "no such file: a parent in its path is not a directory");
      return fail("unusable", std::string("cannot inspect the file (") + ErrnoName(err) + ")");
    }
    if (S_ISLNK(st.mode)) {
      return fail("unusable", "the path is a symbolic link; the probe never follows links, nor does the pulse");
    }
    if (!S_ISREG(st.mode)) {
      return fail("unusable", std::string("the path is ") + FileKind(st.mode) + ", not a regular file");
    }
    record = JsonValue();
    kind = ReadRecord(file, st, &record, &code);
    if (kind != ReadKind::kReplaced || attempt == 3) break;
  }
  // Node's mtimeMs: seconds x 1000 + nanoseconds / 1e6, as a double.
  const double mtime_ms = static_cast<double>(st.mtime_sec) * 1000 + static_cast<double>(st.mtime_nsec) / 1e6;
  const double age = JsRound(now - mtime_ms);
  v.ok = age <= max_age;
  const Explained why = Explain(v.ok, age, max_age, kind, record, code, now);
  const bool gone = !v.ok && kind == ReadKind::kRecord && WriterGone(record);
  const char* word = v.ok ? "fresh" : gone ? "gone" : why.state == "missing" ? "missing" : "stale";
  const std::string age_text =
      age < 0 ? "age " + Seconds(age) + " (mtime in the future) <= max-age " + Seconds(max_age)
              : "age " + Seconds(age) + (v.ok ? " <= " : " > ") + "max-age " + Seconds(max_age);
  v.line = std::string(word) + ": " + file + " " + age_text + ": " + why.reason + "\n";
  return v;
}

}  // namespace pulse

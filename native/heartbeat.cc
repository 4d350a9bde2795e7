// First, so the glibc symbol pins apply to every pthread call below.
#include "glibc_floor.h"

#include "heartbeat.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include <set>

namespace pulse {
namespace {

constexpr int64_t kNsPerSec = 1000000000;
constexpr int64_t kNsPerMs = 1000000;
// The thread needs a few KB; musl's default (128 KB) and glibc's (8 MB of
// address space) are both set aside for an explicit, small size.
constexpr size_t kStackSize = 256 * 1024;

// Guards *claimed_files. Plain POD so nothing runs at process exit.
pthread_mutex_t claimed_mutex = PTHREAD_MUTEX_INITIALIZER;
// Files pulsed by this process: a heap object, not a static one, so no
// exit-time destructor can race a worker's cleanup hook; freed when the last
// claim goes, since Node unloads the addon once no environment uses it and a
// set left behind would leak. Touched only by JS threads, never the beat.
std::set<std::string>* claimed_files = nullptr;

int64_t ClockNs(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * kNsPerSec + ts.tv_nsec;
}

// "2026-11-25T13:14:15.123Z"
std::string Iso(int64_t wall_ns) {
  time_t secs = static_cast<time_t>(wall_ns / kNsPerSec);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
           tm.tm_sec, static_cast<int>((wall_ns % kNsPerSec) / kNsPerMs));
  return buf;
}

std::string Seconds(int64_t ns) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ns) / kNsPerSec);
  return buf;
}

// A JSON string literal's content: the message may carry text from JS (a
// health check's error), so quotes, backslashes and control bytes are escaped.
std::string JsonEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string TmpPath(const std::string& path) {
  static std::atomic<unsigned> next_id{0};  // unique per pulse in this process
  size_t slash = path.find_last_of('/');
  char suffix[48];
  snprintf(suffix, sizeof suffix, ".%ld.%u.tmp", static_cast<long>(getpid()),
           next_id.fetch_add(1));
  return path.substr(0, slash + 1) + "." + path.substr(slash + 1) + suffix;
}

}  // namespace

int64_t MonotonicNs() { return ClockNs(CLOCK_MONOTONIC); }
int64_t WallNs() { return ClockNs(CLOCK_REALTIME); }

bool ClaimFile(const std::string& key) {
  pthread_mutex_lock(&claimed_mutex);
  if (claimed_files == nullptr) claimed_files = new std::set<std::string>();
  bool inserted = claimed_files->insert(key).second;
  pthread_mutex_unlock(&claimed_mutex);
  return inserted;
}

void ReleaseFile(const std::string& key) {
  pthread_mutex_lock(&claimed_mutex);
  if (claimed_files != nullptr) {
    claimed_files->erase(key);
    if (claimed_files->empty()) {
      delete claimed_files;
      claimed_files = nullptr;
    }
  }
  pthread_mutex_unlock(&claimed_mutex);
}

Heartbeat::Heartbeat(Config config)
    : config_(std::move(config)), tmp_path_(TmpPath(config_.path)) {
  pthread_mutex_init(&mutex_, nullptr);
  pthread_mutex_init(&veto_mutex_, nullptr);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&wake_, &attr);
  pthread_condattr_destroy(&attr);
}

Heartbeat::~Heartbeat() {
  Stop(false);
  pthread_cond_destroy(&wake_);
  pthread_mutex_destroy(&mutex_);
  pthread_mutex_destroy(&veto_mutex_);
}

std::string Heartbeat::Record(const char* state, const std::string& message,
                              int64_t wall_ns, int64_t last_beat_ns,
                              const std::string& extra_fields) const {
  std::string out = "{\"state\":\"";
  out += state;
  out += "\",\"message\":\"" + JsonEscape(message) + "\",\"updatedAt\":\"" + Iso(wall_ns) +
         "\",\"lastBeatAt\":";
  out += last_beat_ns ? "\"" + Iso(last_beat_ns) + "\"" : std::string("null");
  if (state == std::string("stalled")) {
    out += ",\"stalledSince\":\"" + Iso(stalled_since_wall_ns_) + "\"";
  }
  out += ",\"loopSilentMs\":" +
         std::to_string((MonotonicNs() - last_answer_mono_ns_.load()) / kNsPerMs);
  if (!extra_fields.empty()) out += "," + extra_fields;
  if (!config_.static_fields.empty()) out += "," + config_.static_fields;
  out += "}\n";
  return out;
}

void Heartbeat::Report(const FileResult& result, int64_t wall_ns) {
  if (result.ok()) {
    last_errno_.store(0);
    return;
  }
  errors_.fetch_add(1);
  last_error_op_.store(static_cast<int>(result.op));
  last_error_wall_ns_.store(wall_ns);
  last_errno_.store(result.err);
}

FileResult Heartbeat::Start() {
  FileResult result = MakeParents(config_.path);
  if (!result.ok()) return result;
  result = CanonicalKey(config_.path, &key_);
  if (!result.ok()) return result;
  if (!ClaimFile(key_)) return FileResult{EEXIST, FileOp::kNone};
  result = InspectTarget(config_.path);
  int64_t wall = WallNs();
  start_mono_ns_ = MonotonicNs();
  last_answer_mono_ns_.store(start_mono_ns_);
  if (result.ok()) {
    result = WriteRecord(config_.path, tmp_path_,
                         Record("running", "started", wall, wall), wall);
  }
  if (!result.ok()) {
    ReleaseFile(key_);
    return result;
  }
  beats_.store(1);
  last_beat_wall_ns_.store(wall);

  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, kStackSize);
  // Block every signal in the new thread so Node's threads keep receiving them.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &previous);
  int err = pthread_create(&thread_, &attr, ThreadMain, this);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    ReleaseFile(key_);
    return FileResult{err, FileOp::kNone};
  }
  started_ = true;
  return FileResult{};
}

void Heartbeat::Answer() { last_answer_mono_ns_.store(MonotonicNs()); }

void Heartbeat::SetVeto(const std::string& message, const std::string& fields) {
  // Copies are made before taking the lock, so it is held only for the swap.
  std::string new_message = message;
  std::string new_fields = fields;
  pthread_mutex_lock(&veto_mutex_);
  veto_message_.swap(new_message);
  veto_fields_.swap(new_fields);
  pthread_mutex_unlock(&veto_mutex_);
}

void Heartbeat::Stop(bool remove) {
  if (!started_ || stopped_) return;
  stopped_ = true;
  pthread_mutex_lock(&mutex_);
  stop_requested_ = true;
  pthread_cond_signal(&wake_);
  pthread_mutex_unlock(&mutex_);
  pthread_join(thread_, nullptr);

  int64_t wall = WallNs();
  // Something other than a regular file planted at the path is left as found.
  bool missing = false;
  if (InspectTarget(config_.path, &missing).ok()) {
    if (remove) {
      if (!missing) Remove(config_.path);
    } else {
      // The mtime stays at the last beat: a stopped process is not fresh.
      WriteRecord(config_.path, tmp_path_, Record("stopped", "stopped at " + Iso(wall), wall,
                         last_beat_wall_ns_.load()),
                  KeptMtime());
    }
  }
  ReleaseFile(key_);
}

Snapshot Heartbeat::Read() const {
  Snapshot s;
  s.beats = beats_.load();
  s.withheld = withheld_.load();
  s.vetoed = vetoed_.load();
  s.errors = errors_.load();
  s.last_beat_wall_ns = last_beat_wall_ns_.load();
  s.loop_silent_ns = MonotonicNs() - last_answer_mono_ns_.load();
  s.stalled = stalled_.load();
  s.running = started_ && !stopped_;
  s.last_errno = last_errno_.load();
  s.last_error_op = static_cast<FileOp>(last_error_op_.load());
  s.last_error_wall_ns = last_error_wall_ns_.load();
  return s;
}

void* Heartbeat::ThreadMain(void* self) {
  static_cast<Heartbeat*>(self)->Run();
  return nullptr;
}

void Heartbeat::Run() {
  const int64_t interval = config_.interval_ns;
  int64_t k = 1;  // deadline k is start + k * interval: beats never drift
  pthread_mutex_lock(&mutex_);
  for (;;) {
    const int64_t deadline = start_mono_ns_ + k * interval;
    timespec abs = {static_cast<time_t>(deadline / kNsPerSec),
                    static_cast<long>(deadline % kNsPerSec)};
    while (!stop_requested_ && MonotonicNs() < deadline) {
      pthread_cond_timedwait(&wake_, &mutex_, &abs);
    }
    if (stop_requested_) break;
    pthread_mutex_unlock(&mutex_);  // never hold the lock across file I/O

    const int64_t now = MonotonicNs();
    Tick(now);
    // Deadlines missed while the process was frozen (SIGSTOP) are skipped,
    // not replayed in a burst.
    const int64_t next = (now - start_mono_ns_) / interval + 1;
    k = next > k + 1 ? next : k + 1;

    pthread_mutex_lock(&mutex_);
  }
  pthread_mutex_unlock(&mutex_);
}

int64_t Heartbeat::KeptMtime() const {
  const int64_t last_beat = last_beat_wall_ns_.load();
  const int64_t current = MtimeNs(config_.path);
  return current > last_beat ? current : last_beat;
}

void Heartbeat::WriteWithheld(const char* state, const std::string& message,
                              const std::string& extra_fields, int64_t wall_ns) {
  withheld_.fetch_add(1);
  const int64_t last_beat = last_beat_wall_ns_.load();
  // A directory, FIFO, socket, device or symlink planted at the path is a
  // fault, left as found: no record is renamed over it.
  FileResult result = InspectTarget(config_.path);
  if (result.ok()) {
    result = WriteRecord(config_.path, tmp_path_,
                         Record(state, message, wall_ns, last_beat, extra_fields), KeptMtime());
  }
  if (result.ok()) {
    record_says_ = state == std::string("stalled") ? Said::kStalled : Said::kUnhealthy;
  }
  Report(result, wall_ns);
}

void Heartbeat::Tick(int64_t now_mono) {
  const int64_t wall = WallNs();
  const int64_t silent = now_mono - last_answer_mono_ns_.load();
  const bool answering = config_.max_stall_ns < 0 || silent <= config_.max_stall_ns;

  if (!answering) {
    // A silent loop outranks a failing health check: the check cannot run
    // while the loop is stuck, so its verdict would be stale.
    if (!stalled_.load()) {
      stalled_since_wall_ns_ = wall - silent;
      stalled_.store(true);
    }
    // Say why, keeping the mtime at the last good beat: nothing fresh.
    WriteWithheld("stalled",
                  "stalled since " + Iso(stalled_since_wall_ns_) +
                      ", loop silent for " + Seconds(silent) + "; beats withheld",
                  std::string(), wall);
    return;
  }
  stalled_.store(false);

  // The loop answers; the health check (if any) may still veto the beat.
  std::string veto_message;
  std::string veto_fields;
  pthread_mutex_lock(&veto_mutex_);
  if (!veto_message_.empty()) {
    veto_message = veto_message_;
    veto_fields = veto_fields_;
  }
  pthread_mutex_unlock(&veto_mutex_);
  if (!veto_message.empty()) {
    vetoed_.fetch_add(1);
    WriteWithheld("unhealthy", veto_message, veto_fields, wall);
    return;
  }

  // Look before the beat: a directory, FIFO, socket, device or symlink that
  // appeared at the path after start is a fault, left exactly as found (its
  // times are not set, no record is renamed over it). Nothing is followed in
  // between either: the writes and the touch refuse links too.
  bool missing = false;
  FileResult result = InspectTarget(config_.path, &missing);
  if (result.ok()) {
    bool beaten = false;
    if (missing || record_says_ != Said::kRunning) {
      // Deleted: re-create it (never its directory). Or beats resume: a
      // fresh record. Either write is also this beat.
      std::string message =
          missing ? std::string("re-created after deletion")
          : record_says_ == Said::kStalled
              ? "event loop answering again since " + Iso(wall) +
                    " after a stall that began " + Iso(stalled_since_wall_ns_)
              : "health check passing again since " + Iso(wall);
      result = WriteRecord(config_.path, tmp_path_,
                           Record("running", message, wall, wall), wall);
      beaten = result.ok();
      if (beaten) record_says_ = Said::kRunning;
    }
    if (!beaten && !missing) {
      result = Touch(config_.path, wall);
      if (result.err == ENOENT) {
        // Deleted between the look and the touch.
        result = WriteRecord(
            config_.path, tmp_path_,
            Record("running", "re-created after deletion", wall, wall), wall);
      }
    }
  }
  Report(result, wall);
  if (result.ok()) {
    beats_.fetch_add(1);
    last_beat_wall_ns_.store(wall);
  }
}

}  // namespace pulse

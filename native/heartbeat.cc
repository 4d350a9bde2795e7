// First, so the glibc symbol pins apply to every pthread call below.
#include "glibc_floor.h"

#include "heartbeat.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <vector>

#include "json.h"
#include "quiet_thread.h"
#include "waiting_for.h"

namespace pulse {
namespace {

constexpr int64_t kNsPerSec = 1000000000;
constexpr int64_t kNsPerMs = 1000000;
// The thread needs a few KB; musl's default (128 KB) and glibc's (8 MB of
// address space) are both set aside for an explicit, small size.
constexpr size_t kStackSize = 256 * 1024;
// While a stall lasts, its diagnosis is taken again at most this often (and
// at most once per interval).
constexpr int64_t kRediagnoseNs = 5 * kNsPerSec;
// track() labels listed in a record, oldest first.
constexpr size_t kMaxActive = 16;
// A log block larger than this would not be written to a pipe atomically.
constexpr size_t kMaxLogBytes = 4096;
// Frames of the stack shown in the log block, and kept in lastStall.
constexpr int kLogFrames = 10;
constexpr int kTopFrames = 5;
// The longest wait for the stuck thread's stack (and at most interval / 2).
constexpr int64_t kStackWaitMs = 200;
// Waking later than this after a deadline means the thread could not run:
// the process was frozen (or starved), and the loop is given a fresh chance.
constexpr int64_t kLateNs = 50 * kNsPerMs;
// The fresh chance: the loop's ping period (min(1 s, maxStall / 4), as
// pingIntervalMs() in src/contract/options.ts) plus this much, polled this often.
constexpr int64_t kChanceSlackNs = 250 * kNsPerMs;
constexpr int64_t kChancePollNs = 5 * kNsPerMs;

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

std::string Seconds(int64_t ns) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ns) / kNsPerSec);
  return buf;
}

double CpuPercent(int64_t cpu_ns, int64_t wall_ns) {
  if (cpu_ns < 0 || wall_ns <= 0) return -1;
  double pct = 100.0 * static_cast<double>(cpu_ns) / static_cast<double>(wall_ns);
  return pct > 100.0 ? 100.0 : pct;
}

std::string TmpPath(const std::string& path) {
  static std::atomic<unsigned> next_id{0};  // unique per pulse in this process
  size_t slash = path.find_last_of('/');
  char suffix[48];
  snprintf(suffix, sizeof suffix, ".%ld.%u.tmp", static_cast<long>(getpid()),
           next_id.fetch_add(1));
  return path.substr(0, slash + 1) + "." + path.substr(slash + 1) + suffix;
}

// The scheduler's slice this thread asks for (Linux 6.12+, EEVDF): a beat is
// tens of microseconds of work, and a task with a slice shorter than the
// running one's preempts it on waking, so a deadline is not kept waiting
// behind a busy thread's whole slice. No privilege is needed; older kernels
// refuse or ignore it, and the beat works as before.
constexpr uint64_t kSliceNs = 100 * 1000;  // the least the kernel accepts

// struct sched_attr (glibc has no wrapper before 2.41): its first version.
struct SchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
};

// Named for `top -H` and `ps -L`; asks for the short slice.
void SetUpBeatThread() {
  prctl(PR_SET_NAME, "pulse-beat");
#ifdef SYS_sched_setattr
  SchedAttr attr = {};
  attr.size = sizeof(attr);
  // The thread's own policy and nice, with the slice: nothing else changes.
  if (syscall(SYS_sched_getattr, 0, &attr, sizeof(attr), 0) != 0 || attr.sched_policy != SCHED_OTHER) return;
  attr.size = sizeof(attr);
  attr.sched_flags = 0;
  attr.sched_runtime = kSliceNs;
  syscall(SYS_sched_setattr, 0, &attr, 0);
#endif
}

}  // namespace

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

// The JS side asks the loop every min(1 s, maxStall / 4), at least 1 ms
// (pingIntervalMs() in src/contract/options.ts).
static int64_t PingNs(int64_t max_stall_ns) {
  if (max_stall_ns < 0) return kNsPerSec;
  const int64_t quarter = max_stall_ns / 4;
  return quarter > kNsPerSec ? kNsPerSec : quarter < kNsPerMs ? kNsPerMs : quarter;
}

Heartbeat::Heartbeat(Config config)
    : config_(std::move(config)), tmp_path_(TmpPath(config_.path)), ping_ns_(PingNs(config_.max_stall_ns)) {
  pthread_mutex_init(&mutex_, nullptr);
  pthread_mutex_init(&veto_mutex_, nullptr);
  pthread_mutex_init(&diag_mutex_, nullptr);
  pthread_mutex_init(&notes_mutex_, nullptr);
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&wake_, &attr);
  pthread_condattr_destroy(&attr);
}

Heartbeat::~Heartbeat() {
  Stop(false);
  ReleaseStack();
  ReleaseSyscallTable(config_.syscalls);
  pthread_cond_destroy(&wake_);
  pthread_mutex_destroy(&mutex_);
  pthread_mutex_destroy(&veto_mutex_);
  pthread_mutex_destroy(&diag_mutex_);
  pthread_mutex_destroy(&notes_mutex_);
}

std::string Heartbeat::Record(const char* state, const std::string& message,
                              int64_t wall_ns, int64_t last_beat_ns,
                              const std::string& extra_fields) const {
  std::string out = "{\"state\":\"";
  out += state;
  out += "\",\"message\":\"" + JsonEscape(message) + "\",\"updatedAt\":\"" + Iso(wall_ns) +
         "\",\"lastBeatAt\":";
  out += last_beat_ns ? "\"" + Iso(last_beat_ns) + "\"" : std::string("null");
  if (state == std::string("stalled") || state == std::string("exited")) {
    out += ",\"stalledSince\":\"" + Iso(stalled_since_wall_ns_) + "\"";
  }
  out += ",\"loopSilentMs\":" +
         std::to_string((MonotonicNs() - last_answer_mono_ns_.load()) / kNsPerMs);
  if (!extra_fields.empty()) out += "," + extra_fields;
  if (!last_stall_json_.empty()) out += ",\"lastStall\":" + last_stall_json_;
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
  owner_tid_ = CurrentTid();
  cpu_sample_mono_ns_ = start_mono_ns_;
  cpu_sample_ns_ = ThreadCpuNs(owner_tid_);
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
  NotifyOpen();

  const int err = StartQuietThread(&thread_, kStackSize, ThreadMain, this);
  if (err != 0) {
    ReleaseFile(key_);
    return FileResult{err, FileOp::kNone};
  }
  started_ = true;
  return FileResult{};
}

void Heartbeat::Answer() {
  const int64_t now = MonotonicNs();
  loop_delay_.Observe(now - last_answer_mono_ns_.exchange(now) - ping_ns_);
}

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
  NotifyStopped();

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
  ReleaseStack();
}

void Heartbeat::ReleaseStack() {
  // After the join, or before the thread ever started: no capture can run.
  if (stack_released_ || config_.stack_api == nullptr) return;
  stack_released_ = true;
  config_.stack_api->release(config_.stack_ctx);
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
  s.notify_sent = notify_sent_.load();
  s.notify_errno = notify_errno_.load();
  s.notify_error_wall_ns = notify_error_wall_ns_.load();
  s.stalls = stalls_.load();
  // The pair as the heartbeat thread last left it (a few tries; its writes
  // take nanoseconds). An ongoing stall counts up to now, or up to the loop's
  // answer once it came, as EndStall() will.
  int64_t ended = 0, began = 0;
  for (int tries = 0; tries < 1000; tries++) {
    const uint32_t gen = stall_gen_.load();
    ended = stall_ns_ended_.load();
    began = stall_began_mono_ns_.load();
    if ((gen & 1) == 0 && stall_gen_.load() == gen) break;
  }
  const int64_t answered = last_answer_mono_ns_.load();
  s.stall_ns = ended + (began != 0 ? (answered > began ? answered : MonotonicNs()) - began : 0);
  return s;
}

void* Heartbeat::ThreadMain(void* self) {
  static_cast<Heartbeat*>(self)->Run();
  return nullptr;
}

void Heartbeat::Run() {
  SetUpBeatThread();
  const int64_t interval = config_.interval_ns;
  int64_t k = 1;  // deadline k is start + k * interval: beats never drift
  pthread_mutex_lock(&mutex_);
  for (;;) {
    const int64_t deadline = start_mono_ns_ + k * interval;
    const int64_t wake = NextWake(deadline);  // a watchdog ping may come first
    timespec abs = {static_cast<time_t>(wake / kNsPerSec),
                    static_cast<long>(wake % kNsPerSec)};
    while (!stop_requested_ && MonotonicNs() < wake) {
      pthread_cond_timedwait(&wake_, &mutex_, &abs);
    }
    if (stop_requested_) break;
    const int64_t woke = MonotonicNs();
    if (woke - deadline > kLateNs && !GiveLoopAChance(woke, woke - deadline)) break;
    pthread_mutex_unlock(&mutex_);  // never hold the lock across file I/O

    const int64_t now = MonotonicNs();
    if (now < deadline) {
      PingBetween(now);
      pthread_mutex_lock(&mutex_);
      continue;
    }
    Tick(now);
    // Deadlines missed while the process was frozen (SIGSTOP) are skipped,
    // not replayed in a burst.
    const int64_t next = (now - start_mono_ns_) / interval + 1;
    k = next > k + 1 ? next : k + 1;

    pthread_mutex_lock(&mutex_);
  }
  pthread_mutex_unlock(&mutex_);
}

bool Heartbeat::GiveLoopAChance(int64_t woke, int64_t late) {
  // Without a gate, or in a stall already seen, only a real answer counts.
  if (config_.max_stall_ns < 0 || stalled_.load()) return true;
  int64_t ping = config_.max_stall_ns / 4;
  if (ping > kNsPerSec) ping = kNsPerSec;
  const int64_t until = woke + ping + kChanceSlackNs;
  // A frozen loop's overdue ping timer fires as soon as the process thaws.
  while (!stop_requested_ && last_answer_mono_ns_.load() < woke) {
    int64_t t = MonotonicNs();
    if (t >= until) break;
    t += kChancePollNs < until - t ? kChancePollNs : until - t;
    timespec abs = {static_cast<time_t>(t / kNsPerSec), static_cast<long>(t % kNsPerSec)};
    pthread_cond_timedwait(&wake_, &mutex_, &abs);
  }
  if (stop_requested_) return false;
  const int64_t answered = last_answer_mono_ns_.load();
  if (answered >= woke) return true;  // it answered: nothing to credit
  // Still silent: the late time is the freeze's, not the loop's; what the
  // loop did before the freeze and since the thaw is judged as usual.
  if (answered != freeze_answer_mono_ns_) {
    freeze_answer_mono_ns_ = answered;
    freeze_credit_ns_ = 0;
  }
  freeze_credit_ns_ += late;
  return true;
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
  // What the record should say from now on; written again at each deadline
  // while it is not on disk.
  record_says_ = state == std::string("stalled") ? Said::kStalled : Said::kUnhealthy;
  record_stale_ = !result.ok();
  Report(result, wall_ns);
}

uint64_t Heartbeat::TrackBegin(const std::string& label) {
  Active entry{label, WallNs()};
  pthread_mutex_lock(&notes_mutex_);
  uint64_t id = next_track_id_++;
  active_.emplace(id, std::move(entry));
  pthread_mutex_unlock(&notes_mutex_);
  return id;
}

void Heartbeat::TrackEnd(uint64_t id) {
  pthread_mutex_lock(&notes_mutex_);
  auto it = active_.find(id);
  // The label is freed outside the lock.
  Active gone;
  if (it != active_.end()) {
    gone = std::move(it->second);
    active_.erase(it);
  }
  pthread_mutex_unlock(&notes_mutex_);
}

void Heartbeat::ExpectStall(int64_t ns, const std::string& reason) {
  std::string copy = reason;
  pthread_mutex_lock(&notes_mutex_);
  expect_reason_.swap(copy);
  expect_ns_ = ns;
  pthread_mutex_unlock(&notes_mutex_);
  expect_until_mono_ns_.store(MonotonicNs() + ns);
}

std::string Heartbeat::StallJson() const {
  pthread_mutex_lock(&diag_mutex_);
  std::string out = stall_json_;
  pthread_mutex_unlock(&diag_mutex_);
  return out;
}

std::string Heartbeat::LastStallJson() const {
  pthread_mutex_lock(&diag_mutex_);
  std::string out = last_stall_json_;
  pthread_mutex_unlock(&diag_mutex_);
  return out;
}

size_t Heartbeat::ActiveCount() const {
  pthread_mutex_lock(&notes_mutex_);
  const size_t n = active_.size();
  pthread_mutex_unlock(&notes_mutex_);
  return n;
}

// [{"label":"job x","since":"..."}], oldest first; *line: "job x, job y" or "none".
std::string Heartbeat::ActiveJson(std::string* line) const {
  std::string json = "[";
  line->clear();
  size_t n = 0;
  pthread_mutex_lock(&notes_mutex_);
  for (const auto& entry : active_) {
    if (n == kMaxActive) break;
    if (n++ > 0) {
      json += ",";
      *line += ", ";
    }
    json += "{\"label\":\"" + JsonEscape(entry.second.label) + "\",\"since\":\"" +
            Iso(entry.second.since_wall_ns) + "\"}";
    *line += entry.second.label;
  }
  const size_t more = active_.size() - n;
  pthread_mutex_unlock(&notes_mutex_);
  if (more > 0) *line += " and " + std::to_string(more) + " more";
  if (line->empty()) *line = "none";
  return json + "]";
}

// Never blocks the heartbeat: a pipe is written through a non-blocking
// descriptor of its own (the process's fd 2 keeps its flags), a socket with
// MSG_DONTWAIT; a full pipe or socket drops the text.
void Heartbeat::Log(const std::string& text) const {
  std::string out = text.size() > kMaxLogBytes ? text.substr(0, kMaxLogBytes - 1) + "\n" : text;
  const mode_t type = DescriptorType(2);
  if (type == 0) return;
  if (S_ISFIFO(type)) {
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t written = write(fd, out.data(), out.size());
    (void)written;
    close(fd);
  } else if (S_ISSOCK(type)) {
    ssize_t sent = send(2, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)sent;
  } else {
    ssize_t written = write(2, out.data(), out.size());  // a terminal or a file
    (void)written;
  }
}

bool Heartbeat::IsOwnFile(const char* file) const {
  return !config_.own_files.empty() && std::strncmp(file, config_.own_files.c_str(), config_.own_files.size()) == 0;
}

void Heartbeat::CaptureStack(int64_t wall) {
  diag_stack_json_ = "null";
  diag_stack_top_json_ = "null";
  diag_stack_lines_.clear();
  diag_stack_at_.clear();
  diag_outside_js_ = true;
  if (config_.stack_api == nullptr) {
    diag_stack_reason_ = config_.stack_unavailable;
    return;
  }
  int64_t wait_ms = config_.interval_ns / kNsPerMs / 2;
  if (wait_ms > kStackWaitMs) wait_ms = kStackWaitMs;
  if (wait_ms < 1) wait_ms = 1;
  // Heap, not the thread's small stack: 32 frames of 1.3 KB each.
  std::vector<pulse_stack_frame> frames(PULSE_STACK_MAX_FRAMES);
  int32_t count = 0;
  int64_t interrupt_ns = 0;
  const int64_t asked = MonotonicNs();
  const int code = config_.stack_api->capture(config_.stack_ctx, frames.data(), PULSE_STACK_MAX_FRAMES,
                                              static_cast<int32_t>(wait_ms), &count, &interrupt_ns);
  if (code == PULSE_STACK_TIMEOUT) {
    diag_stack_reason_ = "the thread is outside JavaScript (in a system call or native code, which V8 "
                         "cannot interrupt): no stack within " + std::to_string(wait_ms) + " ms";
    return;
  }
  diag_outside_js_ = false;
  if (code != PULSE_STACK_OK) {
    diag_stack_reason_ = "the thread's environment is shutting down";
    return;
  }
  if (last_answer_mono_ns_.load() >= asked) {
    // The loop answered meanwhile: these frames may be from after the stall.
    diag_stack_reason_ = "the event loop answered while its stack was being read";
    return;
  }
  diag_stack_reason_.clear();
  diag_stack_at_ = Iso(wall);
  std::string json = "[";
  std::string top = "[";
  int shown = 0;  // frames of the user's code: the log block and the top frames
  for (int32_t i = 0; i < count; i++) {
    const pulse_stack_frame& f = frames[i];
    const std::string name = f.function[0] ? f.function : "<anonymous>";
    const std::string where = std::string(f.file[0] ? f.file : "<unknown>") + ":" +
                              std::to_string(f.line) + ":" + std::to_string(f.column);
    const bool own = IsOwnFile(f.file);
    const std::string frame = "{\"function\":\"" + JsonEscape(name) + "\",\"file\":\"" + JsonEscape(f.file) +
                              "\",\"line\":" + std::to_string(f.line) + ",\"column\":" + std::to_string(f.column) +
                              (own ? ",\"internal\":true}" : "}");
    json += (i > 0 ? "," : "") + frame;
    if (own) continue;
    if (shown < kTopFrames) top += (shown > 0 ? "," : "") + frame;
    if (shown < kLogFrames) diag_stack_lines_ += "    at " + name + " (" + where + ")\n";
    shown++;
  }
  if (shown > kLogFrames) diag_stack_lines_ += "    ... " + std::to_string(shown - kLogFrames) + " more\n";
  diag_stack_json_ = json + "]";
  diag_stack_top_json_ = top + "]";
}

void Heartbeat::Diagnose(int64_t now_mono, int64_t silent, bool first) {
  if (first) {
    stall_cpu_mono_ns_ = cpu_sample_mono_ns_;
    stall_cpu_ns_ = cpu_sample_ns_;
  }
  ThreadView view = ReadThreadView(owner_tid_, config_.syscalls->table);
  const int64_t cpu = ThreadCpuNs(owner_tid_);
  if (cpu >= 0 && stall_cpu_ns_ >= 0) {
    view.cpu_percent = CpuPercent(cpu - stall_cpu_ns_, now_mono - stall_cpu_mono_ns_);
  }
  diagnosed_mono_ns_ = now_mono;
  diag_thread_json_ = ThreadViewJson(view);
  diag_thread_line_ = ThreadViewLine(view);
  if (view.syscall.empty() && !view.wchan.empty()) diag_thread_line_ += ", wchan " + view.wchan;
  std::string active_line;
  diag_active_json_ = ActiveJson(&active_line);
  CaptureStack(WallNs());
  DiagnoseOutsideJs(view);
  diag_fields_ = "\"stack\":" + diag_stack_json_ + ",\"stackAt\":" + JsonStringOrNull(diag_stack_at_) +
                 (diag_stack_reason_.empty() ? std::string()
                                             : ",\"stackUnavailable\":\"" + JsonEscape(diag_stack_reason_) + "\"") +
                 ",\"thread\":" + diag_thread_json_ + ",\"active\":" + diag_active_json_ + diag_native_fields_;
  std::string stall = "{\"since\":\"" + Iso(stalled_since_wall_ns_) + "\"," + diag_fields_ + "}";
  pthread_mutex_lock(&diag_mutex_);
  stall_json_.swap(stall);
  pthread_mutex_unlock(&diag_mutex_);

  if (!first || config_.log_stalls == 0) return;
  std::string block;
  if (config_.log_stalls == 2) {
    block = "{\"msg\":\"celery-pulse-native: event loop stalled\",\"pid\":" +
            std::to_string(getpid()) + ",\"file\":\"" + JsonEscape(config_.path) +
            "\",\"stalledSince\":\"" + Iso(stalled_since_wall_ns_) +
            "\",\"loopSilentMs\":" + std::to_string(silent / kNsPerMs) + "," + diag_fields_ + "}\n";
  } else {
    block = "celery-pulse-native: event loop stalled for " + Seconds(silent) + " (pid " +
            std::to_string(getpid()) + ", " + config_.path + "); beats withheld\n" +
            (diag_stack_reason_.empty() ? diag_stack_lines_
                                        : "    (no JavaScript stack: " + diag_stack_reason_ + ")\n") +
            diag_native_lines_ + "    thread " + diag_thread_line_ + "; active: " + active_line + "\n";
  }
  Log(block);
}

void Heartbeat::EndStall() {
  const int64_t answered = last_answer_mono_ns_.load();
  const int64_t duration = answered - stall_start_mono_ns_;
  std::string last = "{\"since\":\"" + Iso(stalled_since_wall_ns_) +
                     "\",\"durationMs\":" + std::to_string(duration / kNsPerMs) +
                     ",\"stack\":" + StackAfterTheFact() + ",\"thread\":" + diag_thread_json_ +
                     ",\"active\":" + diag_active_json_ + diag_native_last_ + "}";
  std::string none;
  pthread_mutex_lock(&diag_mutex_);
  last_stall_json_.swap(last);
  stall_json_.swap(none);
  pthread_mutex_unlock(&diag_mutex_);
  diag_fields_.clear();
  stall_gen_.fetch_add(1);
  stall_ns_ended_.fetch_add(duration);
  stall_began_mono_ns_.store(0);
  stall_gen_.fetch_add(1);
  stalled_.store(false);
  if (config_.log_stalls == 2) {
    Log("{\"msg\":\"celery-pulse-native: event loop answering again\",\"pid\":" +
        std::to_string(getpid()) + ",\"file\":\"" + JsonEscape(config_.path) +
        "\",\"durationMs\":" + std::to_string(duration / kNsPerMs) + "}\n");
  } else if (config_.log_stalls == 1) {
    Log("celery-pulse-native: event loop answering again after " + Seconds(duration) +
        "; beats resumed\n");
  }
}

void Heartbeat::Tick(int64_t now_mono) {
  const int64_t wall = WallNs();
  const int64_t answered = last_answer_mono_ns_.load();
  // An expected stall (expectStall) counts as an answer until it ends.
  const int64_t expect_until = expect_until_mono_ns_.load();
  int64_t silent = now_mono - (expect_until > answered ? expect_until : answered);
  // A freeze since the loop's last answer is not its silence (a stall seen
  // already is judged on real answers only).
  if (answered == freeze_answer_mono_ns_ && !stalled_.load()) silent -= freeze_credit_ns_;
  const bool answering = config_.max_stall_ns < 0 || silent <= config_.max_stall_ns;

  if (!answering) {
    // A silent loop outranks a failing health check: the check cannot run
    // while the loop is stuck, so its verdict would be stale.
    const bool first = !stalled_.load();
    const int64_t loop_silent = now_mono - answered;
    if (first) {
      stalled_since_wall_ns_ = wall - loop_silent;
      stall_start_mono_ns_ = answered;
      stalls_.fetch_add(1);
      stall_gen_.fetch_add(1);
      stall_began_mono_ns_.store(answered);
      stall_gen_.fetch_add(1);
      stalled_.store(true);
    }
    // The stuck thread is looked at before the record is written, so the
    // first stall record already says where it is.
    const int64_t refresh = config_.interval_ns > kRediagnoseNs ? config_.interval_ns : kRediagnoseNs;
    if (first || now_mono - diagnosed_mono_ns_ >= refresh) Diagnose(now_mono, loop_silent, first);
    // Say why, keeping the mtime at the last good beat: nothing fresh.
    WriteWithheld("stalled",
                  "stalled since " + Iso(stalled_since_wall_ns_) +
                      ", loop silent for " + Seconds(loop_silent) + "; beats withheld",
                  diag_fields_, wall);
    NotifyStalled(loop_silent);
    if (config_.exit_on_stall_ns > 0 && silent > config_.exit_on_stall_ns) EndProcess(loop_silent, wall);
    return;
  }
  if (stalled_.load()) EndStall();
  // The CPU time the loop's thread has used by the first deadline after its
  // last answer: where the next stall's share starts counting.
  if (answered >= cpu_sample_mono_ns_) {
    cpu_sample_mono_ns_ = now_mono;
    cpu_sample_ns_ = ThreadCpuNs(owner_tid_);
  }

  // The loop answers; the health check (if any) may still veto the beat.
  std::string veto_message;
  std::string veto_fields;
  pthread_mutex_lock(&veto_mutex_);
  if (!veto_message_.empty()) {
    veto_message = veto_message_;
    veto_fields = veto_fields_;
  }
  pthread_mutex_unlock(&veto_mutex_);
  NotifyAnswering(now_mono, veto_message);  // the gate is open: systemd's watchdog is fed
  if (!veto_message.empty()) {
    vetoed_.fetch_add(1);
    WriteWithheld("unhealthy", veto_message, veto_fields, wall);
    return;
  }

  // Inside an expectStall() window the record says so, once.
  const bool expecting = expect_until > now_mono;
  std::string expect_message;
  std::string expect_fields;
  if (expecting && (record_says_ != Said::kExpecting || record_stale_)) {
    pthread_mutex_lock(&notes_mutex_);
    const std::string reason = expect_reason_;
    const int64_t expect_ns = expect_ns_;
    pthread_mutex_unlock(&notes_mutex_);
    const int64_t until_wall = wall + (expect_until - now_mono);
    expect_message = "expecting a stall of up to " + Seconds(expect_ns) +
                     (reason.empty() ? std::string() : " (" + reason + ")") + " until " +
                     Iso(until_wall);
    char secs[32];
    snprintf(secs, sizeof secs, "%g", static_cast<double>(expect_ns) / kNsPerSec);
    expect_fields = std::string("\"expectedStall\":{\"seconds\":") + secs +
                    ",\"reason\":" + JsonStringOrNull(reason) + ",\"until\":\"" +
                    Iso(until_wall) + "\"}";
  }

  // Look before the beat: a directory, FIFO, socket, device or symlink that
  // appeared at the path after start is a fault, left exactly as found (its
  // times are not set, no record is renamed over it). Nothing is followed in
  // between either: the writes and the touch refuse links too.
  bool missing = false;
  FileResult result = InspectTarget(config_.path, &missing);
  // A failed write of a record that has news: it is reported (and kept in
  // lastError) even when the touch after it beats.
  FileResult write_failure;
  if (result.ok()) {
    bool beaten = false;
    const bool rewrite = missing || record_stale_ || !expect_message.empty() ||
                         (record_says_ != Said::kRunning && !(expecting && record_says_ == Said::kExpecting));
    if (rewrite) {
      // Deleted: re-create it (never its directory). Or the record has news:
      // beats resume, an expected stall begins or ends, or the last record
      // never reached the disk. Either write is also this beat.
      std::string message =
          missing ? std::string("re-created after deletion")
          : !expect_message.empty() ? expect_message
          : record_says_ == Said::kStalled
              ? "event loop answering again since " + Iso(wall) +
                    " after a stall that began " + Iso(stalled_since_wall_ns_)
          : record_says_ == Said::kExpecting ? "the expected stall is over"
          : record_says_ == Said::kUnhealthy ? "health check passing again since " + Iso(wall)
              : "running";
      result = WriteRecord(config_.path, tmp_path_,
                           Record("running", message, wall, wall, expect_fields), wall);
      beaten = result.ok();
      record_stale_ = !beaten;
      if (beaten) {
        record_says_ = expect_message.empty() ? Said::kRunning : Said::kExpecting;
      } else {
        write_failure = result;
      }
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
  Report(write_failure.ok() ? result : write_failure, wall);
  if (result.ok()) {
    beats_.fetch_add(1);
    last_beat_wall_ns_.store(wall);
  }
}

}  // namespace pulse

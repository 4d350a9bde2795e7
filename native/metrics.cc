#include "metrics.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>

#include <cmath>

#include "diagnose.h"

namespace pulse {
namespace {

constexpr int64_t kNsPerSec = 1000000000;

// The families: the contract's names, in the order they are written. A plain
// array of pointers (no constructor runs; nothing here is written).
struct Family {
  const char* name;
  const char* type;
  const char* help;
};
constexpr Family kFamilies[] = {
    {"celery_pulse_info", "gauge", "Build and settings of this pulse; always 1."},
    {"celery_pulse_interval_seconds", "gauge", "Seconds between beats."},
    {"celery_pulse_max_stall_seconds", "gauge",
     "Seconds the event loop may stay silent before beats are withheld (+Inf: the gate is off)."},
    {"celery_pulse_beats_total", "counter", "Beats written: the file's mtime was refreshed."},
    {"celery_pulse_withheld_beats_total", "counter",
     "Deadlines whose beat was withheld (event loop silent, or a failing health check)."},
    {"celery_pulse_errors_total", "counter", "Failed file operations of the heartbeat thread."},
    {"celery_pulse_stalls_total", "counter", "Stalls begun: the event loop stayed silent past max-stall."},
    {"celery_pulse_stall_seconds_total", "counter",
     "Seconds the event loop was stalled, the ongoing stall included."},
    {"celery_pulse_stalled", "gauge", "1 while the event loop is stalled, else 0."},
    {"celery_pulse_loop_silent_seconds", "gauge", "Seconds since the event loop last answered."},
    {"celery_pulse_last_beat_timestamp_seconds", "gauge", "Unix time of the last beat."},
    {"celery_pulse_active_jobs", "gauge", "Labels of track() calls still running."},
    {"celery_pulse_stall_frame_info", "gauge",
     "The innermost frame of the ongoing stall (JavaScript, else native code or what the thread waits for); 1 while stalled with one."},
    {"celery_pulse_loop_delay_seconds", "histogram",
     "How late each answer of the event loop came, against its ping period."},
};

constexpr double kDelayBounds[LoopDelay::kBuckets] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                      0.1,   0.25,   0.5,   1,    2.5,   10};

void Head(std::string* out, const Family& f) {
  *out += "# HELP ";
  *out += f.name;
  *out += ' ';
  *out += PromEscapeHelp(f.help);
  *out += "\n# TYPE ";
  *out += f.name;
  *out += ' ';
  *out += f.type;
  *out += '\n';
}

void Sample(std::string* out, const char* name, const std::string& labels, double value) {
  *out += name;
  if (!labels.empty()) *out += "{" + labels + "}";
  *out += ' ';
  *out += PromNumber(value);
  *out += '\n';
}

std::string Label(const char* name, const std::string& value) {
  return std::string(name) + "=\"" + PromEscapeLabel(value) + "\"";
}


}  // namespace

std::string PromEscapeLabel(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string PromEscapeHelp(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string PromNumber(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[40];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    snprintf(buf, sizeof buf, "%.0f", value);
    return buf;
  }
  // The shortest %g form that reads back as the same double.
  for (int precision = 6; precision <= 17; precision++) {
    snprintf(buf, sizeof buf, "%.*g", precision, value);
    if (strtod(buf, nullptr) == value) break;
  }
  return buf;
}

const double* LoopDelay::Bounds() { return kDelayBounds; }

void LoopDelay::Observe(int64_t delay_ns) {
  if (delay_ns < 0) delay_ns = 0;
  const double seconds = static_cast<double>(delay_ns) / kNsPerSec;
  int i = 0;
  while (i < kBuckets && seconds > kDelayBounds[i]) i++;
  if (i < kBuckets) buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(static_cast<uint64_t>(delay_ns), std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_release);
}

LoopDelay::Values LoopDelay::Read() const {
  Values v;
  v.count = count_.load(std::memory_order_acquire);
  uint64_t in_buckets = 0;
  for (int i = 0; i < kBuckets; i++) {
    v.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
    in_buckets += v.buckets[i];
  }
  // A bucket incremented after the count was read: the count covers it, so
  // the cumulative series stays monotonic (le="+Inf" equals _count).
  if (in_buckets > v.count) v.count = in_buckets;
  v.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / kNsPerSec;
  return v;
}

std::string ProcessMetrics() {
  std::string out;
  const long ticks = sysconf(_SC_CLK_TCK);
  const long page = sysconf(_SC_PAGESIZE);
  // /proc/self/stat: fields after the command's closing parenthesis.
  const std::string stat = ReadProcFile("/proc/self/stat");
  const size_t paren = stat.rfind(')');
  double cpu = -1, start_time = -1, vsize = -1, rss = -1;
  if (paren != std::string::npos && ticks > 0) {
    // Field 3 (state) is the first after ")"; utime is 14, stime 15,
    // starttime 22, vsize 23, rss 24.
    unsigned long long utime = 0, stime = 0, starttime = 0, vs = 0;
    long long rs = 0;
    if (sscanf(stat.c_str() + paren + 1,
               " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
               "%llu %llu %lld",
               &utime, &stime, &starttime, &vs, &rs) == 5) {
      cpu = static_cast<double>(utime + stime) / ticks;
      vsize = static_cast<double>(vs);
      rss = static_cast<double>(rs) * page;
      // Boot time (Unix seconds) from /proc/stat's btime.
      const std::string sys = ReadProcFile("/proc/stat", 65536);
      const size_t at = sys.find("\nbtime ");
      if (at != std::string::npos) {
        start_time = strtod(sys.c_str() + at + 7, nullptr) + static_cast<double>(starttime) / ticks;
      }
    }
  }
  double fds = 0;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') fds++;
    }
    closedir(dir);
    fds--;  // the directory's own descriptor
  } else {
    fds = -1;
  }
  rlimit limit;
  const double max_fds =
      getrlimit(RLIMIT_NOFILE, &limit) == 0
          ? (limit.rlim_cur == RLIM_INFINITY ? INFINITY : static_cast<double>(limit.rlim_cur))
          : -1;
  const struct {
    const char* name;
    const char* type;
    const char* help;
    double value;
  } rows[] = {
      {"process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", cpu},
      {"process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
       start_time},
      {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss},
      {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsize},
      {"process_open_fds", "gauge", "Number of open file descriptors.", fds},
      {"process_max_fds", "gauge", "Maximum number of open file descriptors.", max_fds},
  };
  for (const auto& row : rows) {
    if (row.value < 0) continue;  // not readable here (no /proc): left out
    Head(&out, Family{row.name, row.type, row.help});
    Sample(&out, row.name, std::string(), row.value);
  }
  return out;
}

std::string BuildMetrics(const MetricsInput& in, bool with_process) {
  std::string out;
  out.reserve(4096);
  const Family* f = kFamilies;
  Head(&out, *f);
  Sample(&out, f->name,
         Label("version", in.version) + "," + Label("strategy", in.strategy) + "," +
             Label("runtime", in.runtime) + "," + Label("file", in.file),
         1);
  f++;
  const double simple[] = {in.interval_seconds,
                           in.max_stall_seconds,
                           static_cast<double>(in.beats),
                           static_cast<double>(in.withheld),
                           static_cast<double>(in.errors),
                           static_cast<double>(in.stalls),
                           in.stall_seconds,
                           in.stalled ? 1.0 : 0.0,
                           in.loop_silent_seconds,
                           in.last_beat_timestamp,
                           static_cast<double>(in.active_jobs)};
  for (double value : simple) {
    Head(&out, *f);
    Sample(&out, f->name, std::string(), value);
    f++;
  }
  // celery_pulse_stall_frame_info: a family with no sample unless stalled
  // with a stack (promtool accepts HELP and TYPE alone).
  Head(&out, *f);
  if (in.stalled && in.frame.present) {
    Sample(&out, f->name,
           Label("function", in.frame.function) + "," + Label("file", in.frame.file) + "," +
               Label("line", std::to_string(in.frame.line)),
           1);
  }
  f++;
  Head(&out, *f);
  const std::string bucket = std::string(f->name) + "_bucket";
  uint64_t cumulative = 0;
  for (int i = 0; i < LoopDelay::kBuckets; i++) {
    cumulative += in.delay.buckets[i];
    Sample(&out, bucket.c_str(), "le=\"" + PromNumber(kDelayBounds[i]) + "\"", static_cast<double>(cumulative));
  }
  Sample(&out, bucket.c_str(), "le=\"+Inf\"", static_cast<double>(in.delay.count));
  Sample(&out, (std::string(f->name) + "_sum").c_str(), std::string(), in.delay.sum_seconds);
  Sample(&out, (std::string(f->name) + "_count").c_str(), std::string(), static_cast<double>(in.delay.count));
  if (with_process) out += ProcessMetrics();
  return out;
}

}  // namespace pulse

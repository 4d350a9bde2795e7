// The endpoint's /metrics text: Prometheus exposition format 0.0.4. The
// families (names, types, help) are one table here; the worker strategy's
// twin (src/contract/metrics.ts) is checked against it by the tests.
// Plain C++, no Node-API; the process collector reads /proc.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

namespace pulse {

// A label value: backslash, double quote and newline escaped as the format says.
std::string PromEscapeLabel(const std::string& text);
// A HELP text: backslash and newline escaped.
std::string PromEscapeHelp(const std::string& text);
// A sample value: integers as integers, others in the shortest form that reads
// back the same; "+Inf", "-Inf", "NaN".
std::string PromNumber(double value);

// How late each answer of the event loop came, against the ping period:
// a histogram of lock-free counters. Observe() runs on the JS thread (each
// answer); Read() on the endpoint's thread.
class LoopDelay {
 public:
  static constexpr int kBuckets = 12;  // finite upper bounds; +Inf is the count
  static const double* Bounds();        // seconds, ascending
  void Observe(int64_t delay_ns);
  struct Values {
    uint64_t buckets[kBuckets];  // not cumulative
    uint64_t count;
    double sum_seconds;
  };
  Values Read() const;

 private:
  // Each counter is incremented by Observe() and only read elsewhere; a
  // scrape may see a count one ahead of its buckets, never behind by more.
  std::atomic<uint64_t> buckets_[kBuckets] = {};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_ns_{0};
};

// The innermost frame of a stall's stack.
struct StallFrame {
  bool present = false;
  std::string function;
  std::string file;
  int64_t line = 0;
};

// Everything a scrape shows, gathered by the caller.
struct MetricsInput {
  std::string version;
  std::string strategy;
  std::string runtime;
  std::string file;
  double interval_seconds = 0;
  double max_stall_seconds = 0;  // +Inf when the gate is off
  uint64_t beats = 0;
  uint64_t withheld = 0;
  uint64_t errors = 0;
  uint64_t stalls = 0;
  double stall_seconds = 0;  // the ongoing stall included
  bool stalled = false;
  double loop_silent_seconds = 0;
  double last_beat_timestamp = 0;  // Unix seconds; 0 before the first beat
  uint64_t active_jobs = 0;
  StallFrame frame;
  LoopDelay::Values delay = {};
};

// The exposition text, with the process collector (read from /proc now)
// unless `with_process` is false.
std::string BuildMetrics(const MetricsInput& in, bool with_process = true);

// The process collector's families alone (process_cpu_seconds_total, ...).
std::string ProcessMetrics();

}  // namespace pulse

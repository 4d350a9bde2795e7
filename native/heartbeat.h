// The heartbeat thread: wakes at fixed deadlines on the monotonic clock and
// touches the file only while the event loop has answered within max_stall.
// Plain C++ and pthreads; the Node-API glue lives in addon.cc.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "pulse_file.h"

namespace pulse {

struct Config {
  std::string path;           // absolute path of the healthcheck file
  int64_t interval_ns = 0;    // > 0
  int64_t max_stall_ns = -1;  // < 0: the gate is off
  std::string static_fields;  // JSON members appended to every record
};

struct Snapshot {
  uint64_t beats = 0;
  uint64_t withheld = 0;  // all withheld deadlines: loop silent or vetoed
  uint64_t vetoed = 0;    // of those, withheld because of the veto
  uint64_t errors = 0;
  int64_t last_beat_wall_ns = 0;
  int64_t loop_silent_ns = 0;
  bool stalled = false;
  bool running = false;
  int last_errno = 0;
  FileOp last_error_op = FileOp::kNone;
  int64_t last_error_wall_ns = 0;
};

class Heartbeat {
 public:
  explicit Heartbeat(Config config);
  ~Heartbeat();  // stops and joins
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;

  // Creates parents, claims the file for this process, writes the first
  // record (the first beat) and starts the thread. Called once.
  FileResult Start();
  // The event loop answered. Called from the JS thread; lock-free.
  void Answer();
  // The JS side's health check failed: from the next deadline on, beats are
  // withheld and the record (state "unhealthy") says `message`, with `fields`
  // (JSON members) added. An empty `message` lifts the veto. JS thread only.
  void SetVeto(const std::string& message, const std::string& fields);
  // Idempotent. Returns after the thread exited. Leaves a "stopped" record
  // (mtime kept at the last beat), or unlinks the file when `remove`.
  void Stop(bool remove);
  Snapshot Read() const;

 private:
  static void* ThreadMain(void* self);
  void Run();
  void Tick(int64_t now_mono);
  std::string Record(const char* state, const std::string& message,
                     int64_t wall_ns, int64_t last_beat_ns,
                     const std::string& extra_fields = std::string()) const;
  // The mtime for a record that is not a beat: this pulse's last beat, or
  // the file's own mtime when newer (other processes beat a shared file:
  // a record written here must not make their beats look old).
  int64_t KeptMtime() const;
  // Writes a record that withholds the beat, with KeptMtime().
  void WriteWithheld(const char* state, const std::string& message,
                     const std::string& extra_fields, int64_t wall_ns);
  void Report(const FileResult& result, int64_t wall_ns);

  const Config config_;
  const std::string tmp_path_;
  std::string key_;          // claim in the process-wide registry (JS thread)
  int64_t start_mono_ns_ = 0;  // written before the thread starts
  bool started_ = false;     // JS thread only
  bool stopped_ = false;     // JS thread only

  pthread_t thread_{};
  pthread_mutex_t mutex_;    // guards stop_requested_ for the condition wait
  pthread_cond_t wake_;      // signalled by Stop(); waits on CLOCK_MONOTONIC
  bool stop_requested_ = false;  // guarded by mutex_

  // Monotonic ns of the loop's last answer: written by Answer() on the JS
  // thread, read by the heartbeat thread at each deadline.
  std::atomic<int64_t> last_answer_mono_ns_{0};
  // Guards veto_message_ and veto_fields_. Held only to copy or swap them,
  // never across file I/O.
  pthread_mutex_t veto_mutex_;
  std::string veto_message_;  // guarded by veto_mutex_; empty = no veto
  std::string veto_fields_;   // guarded by veto_mutex_

  // Counters and last-beat time: written by the heartbeat thread (and by
  // Start() before it runs), read by Read() on the JS thread.
  std::atomic<uint64_t> beats_{0};
  std::atomic<uint64_t> withheld_{0};
  std::atomic<uint64_t> vetoed_{0};
  std::atomic<uint64_t> errors_{0};
  std::atomic<int64_t> last_beat_wall_ns_{0};
  // True from the first withheld deadline until the loop answers again.
  std::atomic<bool> stalled_{false};
  // Last fault: errno (0 = none), its operation and wall time. Written by the
  // heartbeat thread, read by Read(); cleared by the next successful beat.
  std::atomic<int> last_errno_{0};
  std::atomic<int> last_error_op_{0};
  std::atomic<int64_t> last_error_wall_ns_{0};
  // Wall ns since which the loop has been silent; heartbeat thread only.
  int64_t stalled_since_wall_ns_ = 0;
  // What the file's record currently says; heartbeat thread only. A record
  // that withheld beats is replaced by a "running" one at the next beat.
  enum class Said { kRunning, kStalled, kUnhealthy };
  Said record_says_ = Said::kRunning;
};

// Process-wide: the files pulsed by any environment of this process.
bool ClaimFile(const std::string& key);
void ReleaseFile(const std::string& key);

int64_t MonotonicNs();
int64_t WallNs();

}  // namespace pulse

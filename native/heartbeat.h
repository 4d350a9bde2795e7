// The heartbeat thread: wakes at fixed deadlines on the monotonic clock and
// touches the file only while the event loop has answered within max_stall.
// Plain C++ and pthreads; the Node-API glue lives in addon.cc.
#pragma once

#include <pthread.h>

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <string>

#include "diagnose.h"
#include "metrics.h"
#include "native_stack.h"
#include "pulse_file.h"
#include "sd_notify.h"
#include "stack/stack_api.h"

namespace pulse {

struct Config {
  std::string path;           // absolute path of the healthcheck file
  int64_t interval_ns = 0;    // > 0
  int64_t max_stall_ns = -1;  // < 0: the gate is off
  std::string static_fields;  // JSON members appended to every record
  int log_stalls = 1;         // 0: off, 1: a text block on stderr, 2: one JSON line
  // Names for the stall diagnosis: one table shared by every pulse, released
  // by the heartbeat's destructor.
  const SharedSyscallTable* syscalls = nullptr;
  // The stack capture piece (native/stack) and this pulse's context in it,
  // or null: then records carry no stack, and stack_unavailable says why.
  // The heartbeat releases the context once its thread has ended.
  const pulse_stack_api* stack_api = nullptr;
  void* stack_ctx = nullptr;
  std::string stack_unavailable = "stack capture is not available";
  // Frames whose file starts with this are the package's own (its track()
  // wrapper): marked "internal" in the record, left out of the log block and
  // of lastStall's top frames. Empty: none is.
  std::string own_files;
  // exitOnStall: the loop's silence (ns) that ends the process; 0 = never.
  int64_t exit_on_stall_ns = 0;
  // systemd: NOTIFY_SOCKET when this pulse talks to systemd, else empty; and
  // WATCHDOG_USEC in ns (0: no watchdog pings).
  std::string notify_socket;
  int64_t watchdog_ns = 0;
  NativeStackTarget native_stack;  // the JS thread, for nativeStack
};

// The exit status of a process ended by exitOnStall: Node's own are 1 to 14
// and 128 + a signal's number.
constexpr int kExitOnStallStatus = 70;

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
  // systemd: datagrams sent, and the last send's errno (0 = none) and time.
  uint64_t notify_sent = 0;
  int notify_errno = 0;
  int64_t notify_error_wall_ns = 0;
  uint64_t stalls = 0;    // stalls begun
  int64_t stall_ns = 0;   // time stalled, the ongoing stall included
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

  // pulse.track(): `label` is running from now until TrackEnd(id). JS thread.
  uint64_t TrackBegin(const std::string& label);
  void TrackEnd(uint64_t id);
  // pulse.expectStall(): silence up to `ns` from now withholds no beat. JS thread.
  void ExpectStall(int64_t ns, const std::string& reason);
  // The current stall's diagnosis and the last finished stall's, as JSON
  // objects; empty when there is none.
  std::string StallJson() const;
  std::string LastStallJson() const;
  // pulse.ready(): READY=1 to systemd. Returns 0 or the send's errno. JS thread.
  int Ready();
  // For the endpoint (any thread): track() labels running, and how late the
  // loop's answers came.
  size_t ActiveCount() const;
  const LoopDelay& loop_delay() const { return loop_delay_; }

 private:
  static void* ThreadMain(void* self);
  void Run();
  // The thread woke `late` ns after its deadline: the process may have been
  // frozen whole (SIGSTOP, the cgroup freezer), its loop with it. Waits a
  // bounded time for the loop to answer; when it does not, the late time is
  // not held against it (freeze_credit_ns_). Called and returns with mutex_
  // held; false when stop() was asked for meanwhile.
  bool GiveLoopAChance(int64_t woke_mono, int64_t late);
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
  // The stall diagnosis: reads the stuck thread's state and what it runs into
  // diag_fields_ (and stall_json_). `first`: at the first withheld deadline.
  void Diagnose(int64_t now_mono, int64_t silent_ns, bool first);
  // The loop answered after a stall: lastStall and the recovery line.
  void EndStall();
  std::string ActiveJson(std::string* line) const;
  // Asks the stuck thread for its JavaScript stack (bounded wait): sets
  // diag_stack_json_ ("[...]" or "null"), diag_stack_lines_ and the reason.
  void CaptureStack(int64_t wall_ns);
  // Outside JavaScript (native/outside_js.cc): nativeStack and waitingFor
  // into diag_native_fields_, diag_native_last_ and diag_native_lines_.
  void DiagnoseOutsideJs(const ThreadView& view);
  // lastStall's stack: the top frames the stall's records carried, or, when
  // they had none because the thread was outside JavaScript, the ones the
  // pending request read as it came back ("[...],"stackTakenAt":"end"").
  std::string StackAfterTheFact();
  void ReleaseStack();
  // A frame's file is inside the package's own code (config_.own_files).
  bool IsOwnFile(const char* file) const;
  void Log(const std::string& text) const;
  // native/watchdog.cc: systemd's notify protocol and exitOnStall, acting on
  // Tick()'s judgment. Heartbeat thread, except NotifyOpen (Start()),
  // NotifyStopped (Stop(), after the join) and Ready (JS thread).
  void NotifyOpen();
  int Notify(const std::string& message);
  void NotifyAnswering(int64_t now_mono, const std::string& veto_message);
  void NotifyStalled(int64_t loop_silent);
  void NotifyStopped();
  // The earlier of the beat's deadline and the next watchdog ping's.
  int64_t NextWake(int64_t deadline) const;
  void PingBetween(int64_t now_mono);
  std::string StuckLine(int64_t loop_silent) const;
  [[noreturn]] void EndProcess(int64_t loop_silent, int64_t wall);

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
  // How late each answer came against the ping period (ping_ns_): observed
  // by Answer(), read by the endpoint.
  LoopDelay loop_delay_;
  const int64_t ping_ns_;
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
  // For the endpoint's stall metrics: stalls begun, the time of those ended,
  // and the loop's last answer before the ongoing one (0: none). Written by
  // the heartbeat thread, read by Read(). stall_gen_ is odd while the
  // heartbeat thread changes the other two, so Read() sees them as a pair
  // and the seconds counter never steps back.
  std::atomic<uint64_t> stalls_{0};
  std::atomic<int64_t> stall_ns_ended_{0};
  std::atomic<int64_t> stall_began_mono_ns_{0};
  std::atomic<uint32_t> stall_gen_{0};
  // Last fault: errno (0 = none), its operation and wall time. Written by the
  // heartbeat thread, read by Read(); cleared by the next successful beat.
  std::atomic<int> last_errno_{0};
  std::atomic<int> last_error_op_{0};
  std::atomic<int64_t> last_error_wall_ns_{0};
  // Wall ns since which the loop has been silent; heartbeat thread only.
  int64_t stalled_since_wall_ns_ = 0;
  // What the file's record currently says; heartbeat thread only. A record
  // that withheld beats is replaced by a "running" one at the next beat.
  // Set when the write of the record that says record_says_ failed
  // (ENOSPC, EIO): it is written again at each deadline until it is on disk.
  enum class Said { kRunning, kStalled, kUnhealthy, kExpecting };
  Said record_says_ = Said::kRunning;
  bool record_stale_ = false;
  // Time the whole process spent frozen since the loop's answer at
  // freeze_answer_mono_ns_: not counted as the loop's silence while that is
  // still its last answer. Heartbeat thread only.
  int64_t freeze_answer_mono_ns_ = -1;
  int64_t freeze_credit_ns_ = 0;

  // The JS thread that started the pulse: the one the diagnosis looks at.
  pid_t owner_tid_ = 0;  // written before the thread starts
  // Its CPU time at the last deadline before a stall, and at the stall's
  // start; heartbeat thread only (Start() writes the first sample).
  int64_t cpu_sample_mono_ns_ = 0;
  int64_t cpu_sample_ns_ = -1;
  int64_t stall_cpu_mono_ns_ = 0;
  int64_t stall_cpu_ns_ = -1;
  int64_t stall_start_mono_ns_ = 0;  // the loop's last answer before the stall
  int64_t diagnosed_mono_ns_ = 0;    // when the diagnosis was last taken
  // JSON members ("stack":...,"thread":...,"active":...) every record of the
  // current stall carries, and the text lines of the log block; heartbeat
  // thread only.
  std::string diag_fields_;
  std::string diag_thread_line_;
  std::string diag_thread_json_;
  std::string diag_active_json_;
  std::string diag_stack_json_;       // "[{...}, ...]" or "null"
  std::string diag_stack_top_json_;   // the top frames, for lastStall
  std::string diag_stack_lines_;      // "    at fn (file:l:c)\n" ...
  std::string diag_stack_at_;         // ISO time of the capture, or empty
  std::string diag_stack_reason_;     // why there is no stack, or empty
  bool diag_outside_js_ = false;      // V8 could not be asked or did not answer
  std::string diag_native_fields_;    // ,"nativeStack":...,"waitingFor":...
  std::string diag_native_last_;      // the same for lastStall (top frames)
  std::string diag_native_lines_;     // "    in fn (module)\n", "    waiting for ..."
  bool stack_released_ = false;       // JS thread (after the join)

  // Guards stall_json_ and last_stall_json_: the heartbeat thread writes them
  // (and reads last_stall_json_ without it, being its only writer); Read by
  // StallJson()/LastStallJson() on the JS thread. Never held across I/O.
  mutable pthread_mutex_t diag_mutex_;
  std::string stall_json_;
  std::string last_stall_json_;

  // Guards active_, next_track_id_, expect_reason_ and expect_ns_: written by
  // the JS thread (track, expectStall), copied by the heartbeat thread.
  mutable pthread_mutex_t notes_mutex_;
  struct Active {
    std::string label;
    int64_t since_wall_ns;
  };
  std::map<uint64_t, Active> active_;  // by id: oldest first
  uint64_t next_track_id_ = 1;
  std::string expect_reason_;
  int64_t expect_ns_ = 0;
  // Monotonic ns until which silence withholds no beat (expectStall); 0 =
  // none. Written by the JS thread after expect_reason_, read at deadlines.
  std::atomic<int64_t> expect_until_mono_ns_{0};

  // systemd. The socket is opened by Start() before the thread runs and
  // closed by the destructor; sends are single sendto calls, safe from both
  // threads.
  Notifier notifier_;
  enum class Told { kNothing, kRunning, kStalled, kUnhealthy };
  Told told_ = Told::kNothing;      // the last STATUS= state; heartbeat thread
  int64_t next_ping_mono_ns_ = 0;   // heartbeat thread (Start() before it runs)
  // Written by whichever thread sends (heartbeat, or the JS thread for
  // READY=1 and the stop line), read by Read().
  std::atomic<uint64_t> notify_sent_{0};
  std::atomic<int> notify_errno_{0};
  std::atomic<int64_t> notify_error_wall_ns_{0};
};

// Process-wide: the files pulsed by any environment of this process.
bool ClaimFile(const std::string& key);
void ReleaseFile(const std::string& key);

int64_t MonotonicNs();
int64_t WallNs();
// "2026-11-25T13:14:15.123Z"
std::string Iso(int64_t wall_ns);

}  // namespace pulse

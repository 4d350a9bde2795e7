// What the heartbeat does beyond the file, for supervisors that do not probe
// it: systemd's notify protocol (WatchdogSec=, STATUS=, READY=) and
// exitOnStall. Heartbeat::Tick() judges the loop; these members act on its
// judgment. The protocol itself is in sd_notify.cc.
#include "glibc_floor.h"

#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "heartbeat.h"
#include "json.h"

namespace pulse {
namespace {

constexpr int64_t kNsPerSec = 1000000000;
constexpr int64_t kNsPerMs = 1000000;

std::string Secs(int64_t ns) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ns) / kNsPerSec);
  return buf;
}

}  // namespace

void Heartbeat::NotifyOpen() {
  if (config_.notify_socket.empty()) return;
  const int err = notifier_.Open(config_.notify_socket);
  if (err != 0) {
    notify_errno_.store(err);
    notify_error_wall_ns_.store(WallNs());
    return;
  }
  told_ = Told::kRunning;
  Notify(std::string(config_.watchdog_ns > 0 ? "WATCHDOG=1\n" : "") + "STATUS=running: beating " +
         config_.path);
  next_ping_mono_ns_ = MonotonicNs() + config_.watchdog_ns / 3;
}

int Heartbeat::Notify(const std::string& message) {
  const int err = notifier_.Send(message);
  if (err == 0) {
    notify_sent_.fetch_add(1);
  } else {
    notify_error_wall_ns_.store(WallNs());
  }
  // The last send's outcome: cleared by the next one that goes through.
  notify_errno_.store(err);
  return err;
}

int Heartbeat::Ready() {
  if (config_.notify_socket.empty()) return 0;
  return Notify("READY=1");
}

void Heartbeat::NotifyAnswering(int64_t now_mono, const std::string& veto_message) {
  if (config_.notify_socket.empty()) return;
  std::string message;
  if (config_.watchdog_ns > 0) {
    message = "WATCHDOG=1\n";
    next_ping_mono_ns_ = now_mono + config_.watchdog_ns / 3;
  }
  const Told now_told = veto_message.empty() ? Told::kRunning : Told::kUnhealthy;
  if (now_told != told_) {
    message += now_told == Told::kUnhealthy
                   ? "STATUS=unhealthy: " + veto_message
                   : told_ == Told::kStalled ? "STATUS=running: event loop answering again since " +
                                                   Iso(WallNs())
                                             : "STATUS=running: beating " + config_.path;
    told_ = now_told;
  }
  if (!message.empty()) Notify(message);
}

std::string Heartbeat::StuckLine(int64_t loop_silent) const {
  std::string line = "stalled since " + Iso(stalled_since_wall_ns_) + ", loop silent for " +
                     Secs(loop_silent);
  // The innermost JavaScript frame, else what the thread is doing.
  const size_t at = diag_stack_lines_.find("at ");
  if (at != std::string::npos) {
    const size_t end = diag_stack_lines_.find('\n', at);
    line += "; " + diag_stack_lines_.substr(at, end - at);
  } else {
    line += "; thread " + diag_thread_line_;
  }
  return line;
}

void Heartbeat::NotifyStalled(int64_t loop_silent) {
  if (config_.notify_socket.empty() || told_ == Told::kStalled) return;
  told_ = Told::kStalled;
  Notify("STATUS=" + StuckLine(loop_silent));
}

int64_t Heartbeat::NextWake(int64_t deadline) const {
  if (config_.notify_socket.empty() || config_.watchdog_ns <= 0) return deadline;
  return next_ping_mono_ns_ < deadline ? next_ping_mono_ns_ : deadline;
}

void Heartbeat::PingBetween(int64_t now_mono) {
  next_ping_mono_ns_ = now_mono + config_.watchdog_ns / 3;
  // Tick()'s measure of the gate, between its deadlines: no ping for a loop
  // silent longer than maxStall (an expectStall() window counts as an
  // answer). A loop that answers again after a stall is fed at once: the
  // next deadline may be a whole interval away, longer than the watchdog.
  const int64_t answered = last_answer_mono_ns_.load();
  const int64_t expect_until = expect_until_mono_ns_.load();
  const int64_t silent = now_mono - (expect_until > answered ? expect_until : answered);
  if (config_.max_stall_ns >= 0 && silent > config_.max_stall_ns) return;
  Notify("WATCHDOG=1");
}

void Heartbeat::NotifyStopped() {
  if (config_.notify_socket.empty()) return;
  Notify("STATUS=stopped: " + config_.path);
}

// Runs on the heartbeat thread: the record, the log block, then _exit() at
// once. No atexit handler or destructor runs, in this thread or the stuck
// one: the stuck thread may hold any lock, so nothing may wait for it.
void Heartbeat::EndProcess(int64_t loop_silent, int64_t wall) {
  const std::string status = std::to_string(kExitOnStallStatus);
  const std::string limit = Secs(config_.exit_on_stall_ns);
  const std::string message = StuckLine(loop_silent) + "; exitOnStall (" + limit +
                              ") ended the process with status " + status;
  if (InspectTarget(config_.path).ok()) {
    WriteRecord(config_.path, tmp_path_,
                Record("exited", message, wall, last_beat_wall_ns_.load(), diag_fields_),
                KeptMtime());
  }
  if (config_.log_stalls == 2) {
    Log("{\"msg\":\"celery-pulse-native: event loop stalled, ending the process\",\"pid\":" +
        std::to_string(getpid()) + ",\"file\":\"" + JsonEscape(config_.path) +
        "\",\"exitStatus\":" + status + ",\"stalledSince\":\"" + Iso(stalled_since_wall_ns_) +
        "\",\"loopSilentMs\":" + std::to_string(loop_silent / kNsPerMs) + "," + diag_fields_ +
        "}\n");
  } else if (config_.log_stalls == 1) {
    Log("celery-pulse-native: event loop stalled for " + Secs(loop_silent) + " (pid " +
        std::to_string(getpid()) + ", " + config_.path + "); exitOnStall (" + limit +
        "): ending the process with status " + status + "\n" +
        (diag_stack_reason_.empty() ? diag_stack_lines_
                                    : "    (no JavaScript stack: " + diag_stack_reason_ + ")\n") +
        "    thread " + diag_thread_line_ + "\n");
  }
  if (!config_.notify_socket.empty()) Notify("STATUS=exiting: " + message);
  _exit(kExitOnStallStatus);
}

}  // namespace pulse

// The stall diagnosis's view outside JavaScript: the stuck thread's machine
// stack (native_stack.cc) when V8 could not give a JavaScript one, and what a
// thread asleep in a system call waits for (waiting_for.cc).
#include "heartbeat.h"
#include "json.h"
#include "waiting_for.h"

namespace pulse {
namespace {

// The heartbeat thread's wait for the stuck thread's signal handler.
constexpr int64_t kNativeWaitMs = 20;
// Native frames shown in the log block.
constexpr size_t kLogNativeFrames = 10;

}  // namespace

void Heartbeat::DiagnoseOutsideJs(const ThreadView& view) {
  diag_native_fields_.clear();
  diag_native_last_.clear();
  diag_native_lines_.clear();
  std::string native_json = "null", native_top = "null";
  if (diag_outside_js_ && config_.native_stack.enabled) {
    NativeStack native = CaptureNativeStack(config_.native_stack, kNativeWaitMs);
    native_json = native.json;
    native_top = native.top_json;
    if (!native.first.empty()) diag_native_lines_ += "    in " + native.first + "\n";
    if (!native.reason.empty()) {
      diag_native_fields_ += ",\"nativeStackUnavailable\":\"" + JsonEscape(native.reason) + "\"";
    }
  }
  std::string waiting_line;
  std::string waiting = "null";
  if (view.state == "sleeping" || view.state == "disk-sleep") {
    std::string json = WaitingForJson(view.fd, view.syscall, &waiting_line);
    if (!json.empty()) waiting = json;
  }
  if (!waiting_line.empty()) diag_native_lines_ += "    waiting for " + waiting_line + "\n";
  diag_native_fields_ = ",\"nativeStack\":" + native_json + ",\"waitingFor\":" + waiting + diag_native_fields_;
  diag_native_last_ = ",\"nativeStack\":" + native_top + ",\"waitingFor\":" + waiting;
}

}  // namespace pulse

// The stall diagnosis's view outside JavaScript: the stuck thread's machine
// stack (native_stack.cc) when V8 could not give a JavaScript one, and what a
// thread asleep in a system call waits for (waiting_for.cc).
#include "heartbeat.h"

#include <vector>

#include "json.h"
#include "waiting_for.h"

namespace pulse {
namespace {

// The heartbeat thread's wait for the stuck thread's signal handler.
constexpr int64_t kNativeWaitMs = 20;
// Frames of the late stack kept in lastStall (the package's own left out),
// from at most kLateTaken read.
constexpr int32_t kLateFrames = 5;
constexpr int32_t kLateTaken = 16;

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

std::string Heartbeat::StackAfterTheFact() {
  if (!diag_outside_js_ || config_.stack_api == nullptr || config_.stack_api->version < 2) return diag_stack_top_json_;
  std::vector<pulse_stack_frame> frames(kLateTaken);
  int32_t count = 0;
  int64_t ran_ns = 0;
  if (config_.stack_api->take_late(config_.stack_ctx, frames.data(), kLateTaken, &count, &ran_ns) != PULSE_STACK_OK ||
      ran_ns < stall_start_mono_ns_ || count == 0) {
    return diag_stack_top_json_;  // none, or one left from an earlier stall
  }
  std::string json = "[";
  int32_t kept = 0;
  for (int32_t i = 0; i < count && kept < kLateFrames; i++) {
    const pulse_stack_frame& f = frames[i];
    if (IsOwnFile(f.file)) continue;
    if (kept++ > 0) json += ",";
    json += "{\"function\":\"" + JsonEscape(f.function[0] ? f.function : "<anonymous>") + "\",\"file\":\"" +
            JsonEscape(f.file) + "\",\"line\":" + std::to_string(f.line) + ",\"column\":" + std::to_string(f.column) + "}";
  }
  return json + "],\"stackTakenAt\":\"end\"";
}

}  // namespace pulse

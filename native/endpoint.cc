#include "endpoint.h"

#include <time.h>

#include <cmath>

#include "heartbeat.h"
#include "json_value.h"
#include "livez.h"
#include "metrics.h"

namespace pulse {
namespace {

constexpr char kText[] = "text/plain; charset=utf-8";
constexpr char kMetricsType[] = "text/plain; version=0.0.4; charset=utf-8";

int64_t WallMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// The innermost frame of the ongoing stall's stack that is not the package's
// own, from its diagnosis; without one, where the thread is outside
// JavaScript (a native frame, or what it waits for) as the function.
StallFrame Frame(const std::string& stall_json) {
  StallFrame frame;
  JsonValue stall;
  if (stall_json.empty() || !ParseJson(stall_json, &stall)) return frame;
  const JsonValue* user = UserTopFrame(stall);
  if (user == nullptr) {
    frame.function = OutsideJsText(stall);
    frame.present = !frame.function.empty();
    return frame;
  }
  const JsonValue& top = *user;
  const JsonValue* fn = top.Get("function");
  const JsonValue* file = top.Get("file");
  const JsonValue* line = top.Get("line");
  frame.present = true;
  frame.function = fn != nullptr && fn->type == JsonValue::Type::kString ? fn->string : "<anonymous>";
  frame.file = file != nullptr && file->type == JsonValue::Type::kString ? file->string : "";
  frame.line = line != nullptr && line->type == JsonValue::Type::kNumber ? static_cast<int64_t>(line->number) : 0;
  return frame;
}

}  // namespace

std::string PulseEndpoint::Metrics() const {
  const Snapshot s = heartbeat_->Read();
  MetricsInput in;
  in.version = config_.version;
  in.strategy = config_.strategy;
  in.runtime = config_.runtime;
  in.file = config_.file;
  in.interval_seconds = config_.interval_seconds;
  in.max_stall_seconds = config_.max_stall_seconds;
  in.beats = s.beats;
  in.withheld = s.withheld;
  in.errors = s.errors;
  in.stalls = s.stalls;
  in.stall_seconds = static_cast<double>(s.stall_ns) / 1e9;
  in.stalled = s.stalled;
  in.loop_silent_seconds = static_cast<double>(s.loop_silent_ns) / 1e9;
  in.last_beat_timestamp = static_cast<double>(s.last_beat_wall_ns / 1000000) / 1e3;
  in.active_jobs = heartbeat_->ActiveCount();
  if (s.stalled) in.frame = Frame(heartbeat_->StallJson());
  in.delay = heartbeat_->loop_delay().Read();
  return BuildMetrics(in);
}

std::string PulseEndpoint::Respond(const Request& request) {
  const bool head = request.method == Method::kHead;
  const bool livez = request.path == "/livez";
  const bool metrics = request.path == "/metrics";
  const bool status = request.path == "/status";
  if (!livez && !metrics && !status) return HttpResponse(404, kText, "not found: try /livez, /metrics or /status\n", head);
  if (request.method == Method::kOther) {
    return HttpResponse(405, kText, "method not allowed: GET or HEAD\n", false, "Allow: GET, HEAD\r\n");
  }
  if (metrics) return HttpResponse(200, kMetricsType, Metrics(), head);
  if (status) {
    const std::string record = ReadRecordText(config_.file);
    if (record.empty()) return HttpResponse(503, "application/json", "{\"error\":\"the record cannot be read\"}\n", head);
    return HttpResponse(200, "application/json", record, head);
  }
  // /livez: check's verdict, with its default max-age or ?max-age=S.
  double max_age = 2 * config_.interval_seconds;
  std::string given;
  if (QueryValue(request.query, "max-age", &given) && !ParseMaxAge(given, &max_age)) {
    return HttpResponse(400, kText, "max-age must be a number of seconds from 0.01 to 86400\n", head);
  }
  const Verdict verdict = CheckFile(config_.file, static_cast<int64_t>(std::floor(max_age * 1000 + 0.5)), WallMs());
  return HttpResponse(verdict.ok ? 200 : 503, kText, verdict.line, head);
}

}  // namespace pulse

// /livez's verdict: what `celery-pulse-native check` would say about the
// healthcheck file at this moment, read the way src/cli/probe.ts reads it
// (lstat, never following a link; the record opened O_NOFOLLOW|O_NONBLOCK and
// parsed as JSON) and worded as src/cli/cli.ts's verdictLine() words it, so an
// httpGet probe and an exec probe agree. Plain POSIX, no Node-API.
#pragma once

#include <cstdint>
#include <string>

namespace pulse {

struct Verdict {
  bool ok = false;   // check's exit 0
  std::string line;  // check's line, ending in "\n"
};

// `now_ms`: wall clock in ms (Date.now()).
Verdict CheckFile(const std::string& file, int64_t max_age_ms, int64_t now_ms);

// `check --max-age`'s parse: a plain decimal number of seconds from 0.01 to
// 86400 (as parseSeconds() accepts it); false when it is not one.
bool ParseMaxAge(const std::string& text, double* seconds);

// The record as written: at most 64 KiB, read without following a link; empty
// when there is none to read.
std::string ReadRecordText(const std::string& file);

struct JsonValue;

// The innermost frame of a record's (or a diagnosis's) `stack` that is not
// the package's own ("internal": true), or null (stall-text.ts userFrames()).
const JsonValue* UserTopFrame(const JsonValue& diagnosis);

// Where the thread is when no JavaScript frame says it, as stall-text.ts
// outsideJsText() words it: "in sqlite3VdbeExec (better_sqlite3.node)" or
// "waiting for child 4242: sleep 15"; empty when neither is known.
std::string OutsideJsText(const JsonValue& diagnosis);

// JavaScript's Number.prototype.toFixed(1), for the texts that must match.
std::string ToFixed1(double value);

}  // namespace pulse

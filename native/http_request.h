// The endpoint's request parser: a pure function over the bytes received so
// far, apart from the socket loop so a fuzzer can drive it alone. It reads
// only the request head (request line and header lines); every response
// closes its connection, so a body is never read.
#pragma once

#include <cstddef>
#include <string>

namespace pulse {

// Request heads larger than this are answered 431.
constexpr size_t kMaxRequestHead = 8192;

enum class ParseStatus {
  kNeedMore,  // no complete head yet, and none of it is bad so far
  kOk,        // a complete, well-formed head
  kBad,       // malformed: answered 400
  kTooLarge,  // no end of head within kMaxRequestHead bytes: answered 431
};

enum class Method { kGet, kHead, kOther };

struct Request {
  Method method = Method::kOther;
  std::string path;   // "/livez" (no query); percent-escapes left as sent
  std::string query;  // after '?', without it; empty when none
  size_t head_bytes = 0;  // bytes of the head, its final empty line included
};

// Parses `len` bytes starting at `data`. On kOk fills *out. Pipelined bytes
// after the head are ignored (the connection is closed after one answer).
ParseStatus ParseRequest(const char* data, size_t len, Request* out);

// The value of `name` in a query string ("a=1&max-age=5"): true and *value
// set when present. No percent-decoding: the endpoint's values are numbers.
bool QueryValue(const std::string& query, const std::string& name, std::string* value);

}  // namespace pulse

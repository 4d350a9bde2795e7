// libFuzzer target: the endpoint's request parser (native/http_request.cc)
// and the query and max-age readers behind /livez, over arbitrary bytes.
// Checks what the server relies on, beyond "no crash": a parsed head lies
// within the bytes and the 8 KiB bound, its path starts with "/" and holds
// no space or control byte, and a result never changes as bytes are added
// after a complete or bad head.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <string>

#include "../../native/http_request.h"
#include "../../native/livez.h"

using pulse::ParseRequest;
using pulse::ParseStatus;
using pulse::Request;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const char* bytes = reinterpret_cast<const char*>(data);
  Request request;
  const ParseStatus status = ParseRequest(bytes, size, &request);
  if (status == ParseStatus::kOk) {
    if (request.head_bytes == 0 || request.head_bytes > size || request.head_bytes > pulse::kMaxRequestHead) abort();
    if (request.path.empty() || request.path[0] != '/') abort();
    for (unsigned char c : request.path + request.query) {
      if (c <= 0x20 || c >= 0x7f) abort();
    }
    // The same head with bytes after it (a pipelined request) parses the same.
    Request again;
    std::string more(bytes, request.head_bytes);
    more += "GET /x HTTP/1.1\r\n";
    if (ParseRequest(more.data(), more.size(), &again) != ParseStatus::kOk || again.path != request.path ||
        again.head_bytes != request.head_bytes) {
      abort();
    }
    std::string value;
    if (pulse::QueryValue(request.query, "max-age", &value)) {
      double seconds = 0;
      if (pulse::ParseMaxAge(value, &seconds) && !(seconds >= 0.01 && seconds <= 86400)) abort();
    }
  } else if (status == ParseStatus::kNeedMore) {
    if (size >= pulse::kMaxRequestHead) abort();
  } else if (status == ParseStatus::kTooLarge) {
    if (size < pulse::kMaxRequestHead) abort();
  }
  // A prefix of bytes never turns a later verdict into "bad" retroactively:
  // once bad, more bytes keep it bad (the server answers at the first bad read).
  if (status == ParseStatus::kBad && size < 4096) {
    std::string more(bytes, size);
    more += "\r\n\r\n";
    Request again;
    if (ParseRequest(more.data(), more.size(), &again) != ParseStatus::kBad) abort();
  }
  return 0;
}

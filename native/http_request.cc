#include "http_request.h"

#include <cstring>

namespace pulse {
namespace {

// RFC 9110 token characters (methods and header names).
bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// Request-target characters: visible ASCII, no space, no control byte.
bool IsTargetChar(unsigned char c) { return c > 0x20 && c < 0x7f; }

// Header value characters: tab, visible ASCII and obs-text; no control byte.
bool IsValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

// The end of the line starting at `from`: the index of its '\n' (the line
// excludes an optional '\r' before it), or `len` when there is none yet.
size_t LineEnd(const char* data, size_t from, size_t len) {
  const void* nl = memchr(data + from, '\n', len - from);
  return nl == nullptr ? len : static_cast<size_t>(static_cast<const char*>(nl) - data);
}

bool ParseRequestLine(const char* line, size_t n, Request* out) {
  size_t i = 0;
  while (i < n && IsTokenChar(static_cast<unsigned char>(line[i]))) i++;
  if (i == 0 || i == n || line[i] != ' ') return false;
  const std::string method(line, i);
  out->method = method == "GET" ? Method::kGet : method == "HEAD" ? Method::kHead : Method::kOther;
  const size_t target = ++i;
  while (i < n && IsTargetChar(static_cast<unsigned char>(line[i]))) i++;
  if (i == target || i == n || line[i] != ' ') return false;
  if (line[target] != '/') return false;  // origin-form only
  const std::string uri(line + target, i - target);
  i++;
  // HTTP/1.0 or HTTP/1.1 (HTTP/1.x accepted as 1.x clients do).
  if (n - i != 8 || memcmp(line + i, "HTTP/1.", 7) != 0 || line[i + 7] < '0' || line[i + 7] > '9') {
    return false;
  }
  const size_t q = uri.find('?');
  out->path = uri.substr(0, q);
  out->query = q == std::string::npos ? std::string() : uri.substr(q + 1);
  return true;
}

// "Name: value": a token, a colon, a value without control bytes.
bool ParseHeaderLine(const char* line, size_t n) {
  size_t i = 0;
  while (i < n && IsTokenChar(static_cast<unsigned char>(line[i]))) i++;
  if (i == 0 || i == n || line[i] != ':') return false;
  const size_t name_len = i;
  for (i++; i < n; i++) {
    if (!IsValueChar(static_cast<unsigned char>(line[i]))) return false;
  }
  // Content-Length must be a plain decimal that fits: the body is never
  // read, but an absurd or malformed length marks a malformed request.
  static const char kLength[] = "content-length";
  if (name_len == sizeof kLength - 1 && strncasecmp(line, kLength, name_len) == 0) {
    size_t v = name_len + 1;
    while (v < n && (line[v] == ' ' || line[v] == '\t')) v++;
    size_t end = n;
    while (end > v && (line[end - 1] == ' ' || line[end - 1] == '\t')) end--;
    if (v == end || end - v > 18) return false;
    for (size_t d = v; d < end; d++) {
      if (line[d] < '0' || line[d] > '9') return false;
    }
  }
  return true;
}

}  // namespace

ParseStatus ParseRequest(const char* data, size_t len, Request* out) {
  // Only the first kMaxRequestHead bytes can hold a head we accept.
  const size_t limit = len < kMaxRequestHead ? len : kMaxRequestHead;
  size_t pos = 0;
  bool first = true;
  for (;;) {
    const size_t nl = LineEnd(data, pos, limit);
    if (nl == limit) {
      // An incomplete line: bad already if it holds a NUL (a control byte
      // no line may carry), else wait for more unless the limit is reached.
      if (memchr(data + pos, '\0', limit - pos) != nullptr) return ParseStatus::kBad;
      return len >= kMaxRequestHead ? ParseStatus::kTooLarge : ParseStatus::kNeedMore;
    }
    size_t n = nl - pos;
    if (n > 0 && data[nl - 1] == '\r') n--;
    const char* line = data + pos;
    pos = nl + 1;
    if (first) {
      // Leading empty lines before a request line are tolerated (RFC 9112).
      if (n == 0) continue;
      if (!ParseRequestLine(line, n, out)) return ParseStatus::kBad;
      first = false;
      continue;
    }
    if (n == 0) {
      out->head_bytes = pos;
      return ParseStatus::kOk;
    }
    if (!ParseHeaderLine(line, n)) return ParseStatus::kBad;
  }
}

bool QueryValue(const std::string& query, const std::string& name, std::string* value) {
  size_t start = 0;
  while (start <= query.size()) {
    size_t end = query.find('&', start);
    if (end == std::string::npos) end = query.size();
    const size_t eq = query.find('=', start);
    const size_t key_end = eq != std::string::npos && eq < end ? eq : end;
    if (query.compare(start, key_end - start, name) == 0 && key_end - start == name.size()) {
      *value = key_end < end ? query.substr(key_end + 1, end - key_end - 1) : std::string();
      return true;
    }
    start = end + 1;
  }
  return false;
}

}  // namespace pulse

// Small helpers for the JSON the heartbeat writes (records, log lines).
#pragma once

#include <stdio.h>

#include <string>

namespace pulse {

// A JSON string literal's content: text from JS (a health check's error, a
// track() label) or from /proc may hold quotes, backslashes and control bytes.
inline std::string JsonEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// "text" quoted, or null when empty.
inline std::string JsonStringOrNull(const std::string& text) {
  return text.empty() ? std::string("null") : "\"" + JsonEscape(text) + "\"";
}

}  // namespace pulse

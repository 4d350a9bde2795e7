// libFuzzer target: the exposition text's escaping (native/metrics.cc) and
// the record reader behind /livez (native/json_value.cc), over arbitrary
// bytes. An escaped label value or HELP text must hold no raw newline, no
// unescaped quote (labels) and must read back as the input; a whole
// exposition built with the bytes as the stuck frame's names must keep one
// sample per line.
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <string>

#include "../../native/json_value.h"
#include "../../native/metrics.h"

namespace {

// The format's unescaping of a label value (\\, \" and \n).
bool Unescape(const std::string& text, bool label, std::string* out) {
  for (size_t i = 0; i < text.size(); i++) {
    const char c = text[i];
    if (c == '\n') return false;
    if (label && c == '"') return false;
    if (c != '\\') {
      *out += c;
      continue;
    }
    if (++i == text.size()) return false;
    const char e = text[i];
    if (e == '\\') *out += '\\';
    else if (e == 'n') *out += '\n';
    else if (label && e == '"') *out += '"';
    else return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  std::string back;
  if (!Unescape(pulse::PromEscapeLabel(input), true, &back) || back != input) abort();
  back.clear();
  if (!Unescape(pulse::PromEscapeHelp(input), false, &back) || back != input) abort();

  pulse::MetricsInput in;
  in.file = input;
  in.stalled = true;
  in.frame.present = true;
  in.frame.function = input;
  in.frame.file = input;
  const std::string text = pulse::BuildMetrics(in, false);
  // Every line is a comment or a sample whose name starts the line.
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) abort();  // the text ends with a newline
    if (text[start] != '#' && !(text[start] >= 'a' && text[start] <= 'z')) abort();
    start = end + 1;
  }

  pulse::JsonValue value;
  if (pulse::ParseJson(input, &value)) {
    // What parses re-serialises to JSON that parses to the same text again.
    const std::string once = pulse::JsonStringify(value);
    pulse::JsonValue again;
    if (!pulse::ParseJson(once, &again) || pulse::JsonStringify(again) != once) abort();
    (void)pulse::JsToString(value);
  }
  return 0;
}

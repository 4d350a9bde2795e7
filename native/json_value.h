// A small JSON reader for the records the heartbeat writes, read back by the
// endpoint (the /livez verdict, the stalled frame). It accepts what JSON.parse
// accepts, within a nesting bound. Plain C++.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace pulse {

struct JsonValue {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> items;                            // kArray
  std::vector<std::pair<std::string, JsonValue>> members;  // kObject, in order

  // The member named `key` (the last one, as JSON.parse keeps), or null.
  const JsonValue* Get(const std::string& key) const;
};

// Parses `text` whole (surrounding white space allowed); false when it is not JSON.
bool ParseJson(const std::string& text, JsonValue* out);

// String(value) as JavaScript writes it ("null", "true", "42", "1.5", the
// string itself, an array joined with ",", "[object Object]").
std::string JsToString(const JsonValue& value);
// JSON.stringify(value).
std::string JsonStringify(const JsonValue& value);
// How JavaScript writes a number (String(n)).
std::string JsNumber(double n);

}  // namespace pulse

#include "json_value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmath>

namespace pulse {
namespace {

// Deeper nesting than any record has is refused (bounded recursion).
constexpr int kMaxDepth = 64;

struct Reader {
  const char* p;
  const char* end;

  void Space() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  }
  bool Literal(const char* word) {
    const size_t n = strlen(word);
    if (static_cast<size_t>(end - p) < n || memcmp(p, word, n) != 0) return false;
    p += n;
    return true;
  }
  static int Hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') return (c | 0x20) - 'a' + 10;
    return -1;
  }
  bool Hex4(unsigned* out) {
    if (end - p < 4) return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
      const int h = Hex(p[i]);
      if (h < 0) return false;
      v = v * 16 + static_cast<unsigned>(h);
    }
    p += 4;
    *out = v;
    return true;
  }
  static void Utf8(unsigned cp, std::string* out) {
    if (cp < 0x80) {
      *out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      *out += static_cast<char>(0xc0 | (cp >> 6));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      *out += static_cast<char>(0xe0 | (cp >> 12));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      *out += static_cast<char>(0xf0 | (cp >> 18));
      *out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      *out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      *out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  bool String(std::string* out) {
    p++;  // the opening quote
    while (p < end) {
      const unsigned char c = static_cast<unsigned char>(*p++);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') {
        *out += static_cast<char>(c);
        continue;
      }
      if (p == end) return false;
      const char e = *p++;
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          unsigned cp;
          if (!Hex4(&cp)) return false;
          if (cp >= 0xd800 && cp < 0xdc00 && end - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            const char* save = p;
            p += 2;
            unsigned low;
            if (Hex4(&low) && low >= 0xdc00 && low < 0xe000) {
              cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            } else {
              p = save;
            }
          }
          Utf8(cp, out);  // a lone surrogate is kept as its 3 bytes
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }
  bool Number(double* out) {
    const char* start = p;
    if (p < end && *p == '-') p++;
    if (p == end) return false;
    if (*p == '0') {
      p++;
    } else if (*p >= '1' && *p <= '9') {
      while (p < end && *p >= '0' && *p <= '9') p++;
    } else {
      return false;
    }
    if (p < end && *p == '.') {
      p++;
      if (p == end || *p < '0' || *p > '9') return false;
      while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
      p++;
      if (p < end && (*p == '+' || *p == '-')) p++;
      if (p == end || *p < '0' || *p > '9') return false;
      while (p < end && *p >= '0' && *p <= '9') p++;
    }
    *out = strtod(std::string(start, p).c_str(), nullptr);
    return true;
  }
  bool Value(JsonValue* out, int depth) {
    if (depth > kMaxDepth) return false;
    Space();
    if (p == end) return false;
    switch (*p) {
      case 'n': out->type = JsonValue::Type::kNull; return Literal("null");
      case 't': out->type = JsonValue::Type::kBool; out->boolean = true; return Literal("true");
      case 'f': out->type = JsonValue::Type::kBool; return Literal("false");
      case '"': out->type = JsonValue::Type::kString; return String(&out->string);
      case '[': {
        out->type = JsonValue::Type::kArray;
        p++;
        Space();
        if (p < end && *p == ']') return ++p, true;
        for (;;) {
          out->items.emplace_back();
          if (!Value(&out->items.back(), depth + 1)) return false;
          Space();
          if (p < end && *p == ',') { p++; continue; }
          if (p < end && *p == ']') return ++p, true;
          return false;
        }
      }
      case '{': {
        out->type = JsonValue::Type::kObject;
        p++;
        Space();
        if (p < end && *p == '}') return ++p, true;
        for (;;) {
          Space();
          if (p == end || *p != '"') return false;
          std::string key;
          if (!String(&key)) return false;
          Space();
          if (p == end || *p != ':') return false;
          p++;
          out->members.emplace_back(std::move(key), JsonValue());
          if (!Value(&out->members.back().second, depth + 1)) return false;
          Space();
          if (p < end && *p == ',') { p++; continue; }
          if (p < end && *p == '}') return ++p, true;
          return false;
        }
      }
      default:
        out->type = JsonValue::Type::kNumber;
        return Number(&out->number);
    }
  }
};

void StringifyString(const std::string& s, std::string* out) {
  *out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof buf, "\\u%04x", c);
          *out += buf;
        } else {
          *out += static_cast<char>(c);
        }
    }
  }
  *out += '"';
}

void Stringify(const JsonValue& v, std::string* out) {
  switch (v.type) {
    case JsonValue::Type::kNull: *out += "null"; break;
    case JsonValue::Type::kBool: *out += v.boolean ? "true" : "false"; break;
    case JsonValue::Type::kNumber: *out += std::isfinite(v.number) ? JsNumber(v.number) : "null"; break;
    case JsonValue::Type::kString: StringifyString(v.string, out); break;
    case JsonValue::Type::kArray:
      *out += '[';
      for (size_t i = 0; i < v.items.size(); i++) {
        if (i) *out += ',';
        Stringify(v.items[i], out);
      }
      *out += ']';
      break;
    case JsonValue::Type::kObject: {
      // JSON.parse keeps the last of duplicate keys, at the first's place.
      *out += '{';
      bool first = true;
      for (size_t i = 0; i < v.members.size(); i++) {
        bool later = false;
        for (size_t j = 0; j < i; j++) later = later || v.members[j].first == v.members[i].first;
        if (later) continue;
        if (!first) *out += ',';
        first = false;
        StringifyString(v.members[i].first, out);
        *out += ':';
        Stringify(*v.Get(v.members[i].first), out);
      }
      *out += '}';
      break;
    }
  }
}

}  // namespace

const JsonValue* JsonValue::Get(const std::string& key) const {
  if (type != Type::kObject) return nullptr;
  for (size_t i = members.size(); i-- > 0;) {
    if (members[i].first == key) return &members[i].second;
  }
  return nullptr;
}

bool ParseJson(const std::string& text, JsonValue* out) {
  Reader reader{text.data(), text.data() + text.size()};
  *out = JsonValue();
  if (!reader.Value(out, 0)) return false;
  reader.Space();
  return reader.p == reader.end;
}

std::string JsNumber(double n) {
  if (std::isnan(n)) return "NaN";
  if (std::isinf(n)) return n > 0 ? "Infinity" : "-Infinity";
  if (n == 0) return "0";
  std::string sign = n < 0 ? "-" : "";
  const double a = std::fabs(n);
  // The shortest digits that read back as the same double.
  char buf[40];
  int precision = 1;
  for (; precision <= 17; precision++) {
    snprintf(buf, sizeof buf, "%.*e", precision - 1, a);
    if (strtod(buf, nullptr) == a) break;
  }
  // buf: "d.ddde+XX"
  std::string digits;
  const char* e = strchr(buf, 'e');
  for (const char* c = buf; c < e; c++) {
    if (*c != '.') digits += *c;
  }
  while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
  const int exp = atoi(e + 1);  // a = 0.digits x 10^(exp + 1)
  const int k = static_cast<int>(digits.size());
  const int point = exp + 1;  // JavaScript's n
  if (k <= point && point <= 21) return sign + digits + std::string(point - k, '0');
  if (0 < point && point <= 21) return sign + digits.substr(0, point) + "." + digits.substr(point);
  if (-6 < point && point <= 0) return sign + "0." + std::string(-point, '0') + digits;
  const std::string mantissa = k == 1 ? digits : digits.substr(0, 1) + "." + digits.substr(1);
  return sign + mantissa + "e" + (point - 1 >= 0 ? "+" : "-") + std::to_string(std::abs(point - 1));
}

std::string JsToString(const JsonValue& v) {
  switch (v.type) {
    case JsonValue::Type::kNull: return "null";
    case JsonValue::Type::kBool: return v.boolean ? "true" : "false";
    case JsonValue::Type::kNumber: return JsNumber(v.number);
    case JsonValue::Type::kString: return v.string;
    case JsonValue::Type::kArray: {
      std::string out;
      for (size_t i = 0; i < v.items.size(); i++) {
        if (i) out += ',';
        // null and undefined join as empty.
        if (v.items[i].type != JsonValue::Type::kNull) out += JsToString(v.items[i]);
      }
      return out;
    }
    case JsonValue::Type::kObject: return "[object Object]";
  }
  return std::string();
}

std::string JsonStringify(const JsonValue& value) {
  std::string out;
  Stringify(value, &out);
  return out;
}

}  // namespace pulse

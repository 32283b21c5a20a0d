// JSON parsing (RFC 8259, strict: no comments, no trailing commas, UTF-8 validated) and
// compact serialisation.
#include "io/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unordered_set>

namespace ait {

const char* Json::type_name(Type t) {
  switch (t) {
    case Type::Null: return "null";
    case Type::Bool: return "a boolean";
    case Type::Number: return "a number";
    case Type::String: return "a string";
    case Type::Array: return "an array";
    case Type::Object: return "an object";
  }
  return "?";
}

namespace {
[[noreturn]] void wrong_type(Json::Type have, const char* want) {
  throw Error(std::string("JSON value is ") + Json::type_name(have) + ", expected " + want);
}
}  // namespace

bool Json::as_bool() const {
  if (type_ != Type::Bool) wrong_type(type_, "a boolean");
  return bool_;
}
double Json::as_number() const {
  if (type_ != Type::Number) wrong_type(type_, "a number");
  return num_;
}
int64_t Json::as_int(int64_t lo, int64_t hi) const {
  double d = as_number();
  // 2^63 is exactly representable; every double below it in magnitude converts safely.
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != std::floor(d))
    throw Error("JSON number " + (std::isfinite(d) ? Json(d).dump() : std::to_string(d)) + " is not an integer");
  int64_t v = int64_t(d);
  if (v < lo || v > hi)
    throw Error("JSON number " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " + std::to_string(hi) +
                "]");
  return v;
}
const std::string& Json::as_string() const {
  if (type_ != Type::String) wrong_type(type_, "a string");
  return str_;
}
const Json::Array& Json::as_array() const {
  if (type_ != Type::Array) wrong_type(type_, "an array");
  return arr_;
}
Json::Array& Json::as_array() { return const_cast<Array&>(static_cast<const Json&>(*this).as_array()); }
const Json::Object& Json::as_object() const {
  if (type_ != Type::Object) wrong_type(type_, "an object");
  return obj_;
}
Json::Object& Json::as_object() { return const_cast<Object&>(static_cast<const Json&>(*this).as_object()); }

size_t Json::size() const {
  if (type_ == Type::Array) return arr_.size();
  if (type_ == Type::Object) return obj_.size();
  return 0;
}

const Json& Json::operator[](size_t i) const {
  const Array& a = as_array();
  if (i >= a.size())
    throw Error("JSON array index " + std::to_string(i) + " out of range (size " + std::to_string(a.size()) + ")");
  return a[i];
}

void Json::push_back(Json v) {
  if (type_ == Type::Null) type_ = Type::Array;
  as_array().push_back(std::move(v));
}

const Json* Json::find(const std::string& key) const {
  if (type_ != Type::Object) return nullptr;
  for (const auto& kv : obj_)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

const Json& Json::at(const std::string& key) const {
  if (type_ != Type::Object) wrong_type(type_, "an object");
  const Json* v = find(key);
  if (!v) throw Error("JSON object has no key '" + key + "'");
  return *v;
}

Json& Json::set(const std::string& key, Json v) {
  if (type_ == Type::Null) type_ = Type::Object;
  Object& o = as_object();
  for (auto& kv : o)
    if (kv.first == key) {
      kv.second = std::move(v);
      return kv.second;
    }
  o.emplace_back(key, std::move(v));
  return o.back().second;
}

bool Json::operator==(const Json& o) const {
  if (type_ != o.type_) return false;
  switch (type_) {
    case Type::Null: return true;
    case Type::Bool: return bool_ == o.bool_;
    case Type::Number: return num_ == o.num_;
    case Type::String: return str_ == o.str_;
    case Type::Array: return arr_ == o.arr_;
    case Type::Object: return obj_ == o.obj_;
  }
  return false;
}

// ------------------------------------------------------------------------------------------
// Serialisation
// ------------------------------------------------------------------------------------------
namespace {

// Length of the valid UTF-8 sequence at s (first byte >= 0x80) with `avail` bytes left, or 0.
size_t utf8_len(const unsigned char* s, size_t avail) {
  unsigned char c = s[0];
  size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) len = 2;
  else if (c == 0xE0) len = 3, lo = 0xA0;
  else if (c >= 0xE1 && c <= 0xEC) len = 3;
  else if (c == 0xED) len = 3, hi = 0x9F;  // no encoded surrogates
  else if (c >= 0xEE && c <= 0xEF) len = 3;
  else if (c == 0xF0) len = 4, lo = 0x90;
  else if (c >= 0xF1 && c <= 0xF3) len = 4;
  else if (c == 0xF4) len = 4, hi = 0x8F;  // nothing past U+10FFFF
  else return 0;
  if (avail < len) return 0;
  if (s[1] < lo || s[1] > hi) return 0;
  for (size_t i = 2; i < len; ++i)
    if (s[i] < 0x80 || s[i] > 0xBF) return 0;
  return len;
}

void dump_number(double d, std::string& out) {
  if (!std::isfinite(d)) throw Error("JSON cannot represent the non-finite number " + std::to_string(d));
  char buf[64];
  std::to_chars_result r;
  if (d == std::floor(d) && std::fabs(d) < 9007199254740992.0) {
    r = std::to_chars(buf, buf + sizeof buf, int64_t(d));
  } else {
    r = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::general, 9);
  }
  out.append(buf, r.ptr);
}

// Invalid UTF-8 (possible only in strings built in code: the parser rejects it) is written as
// U+FFFD so that the output always parses.
void dump_string(const std::string& s, std::string& out) {
  out.push_back('"');
  const unsigned char* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = p[i];
    if (c >= 0x80) {
      size_t k = utf8_len(p + i, s.size() - i);
      if (k == 0) {
        out += "\xef\xbf\xbd";
      } else {
        out.append(s, i, k);
        i += k - 1;
      }
      continue;
    }
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out.push_back(char(c));
        }
    }
  }
  out.push_back('"');
}

}  // namespace

void Json::dump_to(std::string& out) const {
  switch (type_) {
    case Type::Null: out += "null"; break;
    case Type::Bool: out += bool_ ? "true" : "false"; break;
    case Type::Number: dump_number(num_, out); break;
    case Type::String: dump_string(str_, out); break;
    case Type::Array:
      out.push_back('[');
      for (size_t i = 0; i < arr_.size(); ++i) {
        if (i) out.push_back(',');
        arr_[i].dump_to(out);
      }
      out.push_back(']');
      break;
    case Type::Object:
      out.push_back('{');
      for (size_t i = 0; i < obj_.size(); ++i) {
        if (i) out.push_back(',');
        dump_string(obj_[i].first, out);
        out.push_back(':');
        obj_[i].second.dump_to(out);
      }
      out.push_back('}');
      break;
  }
}

std::string Json::dump() const {
  std::string out;
  dump_to(out);
  return out;
}

// ------------------------------------------------------------------------------------------
// Parsing
// ------------------------------------------------------------------------------------------
namespace {

constexpr int kMaxDepth = 256;

class Parser {
public:
  Parser(const char* data, size_t n, const std::string& source)
      : begin_(data), p_(data), end_(data + n), source_(source) {}

  Json document() {
    ws();
    Json v = value(0);
    ws();
    if (p_ != end_) fail("unexpected text after the JSON value");
    return v;
  }

private:
  [[noreturn]] void fail(const std::string& what) const { fail_at(p_, what); }
  [[noreturn]] void fail_at(const char* at, const std::string& what) const {
    size_t line = 1, col = 1;
    for (const char* q = begin_; q < at && q < end_; ++q) {
      if (*q == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    throw Error(source_ + ": invalid JSON at line " + std::to_string(line) + ", column " + std::to_string(col) + ": " +
                what);
  }
  std::string describe_here() const {
    if (p_ >= end_) return "end of input";
    unsigned char c = static_cast<unsigned char>(*p_);
    if (c >= 0x20 && c < 0x7F) return std::string("'") + char(c) + "'";
    char buf[16];
    std::snprintf(buf, sizeof buf, "byte 0x%02x", c);
    return buf;
  }

  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool literal(const char* word) {
    size_t k = std::strlen(word);
    if (size_t(end_ - p_) >= k && std::memcmp(p_, word, k) == 0) {
      p_ += k;
      return true;
    }
    return false;
  }

  Json value(int depth) {
    if (p_ >= end_) fail("unexpected end of input, expected a value");
    switch (*p_) {
      case '{': return object(depth + 1);
      case '[': return array(depth + 1);
      case '"': return Json(string());
      case 't':
        if (literal("true")) return Json(true);
        break;
      case 'f':
        if (literal("false")) return Json(false);
        break;
      case 'n':
        if (literal("null")) return Json();
        break;
      default:
        if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return Json(number());
    }
    fail("unexpected " + describe_here() + ", expected a value");
  }

  Json object(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    ++p_;  // '{'
    Json obj = Json::object();
    Json::Object& items = obj.as_object();
    std::unordered_set<std::string> keys;
    ws();
    if (p_ < end_ && *p_ == '}') {
      ++p_;
      return obj;
    }
    for (;;) {
      ws();
      if (p_ >= end_ || *p_ != '"') fail("unexpected " + describe_here() + ", expected a string key");
      const char* key_at = p_;
      std::string key = string();
      if (!keys.insert(key).second) fail_at(key_at, "duplicate key \"" + key + "\"");
      ws();
      if (p_ >= end_ || *p_ != ':') fail("unexpected " + describe_here() + ", expected ':' after an object key");
      ++p_;
      ws();
      items.emplace_back(std::move(key), value(depth));
      ws();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        continue;
      }
      if (p_ < end_ && *p_ == '}') {
        ++p_;
        return obj;
      }
      fail("unexpected " + describe_here() + ", expected ',' or '}' in an object");
    }
  }

  Json array(int depth) {
    if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth) + " levels");
    ++p_;  // '['
    Json arr = Json::array();
    Json::Array& items = arr.as_array();
    ws();
    if (p_ < end_ && *p_ == ']') {
      ++p_;
      return arr;
    }
    for (;;) {
      ws();
      items.push_back(value(depth));
      ws();
      if (p_ < end_ && *p_ == ',') {
        ++p_;
        continue;
      }
      if (p_ < end_ && *p_ == ']') {
        ++p_;
        return arr;
      }
      fail("unexpected " + describe_here() + ", expected ',' or ']' in an array");
    }
  }

  static bool digit(char c) { return c >= '0' && c <= '9'; }

  double number() {
    const char* start = p_;
    if (p_ < end_ && *p_ == '-') ++p_;
    if (p_ >= end_ || !digit(*p_)) fail("a number needs digits after '-'");
    if (*p_ == '0') {
      ++p_;
      if (p_ < end_ && digit(*p_)) fail_at(start, "numbers may not have leading zeros");
    } else {
      while (p_ < end_ && digit(*p_)) ++p_;
    }
    if (p_ < end_ && *p_ == '.') {
      ++p_;
      if (p_ >= end_ || !digit(*p_)) fail("a number needs digits after '.'");
      while (p_ < end_ && digit(*p_)) ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ >= end_ || !digit(*p_)) fail("a number needs digits in its exponent");
      while (p_ < end_ && digit(*p_)) ++p_;
    }
    double d = 0;
    auto r = std::from_chars(start, p_, d);
    if (r.ec == std::errc::result_out_of_range) {
      // Underflow rounds to zero; overflow has no double value.
      std::string text(start, p_);
      d = std::strtod(text.c_str(), nullptr);
      if (!std::isfinite(d) || std::fabs(d) > 1.0) fail_at(start, "number " + text + " is out of range");
    } else if (r.ec != std::errc() || r.ptr != p_) {
      fail_at(start, "malformed number");
    }
    return d;
  }

  static void put_utf8(uint32_t cp, std::string& out) {
    if (cp < 0x80) {
      out.push_back(char(cp));
    } else if (cp < 0x800) {
      out.push_back(char(0xC0 | (cp >> 6)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(char(0xE0 | (cp >> 12)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(char(0xF0 | (cp >> 18)));
      out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    }
  }

  uint32_t hex4() {
    if (end_ - p_ < 4) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = p_[i];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else fail("\\u escape needs four hex digits");
    }
    p_ += 4;
    return v;
  }

  std::string string() {
    ++p_;  // opening quote
    std::string out;
    for (;;) {
      if (p_ >= end_) fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return out;
      }
      if (c < 0x20) fail("control character " + describe_here() + " in a string (escape it)");
      if (c >= 0x80) {
        size_t k = utf8_len(reinterpret_cast<const unsigned char*>(p_), size_t(end_ - p_));
        if (k == 0) fail("invalid UTF-8 in a string");
        out.append(p_, k);
        p_ += k;
        continue;
      }
      if (c != '\\') {
        out.push_back(char(c));
        ++p_;
        continue;
      }
      const char* esc = p_;
      ++p_;
      if (p_ >= end_) fail("unterminated string");
      char e = *p_++;
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail_at(esc, "unpaired low surrogate in a \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
              fail_at(esc, "high surrogate \\u escape not followed by a low surrogate");
            p_ += 2;
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail_at(esc, "high surrogate \\u escape not followed by a low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(cp, out);
          break;
        }
        default: p_ = esc; fail("invalid escape sequence in a string");
      }
    }
  }

  const char* begin_;
  const char* p_;
  const char* end_;
  const std::string& source_;
};

}  // namespace

Json Json::parse(const char* data, size_t n, const std::string& source) {
  Parser parser(data, n, source);
  return parser.document();
}

Json Json::parse(const std::string& text, const std::string& source) { return parse(text.data(), text.size(), source); }

}  // namespace ait

// A minimal JSON value: null, bool, number (double), string (UTF-8), array, and object
// (keys kept in insertion order, duplicates rejected by the parser). Used for safetensors
// headers, dataset metadata and configuration.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace ait {

class Json {
public:
  enum class Type { Null, Bool, Number, String, Array, Object };
  using Array = std::vector<Json>;
  using Object = std::vector<std::pair<std::string, Json>>;

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::Bool), bool_(b) {}
  Json(double d) : type_(Type::Number), num_(d) {}
  Json(float d) : type_(Type::Number), num_(d) {}
  Json(int v) : type_(Type::Number), num_(v) {}
  Json(int64_t v) : type_(Type::Number), num_(double(v)) {}
  Json(uint64_t v) : type_(Type::Number), num_(double(v)) {}
  Json(const char* s) : type_(Type::String), str_(s) {}
  Json(std::string s) : type_(Type::String), str_(std::move(s)) {}
  Json(Array a) : type_(Type::Array), arr_(std::move(a)) {}
  static Json array() { return Json(Array{}); }
  static Json object() {
    Json j;
    j.type_ = Type::Object;
    return j;
  }

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::Null; }
  bool is_bool() const { return type_ == Type::Bool; }
  bool is_number() const { return type_ == Type::Number; }
  bool is_string() const { return type_ == Type::String; }
  bool is_array() const { return type_ == Type::Array; }
  bool is_object() const { return type_ == Type::Object; }
  static const char* type_name(Type t);
  const char* type_name() const { return type_name(type_); }

  // Typed access; a wrong type throws ait::Error ("JSON value is a string, expected a number").
  bool as_bool() const;
  double as_number() const;
  // The number as an integer; throws when it is not integral or outside [lo, hi].
  int64_t as_int(int64_t lo = INT64_MIN, int64_t hi = INT64_MAX) const;
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // Arrays and objects: element count (0 for scalars).
  size_t size() const;
  const Json& operator[](size_t i) const;  // arrays; throws when out of range
  void push_back(Json v);                  // arrays (null becomes an empty array)

  // Objects. find() returns nullptr when the key is absent; at() throws naming the key.
  const Json* find(const std::string& key) const;
  bool has(const std::string& key) const { return find(key) != nullptr; }
  const Json& at(const std::string& key) const;
  // Replaces the value of an existing key or appends a new one (null becomes an empty object).
  Json& set(const std::string& key, Json v);

  // Compact text. Integral numbers (|x| < 2^53) print as integers, others with %.9g;
  // non-finite numbers have no JSON form and throw.
  std::string dump() const;

  // Parses a complete JSON text (surrounding whitespace allowed). Errors throw ait::Error
  // "<source>: invalid JSON at line L, column C: <what>".
  static Json parse(const std::string& text, const std::string& source = "JSON");
  static Json parse(const char* data, size_t n, const std::string& source = "JSON");

  bool operator==(const Json& o) const;
  bool operator!=(const Json& o) const { return !(*this == o); }

private:
  void dump_to(std::string& out) const;
  Type type_ = Type::Null;
  bool bool_ = false;
  double num_ = 0;
  std::string str_;
  Array arr_;
  Object obj_;
};

// Free-function spellings.
inline Json parse_json(const std::string& text, const std::string& source = "JSON") {
  return Json::parse(text, source);
}

}  // namespace ait

#include "io/safetensors.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "io/inflate.h"
#include "io/json.h"

namespace ait {

namespace {

constexpr bool kLittleEndian =
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    false;
#else
    true;
#endif

// Largest element count we accept: keeps numel * 8 far from overflowing.
constexpr uint64_t kMaxElements = uint64_t(1) << 60;

// Element count, or -1 when a dim is negative or the product exceeds kMaxElements.
int64_t checked_numel(const Shape& s) {
  uint64_t n = 1;
  bool zero = false;
  for (int64_t d : s) {
    if (d < 0) return -1;
    if (d == 0) zero = true;
  }
  if (zero) return 0;
  for (int64_t d : s) {
    if (uint64_t(d) > kMaxElements / n) return -1;
    n *= uint64_t(d);
  }
  return int64_t(n);
}

template <typename T>
std::vector<T> load_le_array(const std::vector<uint8_t>& bytes) {
  std::vector<T> out(bytes.size() / sizeof(T));
  if (out.empty()) return out;
  if (kLittleEndian) {
    std::memcpy(out.data(), bytes.data(), out.size() * sizeof(T));
  } else {
    for (size_t i = 0; i < out.size(); ++i) {
      uint8_t tmp[sizeof(T)];
      for (size_t b = 0; b < sizeof(T); ++b) tmp[b] = bytes[i * sizeof(T) + sizeof(T) - 1 - b];
      std::memcpy(&out[i], tmp, sizeof(T));
    }
  }
  return out;
}

template <typename T>
std::vector<uint8_t> store_le_array(const std::vector<T>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(T));
  if (out.empty()) return out;
  if (kLittleEndian) {
    std::memcpy(out.data(), values.data(), out.size());
  } else {
    for (size_t i = 0; i < values.size(); ++i) {
      uint8_t tmp[sizeof(T)];
      std::memcpy(tmp, &values[i], sizeof(T));
      for (size_t b = 0; b < sizeof(T); ++b) out[i * sizeof(T) + b] = tmp[sizeof(T) - 1 - b];
    }
  }
  return out;
}

template <typename T>
StTensor make_tensor(const char* dtype, const char* fn, const Shape& shape, const std::vector<T>& values) {
  int64_t n = checked_numel(shape);
  if (n < 0) throw Error(std::string("StTensor::") + fn + ": invalid shape " + shape_str(shape));
  if (uint64_t(n) != values.size())
    throw Error(std::string("StTensor::") + fn + ": shape " + shape_str(shape) + " has " + std::to_string(n) +
                " elements but " + std::to_string(values.size()) + " values were given");
  StTensor t;
  t.dtype = dtype;
  t.shape = shape;
  t.bytes = store_le_array(values);
  return t;
}

}  // namespace

size_t st_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2}, {"U16", 2}, {"F16", 2},
      {"BF16", 2}, {"I32", 4}, {"U32", 4}, {"F32", 4},     {"I64", 8},     {"U64", 8}, {"F64", 8}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

// ------------------------------------------------------------------------------------------
// StTensor
// ------------------------------------------------------------------------------------------
std::string StTensor::where() const {
  std::string w = source.empty() ? std::string() : source + ": ";
  return w + (name.empty() ? std::string("tensor") : "tensor '" + name + "'");
}

int64_t StTensor::numel() const {
  int64_t n = checked_numel(shape);
  if (n < 0) throw Error(where() + ": invalid shape " + shape_str(shape));
  return n;
}

namespace {
// Checks dtype membership and that the byte count matches the shape; returns the count.
size_t check_bytes(const StTensor& t, std::initializer_list<const char*> dtypes, const char* want) {
  bool ok = false;
  for (const char* d : dtypes) ok = ok || t.dtype == d;
  if (!ok) throw Error(t.where() + ": dtype is " + t.dtype + ", expected " + want);
  int64_t n = t.numel();
  size_t es = st_dtype_size(t.dtype);
  if (t.bytes.size() != uint64_t(n) * es)
    throw Error(t.where() + ": " + std::to_string(t.bytes.size()) + " data bytes, but dtype " + t.dtype +
                " and shape " + shape_str(t.shape) + " need " + std::to_string(uint64_t(n) * es));
  return size_t(n);
}
}  // namespace

std::vector<float> StTensor::f32() const {
  check_bytes(*this, {"F32"}, "F32");
  return load_le_array<float>(bytes);
}

std::vector<int64_t> StTensor::i64() const {
  check_bytes(*this, {"I32", "I64"}, "I32 or I64");
  if (dtype == "I64") return load_le_array<int64_t>(bytes);
  std::vector<int32_t> v = load_le_array<int32_t>(bytes);
  return std::vector<int64_t>(v.begin(), v.end());
}

std::vector<int32_t> StTensor::i32() const {
  check_bytes(*this, {"I32", "I64"}, "I32 or I64");
  if (dtype == "I32") return load_le_array<int32_t>(bytes);
  std::vector<int64_t> v = load_le_array<int64_t>(bytes);
  std::vector<int32_t> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] < std::numeric_limits<int32_t>::min() || v[i] > std::numeric_limits<int32_t>::max())
      throw Error(where() + ": I64 value " + std::to_string(v[i]) + " at index " + std::to_string(i) +
                  " does not fit in int32");
    out[i] = int32_t(v[i]);
  }
  return out;
}

std::vector<uint8_t> StTensor::u8() const {
  check_bytes(*this, {"U8"}, "U8");
  return bytes;
}

StTensor StTensor::from_f32(const Shape& shape, const std::vector<float>& values) {
  return make_tensor("F32", "from_f32", shape, values);
}
StTensor StTensor::from_i32(const Shape& shape, const std::vector<int32_t>& values) {
  return make_tensor("I32", "from_i32", shape, values);
}
StTensor StTensor::from_i64(const Shape& shape, const std::vector<int64_t>& values) {
  return make_tensor("I64", "from_i64", shape, values);
}
StTensor StTensor::from_u8(const Shape& shape, const std::vector<uint8_t>& values) {
  return make_tensor("U8", "from_u8", shape, values);
}
StTensor StTensor::from_u8(const Shape& shape, std::vector<uint8_t>&& values) {
  int64_t n = checked_numel(shape);
  if (n < 0) throw Error("StTensor::from_u8: invalid shape " + shape_str(shape));
  if (uint64_t(n) != values.size())
    throw Error("StTensor::from_u8: shape " + shape_str(shape) + " has " + std::to_string(n) + " elements but " +
                std::to_string(values.size()) + " values were given");
  StTensor t;
  t.dtype = "U8";
  t.shape = shape;
  t.bytes = std::move(values);
  return t;
}

// ------------------------------------------------------------------------------------------
// SafeTensors
// ------------------------------------------------------------------------------------------
const StTensor& SafeTensors::get(const std::string& name) const {
  auto it = tensors.find(name);
  if (it == tensors.end())
    throw Error((source.empty() ? std::string("safetensors") : source) + ": no tensor '" + name + "'");
  return it->second;
}

namespace {
// Validates a tensor for writing: known dtype, sane shape, byte count matching.
void validate_for_write(const std::string& where, const StTensor& t) {
  size_t es = st_dtype_size(t.dtype);
  if (es == 0) throw Error(where + ": unknown dtype '" + t.dtype + "'");
  int64_t n = checked_numel(t.shape);
  if (n < 0) throw Error(where + ": invalid shape " + shape_str(t.shape));
  if (t.bytes.size() != uint64_t(n) * es)
    throw Error(where + ": " + std::to_string(t.bytes.size()) + " data bytes, but dtype " + t.dtype + " and shape " +
                shape_str(t.shape) + " need " + std::to_string(uint64_t(n) * es));
}
}  // namespace

void SafeTensors::add(const std::string& name, StTensor t) {
  std::string where = (source.empty() ? std::string() : source + ": ") + "tensor '" + name + "'";
  if (name == "__metadata__") throw Error(where + ": the name __metadata__ is reserved");
  if (tensors.count(name)) throw Error(where + ": a tensor with this name already exists");
  validate_for_write(where, t);
  t.name = name;
  t.source = source;
  tensors.emplace(name, std::move(t));
}

// ------------------------------------------------------------------------------------------
// Reading
// ------------------------------------------------------------------------------------------
namespace {

// A non-negative integer JSON number no larger than 2^53 (exact in a double), or throws.
uint64_t header_uint(const Json& v, const std::string& where, const std::string& field) {
  if (!v.is_number()) throw Error(where + ": " + field + " is " + v.type_name() + ", expected a non-negative integer");
  double d = v.as_number();
  if (!(d >= 0) || d > 9007199254740992.0 || d != std::floor(d))
    throw Error(where + ": " + field + " is " + v.dump() + ", expected a non-negative integer");
  return uint64_t(d);
}

// The 8-byte little-endian header length, checked against the bytes that follow it.
uint64_t header_length(const uint8_t* data, size_t n, const std::string& source) {
  if (n < 8)
    throw Error(source + ": not a safetensors file: " + std::to_string(n) +
                " bytes, too short for the 8-byte header length");
  uint64_t hlen = 0;
  for (int i = 7; i >= 0; --i) hlen = (hlen << 8) | data[i];
  if (hlen > n - 8)
    throw Error(source + ": header length " + std::to_string(hlen) + " runs past the end of the file (" +
                std::to_string(n) + " bytes)");
  return hlen;
}

// The JSON header (`hlen` bytes at `text`), which must be an object.
Json parse_header(const char* text, uint64_t hlen, const std::string& source) {
  if (hlen == 0 || text[0] != '{') throw Error(source + ": header is not a JSON object (it must start with '{')");
  Json header = Json::parse(text, size_t(hlen), source + " header");
  if (!header.is_object()) throw Error(source + ": header is not a JSON object");
  return header;
}

void read_metadata(const Json& entry, const std::string& source, std::map<std::string, std::string>& metadata) {
  if (!entry.is_object())
    throw Error(source + ": __metadata__ is " + entry.type_name() + ", expected an object of strings");
  for (const auto& m : entry.as_object()) {
    if (!m.second.is_string())
      throw Error(source + ": __metadata__ entry '" + m.first + "' is " + m.second.type_name() + ", expected a string");
    metadata[m.first] = m.second.as_string();
  }
}

// One tensor's header entry; `begin` and `end` are offsets into the data section.
struct TensorEntry {
  std::string dtype;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

std::string offsets_str(uint64_t begin, uint64_t end) {
  return "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

// "data_offsets": [begin, end] within the `body_n` bytes of the data section.
void read_offsets(const Json& jo, const std::string& where, uint64_t body_n, TensorEntry& e) {
  if (!jo.is_array() || jo.size() != 2)
    throw Error(where + ": data_offsets is " + jo.dump() + ", expected [begin, end]");
  e.begin = header_uint(jo[0], where, "data_offsets[0]");
  e.end = header_uint(jo[1], where, "data_offsets[1]");
  if (e.begin > e.end) throw Error(where + ": " + offsets_str(e.begin, e.end) + " end before they begin");
  if (e.end > body_n)
    throw Error(where + ": " + offsets_str(e.begin, e.end) + " run past the end of the file (" +
                std::to_string(body_n) + " data bytes)");
}

// The byte count that dtype and shape need must be what the offsets hold. The element count
// is bounded by the data section's size first, so the product cannot overflow.
void check_entry_size(const TensorEntry& e, const std::string& where, uint64_t body_n) {
  int64_t count = checked_numel(e.shape);
  if (count < 0 || uint64_t(count) > body_n)  // more elements than bytes: cannot fit
    throw Error(where + ": shape " + shape_str(e.shape) + " holds more elements than the file has bytes (" +
                std::to_string(body_n) + " data bytes)");
  uint64_t need = uint64_t(count) * st_dtype_size(e.dtype);
  if (need != e.end - e.begin)
    throw Error(where + ": dtype " + e.dtype + " and shape " + shape_str(e.shape) + " need " + std::to_string(need) +
                " bytes but " + offsets_str(e.begin, e.end) + " hold " + std::to_string(e.end - e.begin));
}

// A tensor's {"dtype", "shape", "data_offsets"} entry, every field checked.
TensorEntry read_tensor_entry(const Json& entry, const std::string& where, uint64_t body_n) {
  if (!entry.is_object())
    throw Error(where + ": header entry is " + std::string(entry.type_name()) + ", expected an object");
  const Json* jd = entry.find("dtype");
  const Json* js = entry.find("shape");
  const Json* jo = entry.find("data_offsets");
  if (!jd) throw Error(where + ": missing \"dtype\"");
  if (!js) throw Error(where + ": missing \"shape\"");
  if (!jo) throw Error(where + ": missing \"data_offsets\"");
  TensorEntry e;
  if (!jd->is_string()) throw Error(where + ": dtype is " + std::string(jd->type_name()) + ", expected a string");
  e.dtype = jd->as_string();
  if (st_dtype_size(e.dtype) == 0) throw Error(where + ": unknown dtype '" + e.dtype + "'");
  if (!js->is_array()) throw Error(where + ": shape is " + std::string(js->type_name()) + ", expected an array");
  for (size_t i = 0; i < js->size(); ++i)
    e.shape.push_back(int64_t(header_uint((*js)[i], where, "shape[" + std::to_string(i) + "]")));
  read_offsets(*jo, where, body_n, e);
  check_entry_size(e, where, body_n);
  return e;
}

struct Span {
  uint64_t begin, end;
  const std::string* name;
};

// The tensors must tile the data section: no overlaps, no gaps, nothing left over.
void check_tiling(std::vector<Span>& spans, uint64_t body_n, const std::string& source) {
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  auto range = [](const Span& x) { return "[" + std::to_string(x.begin) + ", " + std::to_string(x.end) + "]"; };
  uint64_t covered = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    if (s.begin < covered)
      throw Error(source + ": tensor '" + *s.name + "': data_offsets " + range(s) + " overlap tensor '" +
                  *spans[i - 1].name + "' at " + range(spans[i - 1]));
    if (s.begin > covered)
      throw Error(source + ": tensor '" + *s.name + "': data_offsets " + range(s) + " leave bytes [" +
                  std::to_string(covered) + ", " + std::to_string(s.begin) + ") of the data section unused");
    covered = s.end;
  }
  if (covered != body_n)
    throw Error(source + ": data section has " + std::to_string(body_n) + " bytes but the tensors cover " +
                std::to_string(covered) + " (the header lies about sizes or the file has trailing bytes)");
}

}  // namespace

SafeTensors parse_safetensors(const uint8_t* data, size_t n, const std::string& source) {
  SafeTensors st;
  st.source = source;
  const uint64_t hlen = header_length(data, n, source);
  Json header = parse_header(reinterpret_cast<const char*>(data + 8), hlen, source);
  const uint8_t* body = data + 8 + hlen;
  const uint64_t body_n = n - 8 - hlen;

  std::vector<Span> spans;
  for (const auto& kv : header.as_object()) {
    const std::string& name = kv.first;
    if (name == "__metadata__") {
      read_metadata(kv.second, source, st.metadata);
      continue;
    }
    TensorEntry e = read_tensor_entry(kv.second, source + ": tensor '" + name + "'", body_n);
    StTensor t;
    t.dtype = std::move(e.dtype);
    t.shape = std::move(e.shape);
    t.name = name;
    t.source = source;
    auto it = st.tensors.emplace(name, std::move(t)).first;
    spans.push_back(Span{e.begin, e.end, &it->first});
  }
  check_tiling(spans, body_n, source);
  // Only now, with every size checked against the file, are the tensors' bytes copied.
  for (const Span& s : spans) st.tensors[*s.name].bytes.assign(body + s.begin, body + s.end);
  return st;
}

SafeTensors read_safetensors(const std::string& path) {
  std::vector<uint8_t> data = read_file(path);
  return parse_safetensors(data.data(), data.size(), path);
}

// ------------------------------------------------------------------------------------------
// Writing
// ------------------------------------------------------------------------------------------
namespace {

// Builds the padded header and the order in which tensor data follows it.
std::string build_header(const SafeTensors& st, const std::string& dest, std::vector<const StTensor*>& order) {
  order.clear();
  std::vector<std::pair<const std::string*, const StTensor*>> items;
  for (const auto& kv : st.tensors) {
    std::string where = dest + ": tensor '" + kv.first + "'";
    if (kv.first == "__metadata__") throw Error(where + ": the name __metadata__ is reserved");
    validate_for_write(where, kv.second);
    items.emplace_back(&kv.first, &kv.second);
  }
  // Data layout: larger elements first, then by name, so every tensor stays aligned.
  std::vector<std::pair<const std::string*, const StTensor*>> layout = items;
  std::stable_sort(layout.begin(), layout.end(), [](const auto& a, const auto& b) {
    return st_dtype_size(a.second->dtype) > st_dtype_size(b.second->dtype);
  });
  std::map<const StTensor*, std::pair<uint64_t, uint64_t>> offsets;
  uint64_t off = 0;
  for (const auto& it : layout) {
    offsets[it.second] = {off, off + it.second->bytes.size()};
    off += it.second->bytes.size();
    order.push_back(it.second);
  }
  Json header = Json::object();
  if (!st.metadata.empty()) {
    Json meta = Json::object();
    for (const auto& kv : st.metadata) meta.set(kv.first, Json(kv.second));
    header.set("__metadata__", std::move(meta));
  }
  for (const auto& it : items) {  // std::map order: sorted by name
    Json e = Json::object();
    e.set("dtype", Json(it.second->dtype));
    Json shape = Json::array();
    for (int64_t d : it.second->shape) shape.push_back(Json(d));
    e.set("shape", std::move(shape));
    const auto& o = offsets[it.second];
    Json jo = Json::array();
    jo.push_back(Json(o.first));
    jo.push_back(Json(o.second));
    e.set("data_offsets", std::move(jo));
    header.set(*it.first, std::move(e));
  }
  std::string text = header.dump();
  while (text.size() % 8 != 0) text.push_back(' ');
  return text;
}

void le64(uint64_t v, uint8_t out[8]) {
  for (int i = 0; i < 8; ++i) out[i] = uint8_t(v >> (8 * i));
}

}  // namespace

std::vector<uint8_t> serialize_safetensors(const SafeTensors& st) {
  std::vector<const StTensor*> order;
  std::string header = build_header(st, st.source.empty() ? std::string("safetensors") : st.source, order);
  size_t total = 8 + header.size();
  for (const StTensor* t : order) total += t->bytes.size();
  std::vector<uint8_t> out(8);
  out.reserve(total);
  le64(header.size(), out.data());
  out.insert(out.end(), header.begin(), header.end());
  for (const StTensor* t : order) out.insert(out.end(), t->bytes.begin(), t->bytes.end());
  return out;
}

void write_safetensors(const std::string& path, const SafeTensors& st) {
  std::vector<const StTensor*> order;
  std::string header = build_header(st, path, order);
  uint8_t len[8];
  le64(header.size(), len);
  std::vector<ByteSpan> parts;
  parts.emplace_back(len, 8);
  parts.emplace_back(reinterpret_cast<const uint8_t*>(header.data()), header.size());
  for (const StTensor* t : order) parts.emplace_back(t->bytes.data(), t->bytes.size());
  write_file_atomic(path, parts);
}

}  // namespace ait

// Model configuration: presets, JSON and `--set key=value` overrides, validation against the
// ranges of docs/spec.md §1 (chosen so that no size derived from a valid config overflows).
#include <cmath>
#include <cstdlib>
#include <functional>

#include "model/arch.h"
#include "model/model.h"

namespace ait {

namespace {

constexpr int64_t kMaxWidth = int64_t(1) << 16;  // channels, widths, classes, memory slots
constexpr int64_t kMaxSide = int64_t(1) << 14;   // image sides and the patch side
constexpr int64_t kMaxCount = 1024;              // depth, heads, write heads
constexpr int64_t kMaxBottleneck = int64_t(1) << 30;

struct Field {
  const char* name;
  std::function<double(const Config&)> get;
  std::function<void(Config&, double)> put;
  bool integer;
  double lo, hi;  // the accepted range, inclusive unless the flags below say otherwise
  bool lo_open = false, hi_open = false;
  std::vector<std::string> names;  // a named-value key: JSON and --set spell names[value]
  bool always_written = true;      // false: to_json leaves the key out while it has its default
  // The member (an enum or a bool) cannot hold a value outside the range, so reading checks it.
  bool narrow = false;
};

const std::vector<Field>& fields() {
  // clang-format off
#define INT_FIELD(n, lo, hi) \
  Field{#n, [](const Config& c) { return double(c.n); }, [](Config& c, double v) { c.n = int64_t(v); }, true, lo, hi, \
        false, false, {}, true, false}
#define REAL_FIELD(n, lo, hi, lo_open, hi_open)                                                         \
  Field{#n, [](const Config& c) { return c.n; }, [](Config& c, double v) { c.n = v; }, false, lo, hi, lo_open, \
        hi_open, {}, true, false}
#define NAMED_FIELD(n, Enum, ...)                                                                       \
  Field{#n, [](const Config& c) { return double(int(c.n)); }, [](Config& c, double v) { c.n = Enum(int(v)); }, true, 0, \
        double(std::vector<std::string>{__VA_ARGS__}.size() - 1), false, false, {__VA_ARGS__}, false, true}
#define SWITCH_FIELD(n) \
  Field{#n, [](const Config& c) { return c.n ? 1.0 : 0.0; }, [](Config& c, double v) { c.n = v != 0; }, true, 0, 1, \
        false, false, {}, false, true}
  // clang-format on
  static const std::vector<Field> f = {
      INT_FIELD(channels, 1, kMaxWidth),
      INT_FIELD(image_height, 1, kMaxSide),
      INT_FIELD(image_width, 1, kMaxSide),
      INT_FIELD(patch_size, 1, kMaxSide),
      INT_FIELD(question_dim, 0, kMaxWidth),
      INT_FIELD(dim, 1, kMaxWidth),
      INT_FIELD(depth, 1, kMaxCount),
      INT_FIELD(heads, 1, kMaxCount),
      INT_FIELD(head_dim, 1, kMaxWidth),
      INT_FIELD(mlp_dim, 1, kMaxWidth),
      INT_FIELD(num_classes, 1, kMaxWidth),
      INT_FIELD(memory_slots, 1, kMaxWidth),
      INT_FIELD(memory_dim, 1, kMaxWidth),
      INT_FIELD(memory_heads, 1, kMaxCount),
      INT_FIELD(bottleneck, 1, kMaxBottleneck),
      REAL_FIELD(hopfield_beta, 0, 1e4, false, false),
      REAL_FIELD(memory_momentum, 0, 1, true, true),
      REAL_FIELD(balance_coef, 0, 1e4, false, false),
      REAL_FIELD(write_dropout, 0, 1, false, true),
      NAMED_FIELD(arch, Arch, "ait", "vit", "coordination"),
      NAMED_FIELD(memory_mode, MemoryMode, "ema", "reset", "learned"),
      SWITCH_FIELD(self_attention),
      SWITCH_FIELD(hopfield_read),
      SWITCH_FIELD(topk_write),
      Field{"workspace_mlp_layers",
            [](const Config& c) { return double(c.workspace_mlp_layers); },
            [](Config& c, double v) { c.workspace_mlp_layers = int64_t(v); },
            true,
            1,
            64,
            false,
            false,
            {},
            false},
  };
#undef INT_FIELD
#undef REAL_FIELD
#undef NAMED_FIELD
#undef SWITCH_FIELD
  return f;
}

const Field& field(const std::string& key, const std::string& source) {
  for (const Field& f : fields())
    if (key == f.name) return f;
  std::string known;
  for (const Field& f : fields()) known += std::string(known.empty() ? "" : ", ") + f.name;
  throw Error(source + ": unknown config key '" + key + "' (known: " + known + ")");
}

std::string number_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string range_str(const Field& f) {
  return std::string(f.lo_open ? "(" : "[") + number_str(f.lo) + ", " + number_str(f.hi) + (f.hi_open ? ")" : "]");
}

bool in_range(const Field& f, double v) {  // false for NaN
  return (f.lo_open ? v > f.lo : v >= f.lo) && (f.hi_open ? v < f.hi : v <= f.hi);
}

Error out_of_range(const std::string& source, const Field& f, double v) {
  return Error(source + ": key '" + f.name + "' is " + number_str(v) + ", outside its range " + range_str(f));
}

// Stores v after checking that it is a finite number (a whole one for an integer key) whose
// conversion is defined; the range itself is validate()'s business, except for an integer too
// large to convert.
void put(Config& c, const Field& f, double v, const std::string& source) {
  if (!std::isfinite(v)) throw Error(source + ": config key '" + f.name + "' must be a finite number");
  if (f.integer && v != std::trunc(v))
    throw Error(source + ": config key '" + f.name + "' must be an integer, not " + number_str(v));
  if (f.integer && std::fabs(v) > 9e15) throw out_of_range(source, f, v);
  if (f.narrow && !in_range(f, v)) throw out_of_range(source, f, v);
  f.put(c, v);
}

std::string names_str(const Field& f) {
  std::string known;
  for (const std::string& n : f.names) known += (known.empty() ? "" : ", ") + n;
  return known;
}

// The index of a named value, or an error naming the key and its known values.
double named_value(const Field& f, const std::string& text, const std::string& source) {
  for (size_t i = 0; i < f.names.size(); ++i)
    if (text == f.names[i]) return double(i);
  throw Error(source + ": config key '" + f.name + "' is '" + text + "'; known values: " + names_str(f));
}

// a·b and a + b for non-negative counts, saturating at kSaturated instead of overflowing.
constexpr int64_t kSaturated = INT64_MAX;
int64_t mul(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_mul_overflow(a, b, &r) ? kSaturated : r;
}
int64_t add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? kSaturated : r;
}

}  // namespace

Json Config::to_json() const {
  Json j = Json::object();
  const Config defaults;
  for (const Field& f : fields()) {
    const double v = f.get(*this);
    if (!f.always_written && v == f.get(defaults)) continue;
    if (!f.names.empty()) j.set(f.name, Json(f.names[size_t(v)]));
    else j.set(f.name, f.integer ? Json(static_cast<int64_t>(v)) : Json(v));
  }
  return j;
}

void Config::update(const Json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": config must be a JSON object");
  for (const auto& [key, value] : j.as_object()) {
    const Field& f = field(key, source);
    if (!f.names.empty()) {
      if (!value.is_string())
        throw Error(source + ": config key '" + key + "' must be a string, one of: " + names_str(f));
      f.put(*this, named_value(f, value.as_string(), source));
      continue;
    }
    if (!value.is_number()) throw Error(source + ": config key '" + key + "' must be a number");
    put(*this, f, value.as_number(), source);
  }
}

void Config::set(const std::string& key, const std::string& value) {
  const Field& f = field(key, "--set");
  if (!f.names.empty()) return f.put(*this, named_value(f, value, "--set " + key + "=" + value));
  char* end = nullptr;
  double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0') throw Error("--set " + key + "=" + value + ": not a number");
  put(*this, f, v, "--set " + key + "=" + value);
}

std::vector<std::string> Config::keys() {
  std::vector<std::string> out;
  for (const Field& f : fields()) out.push_back(f.name);
  return out;
}

double Config::value(const std::string& key) const { return field(key, "config").get(*this); }

std::string Config::value_text(const std::string& key) const {
  const Field& f = field(key, "config");
  const double v = f.get(*this);
  return f.names.empty() ? number_str(v) : f.names[size_t(v)];
}

std::vector<std::string> Config::differences(const Config& other) const {
  std::vector<std::string> out;
  for (const Field& f : fields())
    if (f.get(*this) != f.get(other)) out.push_back(f.name);
  return out;
}

int64_t Config::stored_values() const {
  // Outside its ranges a config is refused anyway, and only inside them are the table's sizes
  // sure to fit in int64.
  for (const Field& f : fields())
    if (!in_range(f, f.get(*this))) return kSaturated;
  // Every architecture's table grows affinely with depth: extrapolate from depths 1 and 2
  // instead of listing up to 1024 layers.
  auto values = [](const Config& c) {
    int64_t n = 0;
    for (const TensorEntry& e : tensor_table(c)) {
      int64_t numel = 1;
      for (int64_t d : e.shape) numel = mul(numel, d);
      n = add(n, numel);
    }
    return n;
  };
  Config one = *this, two = *this;
  one.depth = 1, two.depth = 2;
  const int64_t first = values(one);
  return add(first, mul(depth - 1, values(two) - first));
}

void Config::validate(const std::string& source) const {
  auto bad = [&](const std::string& key, const std::string& why) {
    return Error(source + ": key '" + key + "' " + why);
  };
  for (const Field& f : fields()) {
    const double v = f.get(*this);
    if (!in_range(f, v)) throw out_of_range(source, f, v);
  }
  if (arch != Arch::AiT)  // the ablation switches change the AiT only: refused rather than ignored
    for (const char* key : {"memory_mode", "self_attention", "hopfield_read", "topk_write"})
      if (value(key) != Config().value(key))
        throw bad(key,
                  "is " + value_text(key) + ", but it applies to arch=ait only (arch is " + value_text("arch") + ")");
  if (arch != Arch::Coordination && workspace_mlp_layers != Config().workspace_mlp_layers)
    throw bad("workspace_mlp_layers",
              "is " + value_text("workspace_mlp_layers") + ", but it applies to arch=coordination only");
  if (arch == Arch::Coordination && heads * head_dim != dim)
    throw bad("head_dim", "is " + std::to_string(head_dim) + ": arch=coordination needs heads * head_dim = dim (" +
                              std::to_string(heads) + " * " + std::to_string(head_dim) + " != " + std::to_string(dim) +
                              ")");
  if (memory_mode == MemoryMode::Learned && !hopfield_read)
    throw bad("memory_mode", "is 'learned', which needs hopfield_read=1 (nothing else reads a learned memory)");
  if (image_height % patch_size || image_width % patch_size)
    throw bad("patch_size", "is " + std::to_string(patch_size) + ", which does not divide the image size " +
                                std::to_string(image_height) + "x" + std::to_string(image_width));
  if (tokens() > kMaxTokens)
    throw bad("patch_size", "is " + std::to_string(patch_size) + ": the model would have " + std::to_string(tokens()) +
                                " tokens per image, more than the limit of " + std::to_string(kMaxTokens));
  if (stored_values() > kMaxStoredValues)
    throw Error(source + ": the config needs " + std::to_string(stored_values()) +
                " parameter and memory values, more than the limit of " + std::to_string(kMaxStoredValues));
}

Config Config::preset(const std::string& name) {
  Config c;
  auto gwt = [&](int64_t D, int64_t depth, int64_t h, int64_t e, int64_t F, int64_t M, int64_t m, int64_t H,
                 int64_t k) {
    c.dim = D, c.depth = depth, c.heads = h, c.head_dim = e, c.mlp_dim = F;
    c.memory_slots = M, c.memory_dim = m, c.memory_heads = H, c.bottleneck = k;
  };
  if (name == "tiny") gwt(128, 2, 4, 32, 256, 16, 32, 4, 128);
  else if (name == "coordination") gwt(256, 1, 4, 64, 512, 32, 32, 8, 512);
  else if (name == "small") gwt(768, 2, 12, 64, 3072, 32, 32, 8, 512);
  else if (name == "medium") gwt(768, 6, 12, 64, 3072, 32, 32, 8, 512);
  else if (name == "base") gwt(768, 12, 12, 64, 3072, 32, 32, 8, 512);
  else if (name == "shared-workspace") gwt(256, 4, 4, 64, 512, 8, 32, c.memory_heads, 5), c.arch = Arch::Coordination;
  else {
    std::string known;
    for (auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("--model: unknown preset '" + name + "' (known: " + known + ")");
  }
  if (name == "small" || name == "medium" || name == "base") {
    c.channels = 3, c.image_height = 32, c.image_width = 32;  // CIFAR geometry until a dataset says otherwise
  }
  return c;
}

std::vector<std::string> Config::preset_names() {
  return {"tiny", "coordination", "small", "medium", "base", "shared-workspace"};
}

Config Config::with_data_keys_of(const Config& data) const {
  Config c = *this;
  c.channels = data.channels, c.image_height = data.image_height, c.image_width = data.image_width;
  c.question_dim = data.question_dim, c.num_classes = data.num_classes;
  return c;
}

std::string Config::matching_preset() const {
  for (const std::string& name : preset_names())
    if (preset(name).with_data_keys_of(*this).differences(*this).empty()) return name;
  return "";
}

}  // namespace ait

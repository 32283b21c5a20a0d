// Model configuration: presets, JSON and `--set key=value` overrides, validation.
#include <cmath>
#include <cstdlib>
#include <functional>

#include "model/model.h"

namespace ait {

namespace {
struct Field {
  const char* name;
  std::function<double(const Config&)> get;
  std::function<void(Config&, double)> put;
  bool integer;
};

const std::vector<Field>& fields() {
#define INT_FIELD(n)                                                                                                   \
  Field {                                                                                                              \
#n, [](const Config& c) { return double(c.n); }, [](Config & c, double v) { c.n = static_cast<int64_t>(v); }, true \
  }
#define REAL_FIELD(n)                                                                     \
  Field {                                                                                 \
#n, [](const Config& c) { return c.n; }, [](Config & c, double v) { c.n = v; }, false \
  }
  static const std::vector<Field> f = {
      INT_FIELD(channels),         INT_FIELD(image_height),  INT_FIELD(image_width),    INT_FIELD(patch_size),
      INT_FIELD(question_dim),     INT_FIELD(dim),           INT_FIELD(depth),          INT_FIELD(heads),
      INT_FIELD(head_dim),         INT_FIELD(mlp_dim),       INT_FIELD(num_classes),    INT_FIELD(memory_slots),
      INT_FIELD(memory_dim),       INT_FIELD(memory_heads),  INT_FIELD(bottleneck),     REAL_FIELD(hopfield_beta),
      REAL_FIELD(memory_momentum), REAL_FIELD(balance_coef), REAL_FIELD(write_dropout),
  };
#undef INT_FIELD
#undef REAL_FIELD
  return f;
}

const Field& field(const std::string& key, const std::string& source) {
  for (const Field& f : fields())
    if (key == f.name) return f;
  std::string known;
  for (const Field& f : fields()) known += std::string(known.empty() ? "" : ", ") + f.name;
  throw Error(source + ": unknown config key '" + key + "' (known: " + known + ")");
}

void put(Config& c, const Field& f, double v, const std::string& source) {
  if (f.integer && (v != static_cast<double>(static_cast<int64_t>(v)) || std::fabs(v) > 1e15))
    throw Error(source + ": config key '" + f.name + "' must be an integer");
  f.put(c, v);
}
}  // namespace

Json Config::to_json() const {
  Json j = Json::object();
  for (const Field& f : fields())
    j.set(f.name, f.integer ? Json(static_cast<int64_t>(f.get(*this))) : Json(f.get(*this)));
  return j;
}

void Config::update(const Json& j, const std::string& source) {
  if (!j.is_object()) throw Error(source + ": config must be a JSON object");
  for (const auto& [key, value] : j.as_object()) {
    const Field& f = field(key, source);
    if (!value.is_number()) throw Error(source + ": config key '" + key + "' must be a number");
    put(*this, f, value.as_number(), source);
  }
}

void Config::set(const std::string& key, const std::string& value) {
  const Field& f = field(key, "--set");
  char* end = nullptr;
  double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0') throw Error("--set " + key + "=" + value + ": not a number");
  put(*this, f, v, "--set " + key);
}

void Config::validate() const {
  auto bad = [](const std::string& key, const std::string& why) { return Error("config: " + key + " " + why); };
  for (const Field& f : fields()) {
    double v = f.get(*this);
    std::string k = f.name;
    if (k == "question_dim" || k == "balance_coef" || k == "write_dropout" || k == "hopfield_beta") {
      if (v < 0) throw bad(k, "must not be negative");
    } else if (v <= 0) {
      throw bad(k, "must be positive");
    }
  }
  if (image_height % patch_size || image_width % patch_size)
    throw bad("patch_size", std::to_string(patch_size) + " does not divide the image size " +
                                std::to_string(image_height) + "x" + std::to_string(image_width));
  if (memory_momentum >= 1.0) throw bad("memory_momentum", "must be below 1");
  if (write_dropout >= 1.0) throw bad("write_dropout", "must be below 1");
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

std::vector<std::string> Config::preset_names() { return {"tiny", "coordination", "small", "medium", "base"}; }

}  // namespace ait

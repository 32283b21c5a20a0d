// Training options checked before a run reads or writes anything (docs/spec.md §1): every number
// in its range, a resumed run given no --model, --config or --set that would change its config,
// and a batch that fits in memory by an estimate of what a training step keeps.
#include "model/options.h"

#include <unistd.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <fstream>
#include <map>
#include <optional>

#include "io/inflate.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/run_dir.h"
#include "model/train.h"

namespace ait {

namespace {

std::string number_str(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void check_integer(const char* option, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi)
    throw OptionError(std::string("option ") + option + ": " + std::to_string(v) + " is out of range (must be in [" +
                      std::to_string(lo) + ", " + std::to_string(hi) + "])");
}

// Written !(v > lo && v <= hi) so that NaN fails too.
void check_real(const char* option, double v, double lo, bool lo_open, double hi) {
  const bool ok = (lo_open ? v > lo : v >= lo) && v <= hi;
  if (!ok)
    throw OptionError(std::string("option ") + option + ": " + number_str(v) + " is out of range (must be " +
                      (lo_open ? "above " : "at least ") + number_str(lo) + " and at most " + number_str(hi) + ")");
}

void check_numbers(const TrainOptions& o) {
  if (o.data.empty()) throw OptionError("option --data is required");
  if (o.out.empty()) throw OptionError("option --out is required");
  using L = TrainLimits;
  check_integer("--epochs", o.epochs, 1, L::kMaxEpochs);
  check_integer("--batch-size", o.batch_size, 1, L::kMaxBatchSize);
  check_integer("--warmup", o.warmup, -1, L::kMaxSteps);
  check_integer("--seed", o.seed, 0, INT64_MAX);
  check_integer("--log-every", o.log_every, 1, L::kMaxSteps);
  check_integer("--limit", o.limit_train, 0, L::kMaxSteps);
  check_integer("--stop-after", o.stop_after_epochs, 0, L::kMaxEpochs);
  check_real("--lr", o.lr, 0, true, FLT_MAX);
  check_real("--weight-decay", o.weight_decay, 0, false, L::kMaxWeightDecay);
}

// What the header of a dataset file says about its shape; read without its pixel data.
struct DataShape {
  int64_t rows = 0;
  Config keys;  // channels, image_height, image_width, question_dim, num_classes
};

// nullopt when the header is not one this quick reader understands: train() then reads the
// file in full and its loader gives the precise error.
std::optional<DataShape> dataset_shape(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return std::nullopt;
  const uint64_t size = uint64_t(f.tellg());
  uint8_t len_bytes[8] = {};
  if (size < 8 || !f.seekg(0).read(reinterpret_cast<char*>(len_bytes), 8)) return std::nullopt;
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = len << 8 | len_bytes[i];
  if (len > size - 8 || len > (uint64_t(64) << 20)) return std::nullopt;
  std::string text(len, '\0');
  if (!f.read(text.data(), std::streamsize(len))) return std::nullopt;
  try {
    const Json h = Json::parse(text, path + " header");
    const Json& images = h.at("images").at("shape");
    if (images.size() != 4) return std::nullopt;
    DataShape d;
    d.rows = h.at("labels").at("shape")[0].as_int(0, INT64_MAX);  // images may be shared (image_index)
    d.keys.channels = images[1].as_int(0, INT64_MAX), d.keys.image_height = images[2].as_int(0, INT64_MAX);
    d.keys.image_width = images[3].as_int(0, INT64_MAX);
    if (const Json* q = h.find("questions")) d.keys.question_dim = q->at("shape")[1].as_int(0, INT64_MAX);
    else d.keys.question_dim = 0;
    d.keys.num_classes = int64_t(Json::parse(h.at("__metadata__").at("classes").as_string(), path).size());
    return d;
  } catch (const Error&) {
    return std::nullopt;
  }
}

// The config --model, --config and --set describe over `base` (the preset with the dataset's
// keys, or a resumed run's config). `origin` receives, per key, the option that set it last.
Config described_config(const TrainOptions& o, Config base, std::map<std::string, std::string>* origin) {
  if (!o.config_json.empty()) {
    std::vector<uint8_t> text = read_file(o.config_json);
    const Json j = Json::parse(std::string(text.begin(), text.end()), o.config_json);
    base.update(j, o.config_json);
    for (const auto& [key, value] : j.as_object()) (*origin)[key] = "--config " + o.config_json;
  }
  for (const std::string& kv : o.overrides) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) throw OptionError("option --set " + kv + ": expected KEY=VALUE");
    try {
      base.set(kv.substr(0, eq), kv.substr(eq + 1));
    } catch (const Error& e) {
      throw OptionError(std::string("option ") + e.what());
    }
    (*origin)[kv.substr(0, eq)] = "--set " + kv;
  }
  return base;
}

Config preset_or_refuse(const std::string& name) {
  try {
    return Config::preset(name);
  } catch (const Error& e) {
    throw OptionError(std::string("option ") + e.what());
  }
}

// A resumed run keeps its config (spec §1): each of --model, --config and --set may only
// restate it. An empty opt.model stands for the run's own.
void check_resume_matches(const TrainOptions& o, const Config& run) {
  std::map<std::string, std::string> origin;
  const Config base = o.model.empty() ? run : preset_or_refuse(o.model).with_data_keys_of(run);
  const Config wanted = described_config(o, base, &origin);
  const std::vector<std::string> diff = wanted.differences(run);
  if (diff.empty()) return;
  const std::string& key = diff.front();
  const std::string values = wanted.value_text(key) + " against the run's " + run.value_text(key);
  const std::string by = origin.count(key) ? origin.at(key) : "--model " + o.model;
  throw OptionError("option " + by + " contradicts the config of the run in --resume " + o.resume + ": key '" + key +
                    "' would be " + values + " (a resumed run keeps its config; leave the option out)");
}

}  // namespace

Precision parse_precision(const std::string& text, const std::string& option) {
  if (text == "fp32") return Precision::Fp32;
  if (text == "mixed") return Precision::Mixed;
  throw OptionError("option " + option + ": '" + text + "' is not one of fp32, mixed");
}

uint64_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? uint64_t(pages) * uint64_t(page) : uint64_t(1) << 34;
}

// Values per image, counted from AiT::forward (spec §2): per layer the self-attention (norm,
// qkv and its head-major copy, scores and softmax, the heads' output and its copy, projection,
// residual), the feed-forward part, the write scores, gate and keys, and the Hopfield read;
// plus the patches and embedding, and the head. A training step keeps them all for the
// backward pass, which adds a gradient of each: twice as many.
uint64_t activation_bytes_per_image(const Config& c, bool training) {
  const uint64_t T = uint64_t(c.tokens()), D = uint64_t(c.dim), I = uint64_t(c.heads * c.head_dim),
                 F = uint64_t(c.mlp_dim), Wm = uint64_t(c.memory_heads * c.memory_dim), M = uint64_t(c.memory_slots);
  const uint64_t attention = 3 * T * D + 11 * T * I + 2 * uint64_t(c.heads) * T * T;
  const uint64_t gwl =
      3 * T * D + 2 * T * F + 4 * T * Wm + 2 * uint64_t(c.memory_heads) * M * T + 2 * T * M + 3 * T * D;
  const uint64_t pixels = uint64_t(c.channels * c.image_height * c.image_width);
  const uint64_t values = uint64_t(c.depth) * (attention + gwl) + 4 * pixels + 6 * T * D + uint64_t(c.num_classes);
  return values * sizeof(float) * (training ? 2 : 1);
}

void check_batch_fits(const Config& c, int64_t batch, int64_t rows, bool training, const std::string& option,
                      uint64_t budget) {
  if (budget == 0) budget = physical_memory_bytes();
  const uint64_t images = uint64_t(std::max<int64_t>(1, std::min(batch, rows)));
  const uint64_t per_image = activation_bytes_per_image(c, training);
  const uint64_t fixed = uint64_t(c.stored_values()) * sizeof(float) * (training ? 4 : 1);
  const double need = double(fixed) + double(per_image) * double(images);
  if (need <= double(budget)) return;
  auto mib = [](double bytes) { return number_str(bytes / double(1 << 20)) + " MiB"; };
  const std::string what = "option " + option + " " + std::to_string(batch) + ": a " +
                           (training ? "training step" : "forward pass") + " on " + std::to_string(images) +
                           " image(s) needs about " + mib(need) + " (" + mib(double(per_image)) + " per image, " +
                           mib(double(fixed)) + " for the model), more than the " + mib(double(budget)) + " of memory";
  if (fixed + per_image > budget) throw OptionError(what + "; the model does not fit even with one image");
  throw OptionError(what + "; use " + option + " " + std::to_string((budget - fixed) / per_image) + " or less");
}

void validate_train_options(const TrainOptions& opt, uint64_t memory_budget) {
  check_numbers(opt);
  const std::optional<DataShape> data = dataset_shape(opt.data);
  Config cfg;
  if (!opt.resume.empty()) {
    cfg = AiT::read_config(committed_model(opt.resume));  // the committed set's model
    check_resume_matches(opt, cfg);
  } else {
    if (!data) return;  // train() reads the file and reports what is wrong with it
    std::map<std::string, std::string> origin;
    cfg = described_config(opt, preset_or_refuse(opt.model).with_data_keys_of(data->keys), &origin);
    cfg.validate(opt.config_json.empty() && opt.overrides.empty() ? "--model " + opt.model : "config");
  }
  if (!data) return;
  const int64_t rows = opt.limit_train > 0 ? std::min(opt.limit_train, data->rows) : data->rows;
  check_batch_fits(cfg, opt.batch_size, rows, true, "--batch-size", memory_budget);
}

}  // namespace ait

// The `ait` command: train, eval, predict, info, dump, convert, devices, viz, experiment, plot. Each
// command's options are declared once, in kCommands below; `ait COMMAND --help` prints them.
#include <algorithm>
#include <cfloat>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "apps/convert_cli.h"
#include "apps/experiment.h"
#include "apps/model_options.h"
#include "apps/viz.h"
#include "core/ops.h"
#include "io/dataset.h"
#include "io/safetensors.h"
#include "model/arch.h"
#include "model/model.h"
#include "model/options.h"
#include "model/run_dir.h"
#include "model/train.h"
#include "vulkan/device.h"

using namespace ait;

namespace {

using cli::kRepeatable;
using cli::kRequired;

long long ll(int64_t v) { return static_cast<long long>(v); }

std::string class_name(const Dataset& ds, int64_t c) {
  return c < int64_t(ds.classes.size()) ? ds.classes[size_t(c)] : std::to_string(c);
}

// ------------------------------------------------------------------------------------------
// train, eval, predict

// --model as given; without it a fresh run is `tiny` and a resumed one names the run's own
// preset ("" when its config is none: validate_train_options then compares nothing).
std::string model_name(const cli::Args& a) {
  if (a.has("model") || !a.has("resume")) return a.choice("model", Config::preset_names(), "tiny");
  const Config run = AiT::read_config(committed_model(a.get("resume")));
  std::fprintf(stderr, "ait train: resuming %s with its config %s\n", a.get("resume").c_str(),
               run.to_json().dump().c_str());
  return run.matching_preset();
}

// Ranges from model/options.h: the library checks the same TrainOptions again (and whether the
// batch fits); its OptionError is a usage error here too.
int cmd_train(const cli::Args& a) {
  using L = TrainLimits;
  TrainOptions o;
  o.data = a.get("data");
  o.val = a.get("val");
  o.model = model_name(a);
  o.config_json = a.get("config");
  o.overrides = a.all("set");
  o.epochs = a.integer("epochs", 1, 1, L::kMaxEpochs);
  o.batch_size = a.integer("batch-size", 64, 1, L::kMaxBatchSize);
  o.lr = float(a.real("lr", 1e-3, 0, FLT_MAX, true));
  o.warmup = a.integer("warmup", -1, -1, L::kMaxSteps);
  o.weight_decay = float(a.real("weight-decay", 0.01, 0, L::kMaxWeightDecay));
  o.seed = a.integer("seed", 0, 0);
  o.augment = a.has("augment");
  o.memory_eval = memory_eval_from(a);
  o.limit_train = a.integer("limit", 0, 0, L::kMaxSteps);
  o.log_every = a.integer("log-every", 50, 1, L::kMaxSteps);
  o.stop_after_epochs = a.integer("stop-after", 0, 0, L::kMaxEpochs);
  o.out = a.get("out");
  o.resume = a.get("resume");
  double best = 0;
  Kernels& device = device_from(a);
  precision_from(a, device);  // fp32 on every device today (says why when mixed was asked for)
  try {
    best = train(o, device);
  } catch (const OptionError& e) {
    a.fail(e.what());
  }
  std::printf("best validation accuracy: %.4f\n", best);
  return 0;
}

// An inference command's batch (--batch-size, or --count for viz) of at most `rows` images must
// fit the memory estimate.
void require_batch_fits(const cli::Args& a, const AiT& model, const std::string& option, int64_t batch, int64_t rows) {
  try {
    check_batch_fits(model.config(), batch, rows, false, "--" + option);
  } catch (const OptionError& e) {
    a.fail(e.what());
  }
}

void print_confusion(const EvalResult& r, const Dataset& ds, int64_t classes) {
  std::printf("confusion matrix (rows: true class, columns: predicted)\n%-14s", "");
  for (int64_t j = 0; j < classes; ++j) std::printf("%6lld", ll(j));
  std::printf("\n");
  for (int64_t i = 0; i < classes; ++i) {
    std::printf("%-14.14s", class_name(ds, i).c_str());
    for (int64_t j = 0; j < classes; ++j) std::printf("%6lld", ll(r.confusion[size_t(i * classes + j)]));
    std::printf("\n");
  }
}

int cmd_eval(const cli::Args& a) {
  const std::string data = a.get("data");
  const int64_t batch = a.integer("batch-size", 256, 1, TrainLimits::kMaxBatchSize);
  const MemoryEval mode = memory_eval_from(a);
  Kernels& device = device_from(a);
  precision_from(a, device);
  AiT model = AiT::load(a.get("checkpoint"), device);
  Dataset ds = load_dataset(data);
  require_batch_fits(a, model, "batch-size", batch, ds.n);
  EvalResult r = evaluate(model, ds, batch, mode, true);
  std::printf("%s: accuracy %.4f (%lld/%lld), cross-entropy %.4f\n", data.c_str(), r.accuracy(), ll(r.correct), ll(r.n),
              r.ce);
  print_confusion(r, ds, model.config().num_classes);
  return 0;
}

// Rows [start, start + count) in batches; with MemoryEval::Update each batch writes the memory
// and commits it before the next (as evaluate() does), starting from the checkpoint's memory.
int cmd_predict(const cli::Args& a) {
  const std::string data = a.get("data");
  int64_t count = a.integer("count", 10, 1);
  const int64_t start = a.integer("start", 0, 0), batch = a.integer("batch-size", 256, 1, TrainLimits::kMaxBatchSize);
  const MemoryEval mode = memory_eval_from(a);
  const bool with_logits = a.has("logits");
  AiT model = AiT::load(a.get("checkpoint"), device_from(a));
  Dataset ds = load_dataset(data);
  if (start >= ds.n)
    throw Error("--start " + std::to_string(start) + " is outside " + data + "'s " + std::to_string(ds.n) + " images");
  count = std::min(count, ds.n - start);
  require_batch_fits(a, model, "batch-size", batch, count);
  const int64_t C = model.config().num_classes;
  const bool write = mode == MemoryEval::Update;
  NoGradScope no_grad;
  std::printf("%-8s %-16s %-16s %s\n", "index", "predicted", "label", "probability");
  for (int64_t first = start; first < start + count; first += batch) {
    std::vector<int64_t> idx(size_t(std::min(batch, start + count - first)));
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = first + int64_t(i);
    Batch b = make_batch(ds, idx, model.device(), false, nullptr, &model);
    ForwardResult f = model.forward(b.images, b.questions, {}, write, false, 0);
    if (write) model.commit_memory(f);
    std::vector<float> p = softmax(f.logits).to_vector();
    const std::vector<float> logits = with_logits ? f.logits.to_vector() : std::vector<float>();
    for (size_t i = 0; i < idx.size(); ++i) {
      const int64_t k = predicted_class(p, int64_t(i), C);
      std::printf("%-8lld %-16s %-16s %.4f", ll(idx[i]), class_name(ds, k).c_str(),
                  class_name(ds, ds.labels[size_t(idx[i])]).c_str(), p[i * size_t(C) + size_t(k)]);
      if (with_logits) std::printf(" logits");
      for (int64_t j = 0; with_logits && j < C; ++j) std::printf(" %.9g", logits[i * size_t(C) + size_t(j)]);
      std::printf("\n");
    }
  }
  return 0;
}

// ------------------------------------------------------------------------------------------
// info, dump, devices, viz, plot

void info_dataset(const std::string& path, const SafeTensors& st) {
  Dataset ds = dataset_from_safetensors(st);
  const std::string questions = ds.question_dim ? ", questions of " + std::to_string(ds.question_dim) : "";
  const std::string stored =
      ds.image_index.empty() ? "" : " (" + std::to_string(ds.image_count()) + " stored images, shared by image_index)";
  std::printf("%s: dataset, %lld rows of %lldx%lldx%lld (CxHxW) images%s%s, source: %s\n", path.c_str(), ll(ds.n),
              ll(ds.channels), ll(ds.height), ll(ds.width), stored.c_str(), questions.c_str(), ds.source.c_str());
  std::vector<int64_t> counts(ds.classes.size(), 0);
  for (int32_t l : ds.labels) counts[size_t(l)]++;
  for (size_t c = 0; c < ds.classes.size(); ++c)
    std::printf("  class %zu %-16s %lld\n", c, ds.classes[c].c_str(), ll(counts[c]));
  for (int64_t c = 0; c < ds.channels; ++c)
    std::printf("  channel %lld mean %.4f std %.4f\n", ll(c), ds.mean[size_t(c)], ds.std[size_t(c)]);
}

// `ait info --all`: the parameter count of every preset under every architecture.
void info_all_presets() {
  const std::vector<std::string> archs = {"ait", "vit", "coordination"};
  std::printf("%-14s", "preset");
  for (const std::string& arch : archs) std::printf(" %16s", ("arch=" + arch).c_str());
  std::printf("\n");
  for (const std::string& name : Config::preset_names()) {
    std::printf("%-14s", name.c_str());
    for (const std::string& arch : archs) {
      Config c = Config::preset(name);
      c.set("arch", arch);
      std::printf(" %16lld", ll(parameter_count(c)));
    }
    std::printf("\n");
  }
}

// `ait info [--model NAME] [--set K=V]...` without a file: the size of that config.
void info_config(const cli::Args& a) {
  const std::string preset = a.choice("model", Config::preset_names(), "tiny");
  Config c = Config::preset(preset);
  for (const std::string& kv : a.all("set")) {
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) a.fail("option --set " + kv + ": expected KEY=VALUE");
    try {
      c.set(kv.substr(0, eq), kv.substr(eq + 1));
    } catch (const Error& e) {
      a.fail(std::string("option ") + e.what());
    }
  }
  c.validate("--model " + preset + " with --set");
  const int64_t params = parameter_count(c);
  std::printf("preset %s, arch=%s: %lld parameters, %lld memory values, %lld tokens\nconfig %s\n", preset.c_str(),
              c.value_text("arch").c_str(), ll(params), ll(c.stored_values() - params), ll(c.tokens()),
              c.to_json().dump().c_str());
}

int cmd_info(const cli::Args& a) {
  if (a.has("all")) {
    if (!a.positionals().empty() || a.has("model") || a.has("set")) a.fail("--all takes no FILE, --model or --set");
    info_all_presets();
    return 0;
  }
  if (a.positionals().empty()) {
    info_config(a);
    return 0;
  }
  if (a.has("model") || a.has("set")) a.fail("--model and --set describe a config without FILE; leave them out");
  const std::string path = a.positionals()[0];
  SafeTensors st = read_safetensors(path);
  const std::string format = st.metadata.count("format") ? st.metadata.at("format") : "";
  if (format == "ait") {
    AiT m = AiT::load(path, cpu());
    std::printf("%s: AiT checkpoint, version %s, %lld parameters (%lld tensors), %lld tokens\nconfig %s\n",
                path.c_str(), st.metadata.at("version").c_str(), ll(m.parameter_count()),
                ll(int64_t(st.tensors.size())), ll(m.config().tokens()), m.config().to_json().dump().c_str());
  } else if (st.has("images") && st.has("labels")) {
    info_dataset(path, st);
  } else {
    std::printf("%s: safetensors file, %zu tensors\n", path.c_str(), st.tensors.size());
    for (auto& [name, t] : st.tensors)
      std::printf("  %-40s %s %s\n", name.c_str(), t.dtype.c_str(), shape_str(t.shape).c_str());
  }
  return 0;
}

int cmd_dump(const cli::Args& a) {
  DumpOptions o;
  o.checkpoint = a.get("checkpoint");
  o.batch = a.get("batch");
  o.out = a.get("out");
  o.train_steps = a.integer("train-steps", 0, 0, TrainLimits::kMaxEpochs);
  o.lr = float(a.real("lr", 1e-4, 0, FLT_MAX, true));
  o.weight_decay = float(a.real("weight-decay", 0.01, 0, TrainLimits::kMaxWeightDecay));
  Kernels& device = device_from(a);
  precision_from(a, device);
  dump(o, device);
  std::printf("wrote %s\n", o.out.c_str());
  return 0;
}

int cmd_devices(const cli::Args&) {
  std::fputs(describe_devices().c_str(), stdout);
  return 0;
}

int cmd_viz(const cli::Args& a) {
  const int64_t count = a.integer("count", 4, 1, TrainLimits::kMaxBatchSize), start = a.integer("start", 0, 0);
  AiT model = AiT::load(a.get("checkpoint"), device_from(a));
  Dataset ds = load_dataset(a.get("data"));
  require_batch_fits(a, model, "count", count, ds.n);  // the pictures come from one batch of --count images
  for (const std::string& f : write_viz(model, ds, a.get("out"), start, count)) std::printf("wrote %s\n", f.c_str());
  return 0;
}

int cmd_plot(const cli::Args& a) {
  std::printf("wrote %s\n", write_curves(a.positionals()[0], a.get("out")).c_str());
  return 0;
}

// The command line as given, for results.md.
int cmd_experiment(const cli::Args& a) {
  ExperimentOptions o;
  o.grid = a.positionals()[0];
  o.out = a.get("out");
  o.report_only = a.has("report");
  o.command = "ait experiment " + o.grid + " --out " + o.out + (o.report_only ? " --report" : "") +
              (a.has("device") ? " --device " + a.get("device") : "");
  const int64_t unfinished = run_experiment(o, device_from(a));
  if (unfinished > 0) std::printf("%lld runs are not finished\n", ll(unfinished));
  return 0;
}

// ------------------------------------------------------------------------------------------
// The option tables

const cli::Option kCheckpoint = {"checkpoint", "CKPT", "the model checkpoint (.safetensors)", kRequired};
const cli::Option kData = {"data", "DATA", "the dataset file (.safetensors)", kRequired};

std::vector<cli::Option> train_options() {
  return {kData,
          {"val", "VAL", "validation dataset (default: the training data)"},
          {"model", "tiny|coordination|small|medium|base", "preset (default tiny; docs/spec.md §1)"},
          {"config", "JSON", "a JSON file of config keys, applied over the preset"},
          {"set", "KEY=VALUE", "one config key, applied last", kRepeatable},
          {"epochs", "N", "epochs (default 1)"},
          {"batch-size", "B", "batch size (default 64)"},
          {"lr", "LR", "peak learning rate (default 1e-3)"},
          {"warmup", "STEPS", "warmup steps (default -1: the preset's)"},
          {"weight-decay", "WD", "AdamW weight decay (default 0.01)"},
          {"seed", "S", "seed of the initialisation, shuffles and augmentation (default 0)"},
          {"augment", "", "random crop with 4-pixel padding and horizontal flip"},
          memory_eval_option(),
          {"limit", "N", "use only the first N training images (default 0: all)"},
          {"log-every", "N", "log every N steps (default 50)"},
          {"stop-after", "EPOCHS", "stop as if interrupted after EPOCHS epochs (for --resume)"},
          {"out", "DIR", "run folder: checkpoints, train_state, metrics.jsonl", kRequired},
          {"resume", "DIR", "continue the run saved in DIR"},
          device_option(),
          precision_option()};
}

std::vector<cli::Subcommand> ait_commands() {
  const cli::Option batch_size = {"batch-size", "B", "images per forward pass (default 256)"};
  const cli::Option start = {"start", "I", "first image (default 0)"};
  return {
      {{"ait train", "train an AiT on a dataset file", train_options()}, cmd_train},
      {{"ait eval",
        "accuracy, cross-entropy and confusion matrix of a checkpoint",
        {kCheckpoint, kData, batch_size, memory_eval_option(), device_option(), precision_option()}},
       cmd_eval},
      {{"ait predict",
        "predicted class and probability of some images",
        {kCheckpoint,
         kData,
         {"count", "N", "how many images (default 10)"},
         start,
         batch_size,
         {"logits", "", "also print each image's logits (%.9g: the exact float)"},
         memory_eval_option(),
         device_option()}},
       cmd_predict},
      {{"ait info",
        "a checkpoint's config and size, a dataset's shape and classes, or a preset's size",
        {{"model", "tiny|coordination|small|medium|base", "without FILE: the preset to size (default tiny)"},
         {"set", "KEY=VALUE", "without FILE: one config key over the preset (e.g. arch=vit)", kRepeatable},
         {"all", "", "the parameter count of every preset under every architecture"}},
        {"[FILE]"}},
       cmd_info},
      {{"ait dump",
        "the docs/spec.md §7 cross-check dump",
        {kCheckpoint,
         {"batch", "BATCH", "the input batch file", kRequired},
         {"out", "OUT", "dump file", kRequired},
         {"train-steps", "N", "training steps to record (default 0)"},
         {"lr", "LR", "learning rate (default 1e-4)"},
         {"weight-decay", "WD", "AdamW weight decay (default 0.01)"},
         device_option(),
         precision_option()}},
       cmd_dump},
      idx_alias("ait convert"),
      {{"ait devices", "list the Vulkan devices", {}}, cmd_devices},
      {{"ait viz",
        "PNGs of each layer's bottleneck gates and Hopfield read weights",
        {kCheckpoint,
         kData,
         {"out", "DIR", "where the PNGs go", kRequired},
         {"count", "N", "images (default 4)"},
         start,
         device_option()}},
       cmd_viz},
      {{"ait experiment",
        "train a grid of cells x seeds, test each final checkpoint once: results.md, curves.svg",
        {{"out", "DIR", "the experiment folder (runs/, test/, results.md, curves.svg)", kRequired},
         {"report", "", "train nothing: report the runs already finished"},
         device_option()},
        {"GRID.json"},
        "The grid file names the data, the budget, the cells (preset + config keys) and the seeds;\n"
        "README.md (Experiments) describes it. Started again, it resumes unfinished runs and skips\n"
        "finished ones; each final checkpoint is tested once (OUT/test/)."},
       cmd_experiment},
      {{"ait plot",
        "training curves (SVG) from RUN_DIR/metrics.jsonl",
        {{"out", "FILE.svg", "the picture (default RUN_DIR/curves.svg)"}},
        {"RUN_DIR"}},
       cmd_plot},
  };
}

}  // namespace

int main(int argc, char** argv) {
  static const cli::Program program = {
      "ait", "The Associative Transformer in C++17 (CPU and Vulkan).", ait_commands(),
      "--device: cpu | vulkan | vulkan:N | auto (default; AIT_VK_DEVICE=N picks N for \"vulkan\").\n"
      "AIT_THREADS sets the CPU thread count (default: all cores)."};
  return cli::run_program(program, cli::arguments(argc, argv));
}

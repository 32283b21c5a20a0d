// The grid runner behind `ait experiment`; see experiment.h. The tables and the curves are in
// experiment_report.cpp.
#include "apps/experiment.h"

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "apps/experiment_report.h"
#include "io/inflate.h"
#include "model/options.h"
#include "model/run_dir.h"

namespace ait {

namespace fs = std::filesystem;

namespace {

std::string read_text(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return std::string(bytes.begin(), bytes.end());
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// `value` as text for `--set key=value`: strings as they are, numbers and booleans as JSON.
std::string override_value(const Json& value, const std::string& where) {
  if (value.is_string()) return value.as_string();
  if (value.is_number()) return value.dump();
  if (value.is_bool()) return value.as_bool() ? "1" : "0";
  throw Error(where + " is " + value.type_name() + ", expected a number or a string");
}

bool valid_cell_name(const std::string& name) {
  if (name.empty() || name.size() > 100 || name[0] == '.') return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

void read_cells(const Json& cells, const std::string& where, ExperimentGrid& g) {
  if (!cells.is_object() || cells.size() == 0) throw Error(where + ": \"cells\" must be a non-empty object");
  for (const auto& [name, cell] : cells.as_object()) {
    const std::string at = where + ": cell '" + name + "'";
    if (!valid_cell_name(name)) throw Error(at + ": a name is letters, digits, '.', '_' and '-' (it names folders)");
    if (!cell.is_object()) throw Error(at + " must be an object");
    GridCell c{name, "tiny", {}};
    for (const auto& [key, value] : cell.as_object()) {
      if (key == "model") {
        if (!value.is_string()) throw Error(at + ": \"model\" must be a preset name");
        c.model = value.as_string();
      } else if (key == "set") {
        if (!value.is_object()) throw Error(at + ": \"set\" must be an object of config keys");
        for (const auto& [k, v] : value.as_object())
          c.overrides.push_back(k + "=" + override_value(v, at + ": \"set\" key '" + k + "'"));
      } else {
        throw Error(at + ": unknown key '" + key + "' (known: model, set)");
      }
    }
    g.cells.push_back(c);
  }
}

MemoryEval memory_eval_named(const std::string& name) {
  if (name == "frozen") return MemoryEval::Frozen;
  if (name == "update") return MemoryEval::Update;
  throw Error("'" + name + "' is neither frozen nor update");
}

void read_budget(const Json& budget, const std::string& where, TrainOptions& o) {
  if (!budget.is_object()) throw Error(where + ": \"budget\" must be an object");
  for (const auto& [key, value] : budget.as_object()) {
    const std::string at = where + ": budget key '" + key + "'";
    try {
      if (key == "epochs") o.epochs = value.as_int(1, TrainLimits::kMaxEpochs);
      else if (key == "batch_size") o.batch_size = value.as_int(1, TrainLimits::kMaxBatchSize);
      else if (key == "lr") o.lr = float(value.as_number());
      else if (key == "warmup") o.warmup = value.as_int(-1, TrainLimits::kMaxSteps);
      else if (key == "weight_decay") o.weight_decay = float(value.as_number());
      else if (key == "augment") o.augment = value.as_bool();
      else if (key == "limit") o.limit_train = value.as_int(0, TrainLimits::kMaxSteps);
      else if (key == "log_every") o.log_every = value.as_int(1, TrainLimits::kMaxSteps);
      else if (key == "memory_eval") o.memory_eval = memory_eval_named(value.as_string());
      else
        throw Error(
            "unknown key (known: epochs, batch_size, lr, warmup, weight_decay, augment, limit, log_every, "
            "memory_eval)");
    } catch (const Error& e) {
      throw Error(at + ": " + e.what());
    }
  }
  if (!(o.lr > 0) || !std::isfinite(o.lr)) throw Error(where + ": budget key 'lr' must be a number above 0");
  if (!(o.weight_decay >= 0) || o.weight_decay > TrainLimits::kMaxWeightDecay)
    throw Error(where + ": budget key 'weight_decay' must be in [0, " +
                std::to_string(int(TrainLimits::kMaxWeightDecay)) + "]");
}

void read_data(const Json& data, const std::string& where, ExperimentGrid& g) {
  if (!data.is_object()) throw Error(where + ": \"data\" must be an object with train, val and test files");
  const fs::path base = fs::path(where).parent_path();
  for (const auto& [key, value] : data.as_object()) {
    if (!value.is_string()) throw Error(where + ": data key '" + key + "' must be a file name");
    const std::string file = (base / value.as_string()).lexically_normal().string();
    if (key == "train") g.train = file;
    else if (key == "val") g.val = file;
    else if (key == "test") g.test = file;
    else throw Error(where + ": unknown data key '" + key + "' (known: train, val, test)");
  }
  if (g.train.empty() || g.test.empty()) throw Error(where + ": \"data\" must name the train and test files");
}

}  // namespace

ExperimentGrid read_grid(const std::string& path) {
  const Json j = Json::parse(read_text(path), path);
  if (!j.is_object()) throw Error(path + ": a grid file is a JSON object");
  ExperimentGrid g;
  g.path = path;
  for (const auto& [key, value] : j.as_object()) {
    if (key == "data") read_data(value, path, g);
    else if (key == "budget") read_budget(value, path, g.budget);
    else if (key == "cells") read_cells(value, path, g);
    else if (key == "seeds") {
      if (!value.is_array() || value.size() == 0) throw Error(path + ": \"seeds\" must be a non-empty array");
      for (const Json& s : value.as_array()) {
        const int64_t seed = s.as_int(0, INT32_MAX);
        for (int64_t other : g.seeds)
          if (other == seed) throw Error(path + ": seed " + std::to_string(seed) + " is listed twice");
        g.seeds.push_back(seed);
      }
    } else {
      throw Error(path + ": unknown key '" + key + "' (known: data, budget, cells, seeds)");
    }
  }
  if (g.train.empty()) throw Error(path + ": no \"data\"");
  if (g.cells.empty()) throw Error(path + ": no \"cells\"");
  if (g.seeds.empty()) g.seeds = {0};
  Json data = Json::object(), budget = j.find("budget") ? *j.find("budget") : Json::object();
  data.set("train", g.train), data.set("val", g.val), data.set("test", g.test);
  g.identity = Json::object();
  g.identity.set("data", data), g.identity.set("budget", budget);
  return g;
}

namespace {

// Epochs committed in a run directory (0 when nothing was committed yet).
int64_t committed_epochs(const std::string& dir) {
  if (!fs::exists(fs::path(dir) / "current") && !fs::exists(fs::path(dir) / "train_state.safetensors")) return 0;
  return read_committed_run(dir).epoch;
}

// The runs of an experiment started before were trained with the same data and budget.
void check_same_grid(const ExperimentGrid& g, const std::string& out) {
  const std::string saved = (fs::path(out) / "trained-with.json").string();
  if (!fs::exists(saved)) {
    fs::create_directories(out);
    write_text(saved, g.identity.dump() + "\n");
    return;
  }
  if (Json::parse(read_text(saved), saved) != g.identity)
    throw Error(saved + ": the runs in " + out + " were trained with other data or another budget than " + g.path +
                " gives; choose another --out");
}

// Trains one cell × seed, from the start or from its last committed epoch; a finished run is skipped.
void train_run(const ExperimentGrid& g, const RunKey& run, Kernels& dev, const std::string& counter) {
  const int64_t done = committed_epochs(run.dir);
  const std::string name = counter + " " + run.cell->name + " seed " + std::to_string(run.seed);
  if (done >= g.budget.epochs) {
    std::fprintf(stderr, "experiment: %s: finished earlier (%lld/%lld epochs), skipped\n", name.c_str(),
                 static_cast<long long>(done), static_cast<long long>(g.budget.epochs));
    return;
  }
  TrainOptions o = g.budget;
  o.data = g.train, o.val = g.val, o.model = run.cell->model, o.overrides = run.cell->overrides;
  o.seed = run.seed, o.out = run.dir;
  if (done > 0) o.resume = run.dir;
  std::fprintf(stderr, "experiment: %s: %s (%s%s) in %s\n", name.c_str(), done ? "resuming" : "training",
               run.cell->model.c_str(), run.cell->overrides.empty() ? "" : ", overrides", run.dir.c_str());
  const auto start = std::chrono::steady_clock::now();
  const double best = train(o, dev);
  std::fprintf(stderr, "experiment: %s: finished, best val accuracy %.4f, %.1f s\n", name.c_str(), best,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace

int64_t run_experiment(const ExperimentOptions& opt, Kernels& dev) {
  const ExperimentGrid g = read_grid(opt.grid);
  check_same_grid(g, opt.out);
  const std::vector<RunKey> runs = grid_runs(g, opt.out);
  if (!opt.report_only) {
    for (size_t i = 0; i < runs.size(); ++i)
      train_run(g, runs[i], dev, "[" + std::to_string(i + 1) + "/" + std::to_string(runs.size()) + "]");
  }
  int64_t unfinished = 0;
  std::vector<RunResult> results;
  TestSplit test{g.test, {}, false};
  for (const RunKey& run : runs) {
    const int64_t done = committed_epochs(run.dir);
    if (done < g.budget.epochs) {
      ++unfinished;
      continue;
    }
    if (done > g.budget.epochs)
      throw Error(run.dir + ": the run has " + std::to_string(done) + " epochs, the budget " +
                  std::to_string(g.budget.epochs));
    results.push_back(evaluate_run(g, run, dev, test));
  }
  const ReportFiles files = write_report(g, opt, dev, results, unfinished);
  std::printf("wrote %s\nwrote %s\n", files.results.c_str(), files.curves.c_str());
  return unfinished;
}

}  // namespace ait

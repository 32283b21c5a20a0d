// Test evaluation, results.md and curves.svg of `ait experiment`; see experiment_report.h.
#include "apps/experiment_report.h"

#include <algorithm>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "apps/plot.h"
#include "io/inflate.h"
#include "model/model.h"
#include "model/options.h"
#include "model/run_dir.h"
#include "model/train.h"

namespace ait {

namespace fs = std::filesystem;

std::vector<RunKey> grid_runs(const ExperimentGrid& g, const std::string& out) {
  std::vector<RunKey> runs;
  for (const GridCell& c : g.cells)
    for (int64_t seed : g.seeds)
      runs.push_back({&c, seed, (fs::path(out) / "runs" / c.name / ("seed-" + std::to_string(seed))).string()});
  return runs;
}

namespace {

constexpr int64_t kEvalBatch = 256;  // `ait eval`'s default, so that the figures are the ones it prints

std::string test_file(const RunKey& run) {
  return (fs::path(run.dir).parent_path().parent_path().parent_path() / "test" /
          (run.cell->name + ".seed-" + std::to_string(run.seed) + ".json"))
      .string();
}

Json rows_json(const std::vector<ClevrRow>& rows) {
  Json a = Json::array();
  for (const ClevrRow& r : rows) {
    Json j = Json::object();
    j.set("name", r.name), j.set("level", r.level), j.set("n", r.n), j.set("correct", r.correct);
    j.set("majority", r.majority);
    a.push_back(j);
  }
  return a;
}

std::vector<ClevrRow> rows_from(const Json& a) {
  std::vector<ClevrRow> rows;
  for (const Json& j : a.as_array()) {
    ClevrRow r{
        j.at("name").as_string(),    int(j.at("level").as_int(0, 1)), j.at("n").as_int(0), j.at("correct").as_int(0), 0,
        j.at("majority").as_number()};
    r.accuracy = r.n ? double(r.correct) / double(r.n) : 0.0;
    rows.push_back(r);
  }
  return rows;
}

// Evaluates the committed model on the test split and returns the record kept in OUT/test/.
Json evaluate_checkpoint(const ExperimentGrid& g, const std::string& model_path, Kernels& dev, TestSplit& test) {
  if (!test.loaded) test.data = load_dataset(test.path), test.loaded = true;
  AiT model = AiT::load(model_path, dev);
  check_batch_fits(model.config(), kEvalBatch, test.data.n, false, "test evaluation");
  Json j = Json::object();
  j.set("checkpoint", model_path);
  j.set("parameters", model.parameter_count());
  if (is_sort_of_clevr(test.data)) {
    // One pass gives both the breakdown and the overall accuracy.
    std::vector<ClevrRow> rows =
        clevr_breakdown(model, test.data, kEvalBatch, g.budget.memory_eval, model_path, test.path, false);
    j.set("n", rows.back().n), j.set("correct", rows.back().correct), j.set("ce", Json());
    j.set("questions", rows_json(rows));
  } else {
    const EvalResult r = evaluate(model, test.data, kEvalBatch, g.budget.memory_eval, false);
    j.set("n", r.n), j.set("correct", r.correct), j.set("ce", r.ce);
  }
  return j;
}

double nan() { return std::numeric_limits<double>::quiet_NaN(); }

}  // namespace

RunResult evaluate_run(const ExperimentGrid& g, const RunKey& run, Kernels& dev, TestSplit& test) {
  const CommittedRun committed = read_committed_run(run.dir);
  const std::string cache = test_file(run);
  Json record;
  if (fs::exists(cache)) {
    const std::vector<uint8_t> bytes = read_file(cache);
    record = Json::parse(std::string(bytes.begin(), bytes.end()), cache);
    if (!record.is_object() || !record.has("checkpoint") || record.at("checkpoint") != Json(committed.model))
      record = Json();  // made for another checkpoint: evaluate again
  }
  if (record.is_null()) {
    std::fprintf(stderr, "experiment: testing %s seed %lld on %s\n", run.cell->name.c_str(),
                 static_cast<long long>(run.seed), test.path.c_str());
    record = evaluate_checkpoint(g, committed.model, dev, test);
    fs::create_directories(fs::path(cache).parent_path());
    const std::string text = record.dump() + "\n";
    write_file_atomic(cache, std::vector<uint8_t>(text.begin(), text.end()));
  }
  RunResult r;
  r.key = run;
  r.epochs = committed.epoch;
  r.parameters = record.at("parameters").as_int(0);
  r.test_n = record.at("n").as_int(1), r.test_correct = record.at("correct").as_int(0, r.test_n);
  r.test_accuracy = double(r.test_correct) / double(r.test_n);
  r.test_ce = record.at("ce").is_null() ? nan() : record.at("ce").as_number();
  if (record.has("questions")) r.questions = rows_from(record.at("questions"));
  r.metrics = parse_metrics(committed.metrics, run.dir + "/metrics.jsonl");
  r.val_accuracy = r.metrics.epochs.empty() ? nan() : r.metrics.epochs.back().val_accuracy;
  double images = 0;
  for (const MetricsEpoch& e : r.metrics.epochs)
    if (std::isfinite(e.seconds) && std::isfinite(e.images_per_s))
      r.train_seconds += e.seconds, images += e.seconds * e.images_per_s;
  r.images_per_s = r.train_seconds > 0 ? images / r.train_seconds : nan();
  return r;
}

namespace {

// ---------------------------------------------------------------- results.md

struct Stat {
  double mean = 0, sd = 0;
  size_t n = 0;
};
// Mean and sample standard deviation of the finite values.
Stat stat_of(const std::vector<double>& v) {
  Stat s;
  for (double x : v)
    if (std::isfinite(x)) s.mean += x, ++s.n;
  if (s.n == 0) return {nan(), nan(), 0};
  s.mean /= double(s.n);
  for (double x : v)
    if (std::isfinite(x)) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = s.n > 1 ? std::sqrt(s.sd / double(s.n - 1)) : 0.0;
  return s;
}

std::string fmt(const char* f, double v) {
  if (!std::isfinite(v)) return "–";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// "mean ± sd" (the mean alone for one seed).
std::string mean_sd(const std::vector<double>& v, const char* f) {
  const Stat s = stat_of(v);
  if (s.n == 0) return "–";
  return s.n == 1 ? fmt(f, s.mean) : fmt(f, s.mean) + " ± " + fmt(f, s.sd);
}

template <class F>
std::vector<double> collect(const std::vector<const RunResult*>& runs, F value) {
  std::vector<double> v;
  for (const RunResult* r : runs) v.push_back(value(*r));
  return v;
}

std::vector<const RunResult*> runs_of(const std::vector<RunResult>& results, const GridCell& cell) {
  std::vector<const RunResult*> v;
  for (const RunResult& r : results)
    if (r.key.cell == &cell) v.push_back(&r);
  return v;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      std::string m = line.substr(line.find(':') + 1);
      return m.substr(m.find_first_not_of(' '));
    }
  return "unknown CPU";
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

std::string budget_text(const TrainOptions& b) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "%lld epochs, batch size %lld, lr %g (warmup %s, cosine), weight decay %g, augmentation %s, "
                "training images %s, memory at evaluation %s",
                static_cast<long long>(b.epochs), static_cast<long long>(b.batch_size), double(b.lr),
                b.warmup < 0 ? "the default" : (std::to_string(b.warmup) + " steps").c_str(), double(b.weight_decay),
                b.augment ? "crop + flip" : "none",
                b.limit_train ? ("the first " + std::to_string(b.limit_train)).c_str() : "all",
                b.memory_eval == MemoryEval::Update ? "updated" : "frozen");
  return buf;
}

std::string model_text(const GridCell& c) {
  std::string s = "`" + c.model + "`";
  for (const std::string& o : c.overrides) s += " `" + o + "`";
  return s;
}

void cell_table(std::string& md, const ExperimentGrid& g, const std::vector<RunResult>& results) {
  md += "## Cells (mean ± standard deviation over the seeds)\n\n";
  md += "| cell | model | seeds | parameters | test accuracy | val accuracy | train time (s) | train img/s |\n";
  md += "|---|---|---|---|---|---|---|---|\n";
  for (const GridCell& c : g.cells) {
    const std::vector<const RunResult*> runs = runs_of(results, c);
    if (runs.empty()) continue;
    md += "| " + c.name + " | " + model_text(c) + " | " + std::to_string(runs.size()) + " | " +
          std::to_string(runs.front()->parameters) + " | " +
          mean_sd(collect(runs, [](const RunResult& r) { return r.test_accuracy; }), "%.4f") + " | " +
          mean_sd(collect(runs, [](const RunResult& r) { return r.val_accuracy; }), "%.4f") + " | " +
          mean_sd(collect(runs, [](const RunResult& r) { return r.train_seconds; }), "%.1f") + " | " +
          mean_sd(collect(runs, [](const RunResult& r) { return r.images_per_s; }), "%.0f") + " |\n";
  }
  md += "\n";
}

// Sort-of-CLEVR: a row per question type and subtype, a column per cell.
void question_table(std::string& md, const ExperimentGrid& g, const std::vector<RunResult>& results) {
  const RunResult* first = nullptr;
  for (const RunResult& r : results)
    if (!r.questions.empty()) first = first ? first : &r;
  if (!first) return;
  md += "## Test accuracy per question type (mean ± standard deviation over the seeds)\n\n| question | count |";
  std::string rule = "|---|---|";
  for (const GridCell& c : g.cells)
    if (!runs_of(results, c).empty()) md += " " + c.name + " |", rule += "---|";
  md += " majority answer |\n" + rule + "---|\n";
  for (size_t i = 0; i < first->questions.size(); ++i) {
    const ClevrRow& q = first->questions[i];
    md += "| " + std::string(q.level ? "&nbsp;&nbsp;" : "") + q.name + " | " + std::to_string(q.n) + " |";
    for (const GridCell& c : g.cells) {
      const std::vector<const RunResult*> runs = runs_of(results, c);
      if (runs.empty()) continue;
      md += " " +
            mean_sd(collect(runs,
                            [i](const RunResult& r) {
                              return i < r.questions.size() && r.questions[i].n ? r.questions[i].accuracy : nan();
                            }),
                    "%.4f") +
            " |";
    }
    md += " " + fmt("%.4f", q.majority) + " |\n";
  }
  md += "\n";
}

void run_table(std::string& md, const std::vector<RunResult>& results) {
  md +=
      "## Runs\n\n| cell | seed | epochs | test accuracy | correct / images | test cross-entropy | val accuracy "
      "| train time (s) | train img/s | checkpoint |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const RunResult& r : results)
    md += "| " + r.key.cell->name + " | " + std::to_string(r.key.seed) + " | " + std::to_string(r.epochs) + " | " +
          fmt("%.4f", r.test_accuracy) + " | " + std::to_string(r.test_correct) + " / " + std::to_string(r.test_n) +
          " | " + fmt("%.4f", r.test_ce) + " | " + fmt("%.4f", r.val_accuracy) + " | " + fmt("%.1f", r.train_seconds) +
          " | " + fmt("%.0f", r.images_per_s) + " | `" + r.key.dir + "/model.safetensors` |\n";
  md += "\n";
}

std::string results_markdown(const ExperimentGrid& g, const ExperimentOptions& opt, Kernels& dev,
                             const std::vector<RunResult>& results, int64_t unfinished) {
  std::string md = "# Experiment " + g.path + "\n\n";
  md += "- command: `" + opt.command + "`\n- date: " + utc_now() + "\n- machine: " + cpu_model() + " (" +
        std::to_string(std::thread::hardware_concurrency()) + " CPUs online); device " + dev.name() +
        "\n- budget (every cell): " + budget_text(g.budget) + "\n- data: train `" + g.train + "`, validation `" +
        (g.val.empty() ? g.train : g.val) + "`, test `" + g.test + "` (evaluated once per final checkpoint)\n";
  md += "- runs finished: " + std::to_string(results.size()) + " of " +
        std::to_string(int64_t(results.size()) + unfinished) + "\n\n";
  md +=
      "Test accuracy: the final checkpoint (after the last epoch) on the test split, as `ait eval` computes it; "
      "val accuracy: the last epoch's; train time: the epochs' training time without validation; img/s: "
      "training images per second over those epochs.\n\n";
  cell_table(md, g, results);
  question_table(md, g, results);
  run_table(md, results);
  return md;
}

// ---------------------------------------------------------------- curves.svg

const char* const kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};

// The pointwise mean of series that share their x values (seeds of one cell under one budget);
// it stops where one of them stops.
std::vector<std::pair<double, double>> mean_series(const std::vector<std::vector<std::pair<double, double>>>& all) {
  std::vector<std::pair<double, double>> mean;
  for (size_t i = 0;; ++i) {
    double sum = 0;
    for (const auto& s : all) {
      if (i >= s.size() || s[i].first != all.front()[i].first) return mean;
      sum += s[i].second;
    }
    mean.push_back({all.front()[i].first, sum / double(all.size())});
  }
}

// Thin lines per seed and the cell's mean (thick, in the legend) of one quantity.
template <class Points>
void cell_series(std::vector<plot::Series>& out, const GridCell& c, const std::vector<const RunResult*>& runs,
                 const std::string& colour, const std::string& cls, Points points) {
  std::vector<std::vector<std::pair<double, double>>> per_seed;
  for (const RunResult* r : runs) {
    per_seed.push_back(points(*r));
    out.push_back(
        {c.name + " seed " + std::to_string(r->key.seed), colour, cls + "-seed", per_seed.back(), false, 0.8, false});
  }
  const std::string label = runs.size() > 1 ? c.name + " (mean of " + std::to_string(runs.size()) + " seeds)" : c.name;
  out.push_back({label, colour, cls + "-mean", mean_series(per_seed), false, 2.4, true});
}

std::string curves_svg(const ExperimentGrid& g, const std::vector<RunResult>& results) {
  std::vector<plot::Series> val, loss;
  double max_step = 1;
  size_t colour = 0;
  for (const GridCell& c : g.cells) {
    const std::vector<const RunResult*> runs = runs_of(results, c);
    if (runs.empty()) continue;
    const std::string hue = kPalette[colour++ % (sizeof kPalette / sizeof kPalette[0])];
    cell_series(val, c, runs, hue, "val", [](const RunResult& r) {
      std::vector<std::pair<double, double>> p;
      for (const MetricsEpoch& e : r.metrics.epochs)
        if (std::isfinite(e.val_accuracy)) p.push_back({e.epoch, e.val_accuracy});
      return p;
    });
    plot::Series points = val.back();  // the mean's epochs as markers too: one epoch is one point
    points.cls = "val-points", points.markers = true, points.legend = false;
    val.push_back(points);
    cell_series(loss, c, runs, hue, "loss", [&max_step](const RunResult& r) {
      std::vector<std::pair<double, double>> p;
      for (const MetricsStep& s : r.metrics.steps) p.push_back({s.step, s.loss}), max_step = std::max(max_step, s.step);
      return p;
    });
  }
  const double W = 900, ph = 300, top = 50, gap = 75, left = 90, pw = W - left - 30, H = top + 2 * ph + gap + 55;
  std::string svg = plot::svg_begin(W, H, "Learning curves: " + g.path);
  plot::panel(svg, left, top, pw, ph, {"epoch", "validation accuracy", 0, double(g.budget.epochs), false}, val);
  plot::panel(svg, left, top + ph + gap, pw, ph, {"step", "training loss", 0, max_step, true}, loss);
  return svg + plot::svg_end();
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
}

}  // namespace

ReportFiles write_report(const ExperimentGrid& g, const ExperimentOptions& opt, Kernels& dev,
                         const std::vector<RunResult>& results, int64_t unfinished) {
  ReportFiles f{(fs::path(opt.out) / "results.md").string(), (fs::path(opt.out) / "curves.svg").string()};
  write_text(f.results, results_markdown(g, opt, dev, results, unfinished));
  write_text(f.curves, curves_svg(g, results));
  return f;
}

}  // namespace ait

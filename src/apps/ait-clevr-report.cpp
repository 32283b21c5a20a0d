// ait-clevr-report: accuracy of an AiT checkpoint on a Sort-of-CLEVR dataset file (made by
// `ait-convert sort-of-clevr`), broken down by question type and subtype.
//
// The type and subtype of each row are read from its question vector (src/apps/sort_of_clevr.h): the
// one-hot at features 12..14 (non-relational, binary relational, ternary relational) and at
// 15..17 (subtype). Alongside each accuracy the report prints the majority-answer baseline:
// per subtype, always giving that subtype's most frequent answer; for a type or the totals,
// the same per subtype, summed. That is about the best a model that reads the question but
// not the image can score (scenes are drawn independently of the questions).
#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "apps/convert.h"
#include "apps/model_options.h"
#include "io/dataset.h"
#include "model/model.h"
#include "model/options.h"
#include "model/train.h"

using namespace ait;

namespace {

const char* kTypeNames[3] = {"non-relational", "binary relational", "ternary relational"};
const char* kSubtypeNames[3][3] = {
    {"shape of the object", "is it on the left", "is it on the top"},
    {"shape of the nearest", "shape of the farthest", "count of others with its shape"},
    {"count in the box of A and B", "any object on the band of AB", "obtuse-triangle count"},
};

// Index of the single 1 among q[lo, lo+n), or -1 when the values are not a one-hot.
int one_hot(const float* q, int lo, int n) {
  int at = -1;
  for (int i = 0; i < n; ++i) {
    if (q[lo + i] == 1.0f) {
      if (at >= 0) return -1;
      at = i;
    } else if (q[lo + i] != 0.0f) {
      return -1;
    }
  }
  return at;
}

struct Tally {
  int64_t n = 0, correct = 0;
  std::map<int, int64_t> answers;  // subtype rows: truth -> count
  int64_t blind = 0;               // aggregates: sum of the subtypes' majority counts
  void add(bool ok, int truth) {
    ++n;
    correct += ok;
    ++answers[truth];
  }
  int64_t majority_count() const {
    int64_t best = blind;
    for (auto& kv : answers) best = std::max(best, kv.second);
    return best;
  }
  void add(const Tally& o) {  // o: a subtype row or an aggregate
    n += o.n, correct += o.correct;
    blind += o.majority_count();
  }
  double acc() const { return n ? double(correct) / double(n) : 0.0; }
  double majority() const { return n ? double(majority_count()) / double(n) : 0.0; }
};

void row(const std::string& name, const Tally& t) {
  if (t.n == 0) {
    std::printf("  %-40s %8s %9s %9s\n", name.c_str(), "0", "-", "-");
    return;
  }
  std::printf("  %-40s %8lld %8.2f%% %8.2f%%\n", name.c_str(), static_cast<long long>(t.n), 100.0 * t.acc(),
              100.0 * t.majority());
}

std::string dims(int64_t c, int64_t h, int64_t w) {
  return std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w);
}

// The data must be Sort-of-CLEVR and fit the model.
void check_fits(const Config& c, const Dataset& ds, const std::string& checkpoint, const std::string& data) {
  if (ds.question_dim != kClevrQuestionDim)
    throw Error(data + ": question_dim is " + std::to_string(ds.question_dim) + ", a Sort-of-CLEVR file has " +
                std::to_string(kClevrQuestionDim) + " (make one with ait-convert sort-of-clevr)");
  if (c.question_dim != ds.question_dim)
    throw Error(checkpoint + ": the model takes questions of " + std::to_string(c.question_dim) +
                " features, the data has " + std::to_string(ds.question_dim));
  if (c.channels != ds.channels || c.image_height != ds.height || c.image_width != ds.width)
    throw Error(checkpoint + ": the model expects " + dims(c.channels, c.image_height, c.image_width) +
                " images, the data has " + dims(ds.channels, ds.height, ds.width));
  if (int64_t(ds.classes.size()) > c.num_classes)
    throw Error(data + ": " + std::to_string(ds.classes.size()) + " classes, the model has " +
                std::to_string(c.num_classes));
}

// Each row's question type and subtype, read from its question vector before running anything
// (fail fast on bad data).
void question_kinds(const Dataset& ds, const std::string& data, std::vector<int>& type, std::vector<int>& sub) {
  type.resize(size_t(ds.n)), sub.resize(size_t(ds.n));
  for (int64_t i = 0; i < ds.n; ++i) {
    const float* q = ds.questions.data() + i * ds.question_dim;
    type[size_t(i)] = one_hot(q, 12, 3);
    sub[size_t(i)] = one_hot(q, 15, 3);
    if (type[size_t(i)] < 0 || sub[size_t(i)] < 0)
      throw Error(data + ": row " + std::to_string(i) + ": question features 12-14 / 15-17 are not one-hots");
  }
}

using Tallies = std::array<std::array<Tally, 3>, 3>;  // [type][subtype]

// Runs the model over the data in batches; with MemoryEval::Update each batch writes the
// memory and commits it before the next.
Tallies run_model(AiT& model, const Dataset& ds, int64_t batch, MemoryEval mode, const std::vector<int>& type,
                  const std::vector<int>& sub) {
  Tallies by;
  NoGradScope no_grad;
  const int64_t C = model.config().num_classes;
  const bool write = mode == MemoryEval::Update;
  for (int64_t start = 0; start < ds.n; start += batch) {
    std::vector<int64_t> idx(size_t(std::min(batch, ds.n - start)));
    std::iota(idx.begin(), idx.end(), start);
    Batch b = make_batch(ds, idx, model.device(), false, nullptr, &model);
    // No labels: only the logits are read, so the pass need not compute the losses.
    ForwardResult f = model.forward(b.images, b.questions, Tensor(), write, false, 0);
    if (write) model.commit_memory(f);
    std::vector<float> logits = f.logits.to_vector();
    for (size_t i = 0; i < idx.size(); ++i) {
      const size_t row = size_t(idx[i]);
      const int pred = int(predicted_class(logits, int64_t(i), C)), truth = ds.labels[row];
      by[size_t(type[row])][size_t(sub[row])].add(pred == truth, truth);
    }
    std::fprintf(stderr, "\rait-clevr-report: %lld/%lld", static_cast<long long>(start + int64_t(idx.size())),
                 static_cast<long long>(ds.n));
  }
  std::fprintf(stderr, "\n");
  return by;
}

void print_report(const Tallies& by) {
  std::printf("  %-40s %8s %9s %9s\n", "question", "count", "accuracy", "majority");
  Tally overall, relational;
  for (int t = 0; t < 3; ++t) {
    Tally tt;
    for (int s = 0; s < 3; ++s) tt.add(by[t][s]);
    row(kTypeNames[t], tt);
    for (int s = 0; s < 3; ++s) row(std::string("  ") + std::to_string(s) + ": " + kSubtypeNames[t][s], by[t][s]);
    overall.add(tt);
    if (t > 0) relational.add(tt);
  }
  row("relational (binary + ternary)", relational);
  row("overall", overall);
}

int report(const cli::Args& a) {
  const std::string checkpoint = a.get("checkpoint"), data = a.get("data");
  const int64_t batch = a.integer("batch-size", 256, 1, TrainLimits::kMaxBatchSize);
  const MemoryEval mode = memory_eval_from(a);
  AiT model = AiT::load(checkpoint, device_from(a));
  Dataset ds = load_dataset(data);
  check_fits(model.config(), ds, checkpoint, data);
  try {
    check_batch_fits(model.config(), batch, ds.n, false, "--batch-size");
  } catch (const OptionError& e) {
    a.fail(e.what());
  }
  std::vector<int> type, sub;
  question_kinds(ds, data, type, sub);
  const Tallies by = run_model(model, ds, batch, mode, type, sub);
  std::printf("%s on %s (%lld questions, memory %s)\n", checkpoint.c_str(), data.c_str(), static_cast<long long>(ds.n),
              mode == MemoryEval::Update ? "updated" : "frozen");
  print_report(by);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  static const cli::Command command = {
      "ait-clevr-report",
      "Accuracy per Sort-of-CLEVR question type (non-relational, binary, ternary) and subtype, read from\n"
      "the question vector's one-hots (features 12-14 and 15-17), and overall, each beside its\n"
      "majority-answer baseline.",
      {{"checkpoint", "CKPT", "the model checkpoint", cli::kRequired},
       {"data", "DATA", "a Sort-of-CLEVR dataset file (ait-convert sort-of-clevr)", cli::kRequired},
       device_option(),
       {"batch-size", "B", "questions per forward pass (default 256)"},
       memory_eval_option()}};
  return cli::run_command(command, report, cli::arguments(argc, argv));
}

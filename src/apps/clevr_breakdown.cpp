// Sort-of-CLEVR accuracy per question type; see clevr_breakdown.h.
#include "apps/clevr_breakdown.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <numeric>

#include "apps/sort_of_clevr.h"
#include "model/train.h"

namespace ait {

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

ClevrRow row(const std::string& name, int level, const Tally& t) {
  return ClevrRow{name, level, t.n, t.correct, t.acc(), t.majority()};
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
                  const std::vector<int>& sub, bool progress) {
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
    if (progress)
      std::fprintf(stderr, "\rSort-of-CLEVR questions: %lld/%lld", static_cast<long long>(start + int64_t(idx.size())),
                   static_cast<long long>(ds.n));
  }
  if (progress) std::fprintf(stderr, "\n");
  return by;
}

}  // namespace

bool is_sort_of_clevr(const Dataset& ds) { return ds.question_dim == kClevrQuestionDim; }

std::vector<ClevrRow> clevr_breakdown(AiT& model, const Dataset& ds, int64_t batch, MemoryEval mode,
                                      const std::string& checkpoint, const std::string& data, bool progress) {
  check_fits(model.config(), ds, checkpoint, data);
  std::vector<int> type, sub;
  question_kinds(ds, data, type, sub);
  const Tallies by = run_model(model, ds, batch, mode, type, sub, progress);
  std::vector<ClevrRow> rows;
  Tally overall, relational;
  for (int t = 0; t < 3; ++t) {
    Tally tt;
    for (int s = 0; s < 3; ++s) tt.add(by[size_t(t)][size_t(s)]);
    rows.push_back(row(kTypeNames[t], 0, tt));
    for (int s = 0; s < 3; ++s)
      rows.push_back(row(std::to_string(s) + ": " + kSubtypeNames[t][s], 1, by[size_t(t)][size_t(s)]));
    overall.add(tt);
    if (t > 0) relational.add(tt);
  }
  rows.push_back(row("relational (binary + ternary)", 0, relational));
  rows.push_back(row("overall", 0, overall));
  return rows;
}

}  // namespace ait

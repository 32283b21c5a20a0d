// ait-clevr-report: accuracy of an AiT checkpoint on a Sort-of-CLEVR dataset file (made by
// `ait-convert sort-of-clevr`), broken down by question type and subtype.
//
// The type and subtype of each row are read from its question vector (src/convert.h): the
// one-hot at features 12..14 (non-relational, binary relational, ternary relational) and at
// 15..17 (subtype). Alongside each accuracy the report prints the majority-answer baseline:
// per subtype, always giving that subtype's most frequent answer; for a type or the totals,
// the same per subtype, summed. That is about the best a model that reads the question but
// not the image can score (scenes are drawn independently of the questions).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "apps/convert.h"
#include "io/dataset.h"
#include "vulkan/device.h"
#include "model/model.h"
#include "model/train.h"

using namespace ait;

namespace {

const char* kUsage =
    "usage: ait-clevr-report --checkpoint CKPT --data DATA [--device D] [--batch-size B]\n"
    "                        [--memory-eval frozen|update]\n"
    "Accuracy per Sort-of-CLEVR question type (non-relational, binary, ternary) and subtype,\n"
    "read from the question vector's one-hots (features 12-14 and 15-17), and overall.\n";

const char* kTypeNames[3] = {"non-relational", "binary relational", "ternary relational"};
const char* kSubtypeNames[3][3] = {
    {"shape of the object", "is it on the left", "is it on the top"},
    {"shape of the nearest", "shape of the farthest", "count of same shape"},
    {"count between A and B", "any object near AB", "obtuse-angle count"},
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

int run(int argc, char** argv) {
  std::map<std::string, std::string> kv;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (a.rfind("--", 0) != 0 || i + 1 >= argc) throw Error("expected --option VALUE, got '" + a + "'\n" + kUsage);
    std::string k = a.substr(2);
    if (k != "checkpoint" && k != "data" && k != "device" && k != "batch-size" && k != "memory-eval")
      throw Error("unknown option --" + k + "\n" + kUsage);
    if (kv.count(k)) throw Error("--" + k + " given more than once");
    kv[k] = argv[++i];
  }
  if (!kv.count("checkpoint") || !kv.count("data")) throw Error(std::string("--checkpoint and --data are required\n") + kUsage);
  int64_t batch = 256;
  if (kv.count("batch-size")) {
    char* end = nullptr;
    batch = std::strtoll(kv["batch-size"].c_str(), &end, 10);
    if (*end || batch < 1) throw Error("--batch-size must be a positive integer, not '" + kv["batch-size"] + "'");
  }
  MemoryEval mode = MemoryEval::Frozen;
  if (kv.count("memory-eval")) {
    if (kv["memory-eval"] == "update") mode = MemoryEval::Update;
    else if (kv["memory-eval"] != "frozen") throw Error("--memory-eval must be 'frozen' or 'update'");
  }
  std::string note;
  Kernels& dev = *select_device(kv.count("device") ? kv["device"] : "auto", &note);
  if (!note.empty()) std::fprintf(stderr, "ait-clevr-report: %s\n", note.c_str());

  const std::string data = kv["data"];
  AiT model = AiT::load(kv["checkpoint"], dev);
  Dataset ds = load_dataset(data);
  const Config& c = model.config();
  if (ds.question_dim != kClevrQuestionDim)
    throw Error(data + ": question_dim is " + std::to_string(ds.question_dim) + ", a Sort-of-CLEVR file has " +
                std::to_string(kClevrQuestionDim) + " (make one with ait-convert sort-of-clevr)");
  if (c.question_dim != ds.question_dim)
    throw Error(kv["checkpoint"] + ": the model takes questions of " + std::to_string(c.question_dim) +
                " features, the data has " + std::to_string(ds.question_dim));
  if (c.channels != ds.channels || c.image_height != ds.height || c.image_width != ds.width)
    throw Error(kv["checkpoint"] + ": the model expects " + std::to_string(c.channels) + "x" + std::to_string(c.image_height) +
                "x" + std::to_string(c.image_width) + " images, the data has " + std::to_string(ds.channels) + "x" +
                std::to_string(ds.height) + "x" + std::to_string(ds.width));
  if (int64_t(ds.classes.size()) > c.num_classes)
    throw Error(data + ": " + std::to_string(ds.classes.size()) + " classes, the model has " + std::to_string(c.num_classes));

  // Group every row by its question vector before running anything (fail fast on bad data).
  std::vector<int> type(size_t(ds.n)), sub(size_t(ds.n));
  for (int64_t i = 0; i < ds.n; ++i) {
    const float* q = ds.questions.data() + i * ds.question_dim;
    type[size_t(i)] = one_hot(q, 12, 3);
    sub[size_t(i)] = one_hot(q, 15, 3);
    if (type[size_t(i)] < 0 || sub[size_t(i)] < 0)
      throw Error(data + ": row " + std::to_string(i) + ": question features 12-14 / 15-17 are not one-hots");
  }

  Tally by[3][3];
  NoGradScope no_grad;
  const int64_t C = c.num_classes;
  for (int64_t start = 0; start < ds.n; start += batch) {
    std::vector<int64_t> idx(size_t(std::min(batch, ds.n - start)));
    std::iota(idx.begin(), idx.end(), start);
    Batch b = make_batch(ds, idx, dev, false, nullptr, &model);
    const bool write = mode == MemoryEval::Update;
    // No labels: only the logits are read, so the pass need not compute the losses.
    ForwardResult f = model.forward(b.images, b.questions, Tensor(), write, false, 0);
    if (write) model.commit_memory(f);
    std::vector<float> logits = f.logits.to_vector();
    for (size_t i = 0; i < idx.size(); ++i) {
      int pred = int(predicted_class(logits, int64_t(i), C));
      int truth = ds.labels[size_t(idx[i])];
      by[type[size_t(idx[i])]][sub[size_t(idx[i])]].add(pred == truth, truth);
    }
    std::fprintf(stderr, "\rait-clevr-report: %lld/%lld", static_cast<long long>(start + int64_t(idx.size())),
                 static_cast<long long>(ds.n));
  }
  std::fprintf(stderr, "\n");

  std::printf("%s on %s (%lld questions, memory %s)\n", kv["checkpoint"].c_str(), data.c_str(),
              static_cast<long long>(ds.n), mode == MemoryEval::Update ? "updated" : "frozen");
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
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ait-clevr-report: error: %s\n", e.what());
    return 1;
  }
}

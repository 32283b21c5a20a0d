// ait-clevr-report: accuracy of an AiT checkpoint on a Sort-of-CLEVR dataset file (made by
// `ait-convert sort-of-clevr`), broken down by question type and subtype beside the
// majority-answer baseline (src/apps/clevr_breakdown.h says how both are read).
#include <cstdio>
#include <string>
#include <vector>

#include "apps/clevr_breakdown.h"
#include "apps/cli.h"
#include "apps/model_options.h"
#include "io/dataset.h"
#include "model/model.h"
#include "model/options.h"

using namespace ait;

namespace {

void print_row(const ClevrRow& r) {
  const std::string name = (r.level ? "  " : "") + r.name;
  if (r.n == 0) {
    std::printf("  %-40s %8s %9s %9s\n", name.c_str(), "0", "-", "-");
    return;
  }
  std::printf("  %-40s %8lld %8.2f%% %8.2f%%\n", name.c_str(), static_cast<long long>(r.n), 100.0 * r.accuracy,
              100.0 * r.majority);
}

int report(const cli::Args& a) {
  const std::string checkpoint = a.get("checkpoint"), data = a.get("data");
  const int64_t batch = a.integer("batch-size", 256, 1, TrainLimits::kMaxBatchSize);
  const MemoryEval mode = memory_eval_from(a);
  AiT model = AiT::load(checkpoint, device_from(a));
  Dataset ds = load_dataset(data);
  try {
    check_batch_fits(model.config(), batch, ds.n, false, "--batch-size");
  } catch (const OptionError& e) {
    a.fail(e.what());
  }
  const std::vector<ClevrRow> rows = clevr_breakdown(model, ds, batch, mode, checkpoint, data, true);
  std::printf("%s on %s (%lld questions, memory %s)\n", checkpoint.c_str(), data.c_str(), static_cast<long long>(ds.n),
              mode == MemoryEval::Update ? "updated" : "frozen");
  std::printf("  %-40s %8s %9s %9s\n", "question", "count", "accuracy", "majority");
  for (const ClevrRow& r : rows) print_row(r);
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

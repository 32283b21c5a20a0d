// The parts of `ait experiment` after training (experiment.h): each finished run's test
// evaluation (made once, then read back from OUT/test/), results.md and curves.svg.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/clevr_breakdown.h"
#include "apps/experiment.h"
#include "apps/viz.h"
#include "io/dataset.h"

namespace ait {

// One cell × seed and its run directory OUT/runs/CELL/seed-S.
struct RunKey {
  const GridCell* cell = nullptr;
  int64_t seed = 0;
  std::string dir;
};
// Every run of the grid, cell by cell in the grid's order, seeds in the grid's order.
std::vector<RunKey> grid_runs(const ExperimentGrid& g, const std::string& out);

// The test split, read when the first run needs evaluating.
struct TestSplit {
  std::string path;
  Dataset data;
  bool loaded = false;
};

struct RunResult {
  RunKey key;
  int64_t parameters = 0, epochs = 0;
  int64_t test_n = 0, test_correct = 0;
  double test_accuracy = 0, test_ce = 0;
  std::vector<ClevrRow> questions;  // Sort-of-CLEVR test splits only
  double val_accuracy = 0;          // the last epoch's (NaN when the run logged none)
  double train_seconds = 0, images_per_s = 0;
  MetricsLog metrics;
};

// The run's test evaluation: read from OUT/test/CELL.seed-S.json when it was made for the
// committed checkpoint, else evaluated now (as `ait eval` does: batches of 256, the budget's
// memory mode) and saved there. The training figures come from the run's metrics.jsonl.
RunResult evaluate_run(const ExperimentGrid& g, const RunKey& run, Kernels& dev, TestSplit& test);

struct ReportFiles {
  std::string results, curves;
};
// results.md and curves.svg in opt.out from the finished runs; `unfinished` runs are named as such.
ReportFiles write_report(const ExperimentGrid& g, const ExperimentOptions& opt, Kernels& dev,
                         const std::vector<RunResult>& results, int64_t unfinished);

}  // namespace ait

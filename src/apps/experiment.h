// `ait experiment`: trains a grid of runs (cells × seeds) on the same data and budget, then
// evaluates each final checkpoint on the test split once and writes results.md (a table per
// cell, mean ± standard deviation over seeds) and curves.svg (validation accuracy per epoch and
// training loss per step, one colour per cell). Each run is an `ait train` run directory, so a
// stopped experiment started again resumes the unfinished runs and skips the finished ones.
//
// The grid file (JSON; paths relative to the grid file's folder):
//   {"data":   {"train": "tri-train.safetensors", "val": "tri-val.safetensors", "test": "tri-test.safetensors"},
//    "budget": {"epochs": 2, "batch_size": 32, "lr": 0.002, "weight_decay": 0.05, "warmup": -1,
//               "augment": false, "limit": 0, "log_every": 10, "memory_eval": "frozen"},
//    "cells":  {"tiny": {"model": "tiny"}, "no-balance": {"model": "tiny", "set": {"balance_coef": 0}}},
//    "seeds":  [0, 1]}
// "val" may be left out (the runs then validate on the training data); budget keys left out
// take `ait train`'s defaults; a cell's "set" holds config keys (docs/spec.md §1) applied over
// its preset, as `--set key=value`.
//
// The output folder:
//   OUT/trained-with.json          the data and budget the runs were trained with (a later
//                                  invocation with a different data or budget is refused)
//   OUT/runs/CELL/seed-S/          the run directories (docs/spec.md §8)
//   OUT/test/CELL.seed-S.json      each final checkpoint's test evaluation, made once
//   OUT/results.md, OUT/curves.svg
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/kernels.h"
#include "io/json.h"
#include "model/train.h"

namespace ait {

struct GridCell {
  std::string name, model;             // name: letters, digits, '.', '_', '-' (it names folders)
  std::vector<std::string> overrides;  // "key=value"
};

struct ExperimentGrid {
  std::string path;
  std::string train, val, test;  // resolved against the grid file's folder; val may be empty
  TrainOptions budget;           // epochs, batch size, lr, warmup, weight decay, augment, limit, log_every, memory_eval
  std::vector<GridCell> cells;
  std::vector<int64_t> seeds;
  Json identity;  // the resolved data and budget, compared with OUT/trained-with.json
};

// Reads and checks a grid file; throws ait::Error naming the file and the key at fault.
ExperimentGrid read_grid(const std::string& path);

struct ExperimentOptions {
  std::string grid, out;
  std::string command;       // the command line, for results.md
  bool report_only = false;  // no training: report the runs already finished
};

// Trains what is not finished (unless report_only), evaluates the finished runs that have no
// test evaluation yet, and writes results.md and curves.svg. Returns the number of runs that are
// not finished (0 after a full run).
int64_t run_experiment(const ExperimentOptions& opt, Kernels& dev);

}  // namespace ait

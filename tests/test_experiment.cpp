// `ait experiment` end to end on a small grid (two cells × two seeds of a quadrant task): the
// table's test figures against `ait eval` on each checkpoint, the mean ± sd against those, a
// resumed run, a second invocation that trains and tests nothing, the SVG parsed back, and
// grid files that are refused.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "testutil.h"

namespace ait {
namespace {

namespace fs = std::filesystem;
using test::run_built_program;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void put(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

std::string f4(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4f", v);
  return buf;
}

// The cells of the table row that starts with "| first | second |".
std::vector<std::string> table_row(const std::string& md, const std::string& first, const std::string& second) {
  std::istringstream in(md);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| " + first + " | " + second + " |", 0) != 0) continue;
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    for (std::string c; std::getline(row, c, '|');) cells.push_back(c.substr(1, c.size() - 2));
    return cells;
  }
  return {};
}

// Well-formed XML, checked the minimal way: every element closed in order, attribute values
// quoted, nothing after the root. Returns the element names in document order.
std::vector<std::string> xml_elements(const std::string& x) {
  std::vector<std::string> stack, all;
  size_t i = x.rfind("<?xml", 0) == 0 ? x.find("?>") + 2 : 0;
  bool root_done = false;
  while ((i = x.find('<', i)) != std::string::npos) {
    EXPECT_FALSE(root_done) << "content after the root element at " << i;
    const size_t end = x.find('>', i);
    if (end == std::string::npos) throw std::runtime_error("unclosed tag at " + std::to_string(i));
    std::string tag = x.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != tag.substr(1)) throw std::runtime_error("mismatched </" + tag + ">");
      stack.pop_back();
      root_done = stack.empty();
      continue;
    }
    const bool closed = tag.back() == '/';
    const std::string name = tag.substr(0, tag.find_first_of(" /"));
    if (count_of(tag, "\"") % 2) throw std::runtime_error("unbalanced quotes in <" + name + ">");
    all.push_back(name);
    if (!closed) stack.push_back(name);
    root_done = closed && stack.empty();
  }
  if (!stack.empty()) throw std::runtime_error("<" + stack.back() + "> not closed");
  return all;
}

struct Eval {
  std::string accuracy, correct_n, ce;
  double value = 0;
};
Eval eval_checkpoint(const std::string& checkpoint, const std::string& data) {
  test::ProgramRun r = run_built_program("ait", "eval --device cpu --checkpoint " + checkpoint + " --data " + data);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::smatch m;
  if (!std::regex_search(r.output, m,
                         std::regex(R"(accuracy ([0-9.]+) \(([0-9]+)/([0-9]+)\), cross-entropy ([0-9.]+))")))
    return {};
  return {m[1], m[2].str() + " / " + m[3].str(), m[4], std::stod(m[2]) / std::stod(m[3])};
}

const char* kGrid =
    R"({"data": {"train": "q-train.safetensors", "val": "q-val.safetensors", "test": "q-test.safetensors"},
 "budget": {"epochs": 2, "batch_size": 16, "lr": 0.003, "log_every": 2},
 "cells": {"small": {"model": "tiny", "set": {"dim": 24, "head_dim": 6, "mlp_dim": 32, "bottleneck": 6}},
           "no-balance": {"model": "tiny", "set": {"dim": 24, "head_dim": 6, "mlp_dim": 32, "bottleneck": 6,
                                                   "balance_coef": 0}}},
 "seeds": [0, 3]})";

TEST(ExperimentTest, SmokeGridMatchesEvalResumesAndSkips) {
  const std::string dir = test::test_tmpdir(), out = dir + "/out", grid = dir + "/grid.json";
  save_dataset(dir + "/q-train.safetensors", test::quadrant_dataset(96, 1));
  save_dataset(dir + "/q-val.safetensors", test::quadrant_dataset(32, 2));
  save_dataset(dir + "/q-test.safetensors", test::quadrant_dataset(40, 3));
  put(grid, kGrid);
  // One run stopped after its first epoch, as a killed experiment leaves it.
  test::ProgramRun part = run_built_program(
      "ait", "train --device cpu --data " + dir + "/q-train.safetensors --val " + dir +
                 "/q-val.safetensors --model tiny --set dim=24 --set head_dim=6 --set mlp_dim=32 --set bottleneck=6 "
                 "--epochs 2 --batch-size 16 --lr 0.003 --log-every 2 --seed 3 --stop-after 1 --out " +
                 out + "/runs/small/seed-3");
  ASSERT_EQ(part.exit_code, 0) << part.output;

  test::ProgramRun first = run_built_program("ait", "experiment " + grid + " --out " + out + " --device cpu");
  ASSERT_EQ(first.exit_code, 0) << first.output;
  EXPECT_EQ(count_of(first.output, ": training (tiny"), 3) << first.output;
  EXPECT_EQ(count_of(first.output, ": resuming (tiny"), 1) << first.output;
  EXPECT_EQ(count_of(first.output, "experiment: testing "), 4) << first.output;
  const std::string md = slurp(out + "/results.md");

  std::map<std::string, std::vector<double>> by_cell;
  for (const std::string cell : {"small", "no-balance"})
    for (const std::string seed : {"0", "3"}) {
      const std::vector<std::string> row = table_row(md, cell, seed);
      ASSERT_EQ(row.size(), 10u) << cell << " seed " << seed << "\n" << md;
      EXPECT_EQ(row[2], "2");  // epochs
      const Eval e =
          eval_checkpoint(out + "/runs/" + cell + "/seed-" + seed + "/model.safetensors", dir + "/q-test.safetensors");
      EXPECT_EQ(row[3], e.accuracy) << cell << " seed " << seed;
      EXPECT_EQ(row[4], e.correct_n);
      EXPECT_EQ(row[5], e.ce);
      by_cell[cell].push_back(e.value);
    }
  for (auto& [cell, acc] : by_cell) {
    const double mean = (acc[0] + acc[1]) / 2, sd = std::fabs(acc[0] - acc[1]) / std::sqrt(2.0);
    const std::vector<std::string> row = table_row(md, cell,
                                                   cell == "small" ? "`tiny` `dim=24` `head_dim=6` "
                                                                     "`mlp_dim=32` `bottleneck=6`"
                                                                   : "`tiny` `dim=24` `head_dim=6` "
                                                                     "`mlp_dim=32` `bottleneck=6` "
                                                                     "`balance_coef=0`");
    ASSERT_EQ(row.size(), 8u) << md;
    EXPECT_EQ(row[2], "2");
    EXPECT_EQ(row[4], f4(mean) + " ± " + f4(sd)) << cell;
  }

  // Started again: nothing is trained or tested, no checkpoint changes.
  const std::string committed = fs::read_symlink(out + "/runs/small/seed-0/current").string();
  const std::string cached = slurp(out + "/test/small.seed-0.json");
  test::ProgramRun second = run_built_program("ait", "experiment " + grid + " --out " + out + " --device cpu");
  ASSERT_EQ(second.exit_code, 0) << second.output;
  EXPECT_EQ(count_of(second.output, "finished earlier (2/2 epochs), skipped"), 4) << second.output;
  EXPECT_EQ(count_of(second.output, "experiment: testing "), 0) << second.output;
  EXPECT_EQ(fs::read_symlink(out + "/runs/small/seed-0/current").string(), committed);
  EXPECT_EQ(slurp(out + "/test/small.seed-0.json"), cached);
  EXPECT_EQ(table_row(slurp(out + "/results.md"), "small", "0"), table_row(md, "small", "0"));

  // The curves: well-formed, a mean line per cell and panel, a thin line per run and panel, labelled axes.
  const std::string svg = slurp(out + "/curves.svg");
  std::vector<std::string> elements;
  ASSERT_NO_THROW(elements = xml_elements(svg));
  EXPECT_EQ(elements.front(), "svg");
  EXPECT_EQ(count_of(svg, "class=\"val-mean\""), 2);
  EXPECT_EQ(count_of(svg, "class=\"loss-mean\""), 2);
  EXPECT_EQ(count_of(svg, "class=\"val-seed\""), 4);
  EXPECT_EQ(count_of(svg, "class=\"loss-seed\""), 4);
  for (const char* label : {">epoch<", ">step<", ">validation accuracy<", ">training loss<"})
    EXPECT_EQ(count_of(svg, label), 1) << label;
  for (const char* legend : {">small (mean of 2 seeds)<", ">no-balance (mean of 2 seeds)<"})
    EXPECT_EQ(count_of(svg, legend), 2) << legend;  // one legend per panel
}

// On Sort-of-CLEVR test data the table breaks the accuracy down by question type: the counts and
// accuracies of ait-clevr-report on the same checkpoint.
TEST(ExperimentTest, SortOfClevrQuestionTypesMatchTheReport) {
  const std::string dir = test::test_tmpdir(), out = dir + "/out", grid = dir + "/grid.json";
  test::ProgramRun made =
      run_built_program("ait-convert", "sort-of-clevr --train 12 --test 8 --seed 2 --out " + dir + "/soc");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  put(grid, R"({"data": {"train": "soc-train.safetensors", "test": "soc-test.safetensors"},
 "budget": {"epochs": 1, "batch_size": 60},
 "cells": {"p15": {"model": "tiny", "set": {"patch_size": 15, "dim": 16, "head_dim": 4, "mlp_dim": 16,
                                             "bottleneck": 8}}}})");
  test::ProgramRun r = run_built_program("ait", "experiment " + grid + " --out " + out + " --device cpu");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string md = slurp(out + "/results.md");
  test::ProgramRun report = run_built_program("ait-clevr-report", "--device cpu --checkpoint " + out +
                                                                      "/runs/p15/seed-0/model.safetensors --data " +
                                                                      dir + "/soc-test.safetensors");
  ASSERT_EQ(report.exit_code, 0) << report.output;
  int compared = 0;
  const std::regex line(R"(^  ( *\S.*?) +([0-9]+) +([0-9.]+)% +([0-9.]+)%$)");
  std::istringstream in(report.output);
  for (std::string text; std::getline(in, text);) {
    std::smatch m;
    if (!std::regex_match(text, m, line)) continue;
    const std::string name = m[1].str().rfind("  ", 0) == 0 ? "&nbsp;&nbsp;" + m[1].str().substr(2) : m[1].str();
    const std::vector<std::string> row = table_row(md, name, m[2]);
    ASSERT_EQ(row.size(), 4u) << name << "\n" << md;
    EXPECT_NEAR(std::stod(row[2]), std::stod(m[3]) / 100, 5.1e-5) << name;  // %.4f against %.2f%%
    EXPECT_NEAR(std::stod(row[3]), std::stod(m[4]) / 100, 5.1e-5) << name;
    ++compared;
  }
  EXPECT_EQ(compared, 14);  // 3 types, 9 subtypes, relational, overall
}

TEST(ExperimentTest, BadGridsAreRefused) {
  const std::string dir = test::test_tmpdir(), grid = dir + "/grid.json";
  auto refused = [&](const std::string& text, const std::string& message) {
    put(grid, text);
    test::ProgramRun r =
        run_built_program("ait", "experiment " + grid + " --out " + dir + "/out --report --device cpu");
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << r.output;
  };
  const std::string data = R"("data": {"train": "a", "test": "b"}, )";
  refused("{" + data + R"("budget": {"epochz": 2}, "cells": {"a": {}}})", "budget key 'epochz': unknown key");
  refused("{" + data + R"("budget": {"epochs": 0}, "cells": {"a": {}}})", "budget key 'epochs'");
  refused("{" + data + R"("cells": {"../x": {}}})", "cell '../x'");
  refused("{" + data + R"("cells": {"a": {"set": {"dim": [1]}}}})", "\"set\" key 'dim' is an array");
  refused("{" + data + R"("cells": {"a": {}}, "seeds": [1, 1]})", "seed 1 is listed twice");
  refused(R"({"cells": {"a": {}}})", "no \"data\"");
  refused("{" + data + R"("cells": {"a": {}}} x)", "grid.json: invalid JSON");
  // An output folder made with another budget.
  put(grid, "{" + data + R"("budget": {"epochs": 1}, "cells": {"a": {}}})");
  ASSERT_EQ(run_built_program("ait", "experiment " + grid + " --out " + dir + "/out --report --device cpu").exit_code,
            0);
  refused("{" + data + R"("budget": {"epochs": 2}, "cells": {"a": {}}})",
          "were trained with other data or another budget");
}

}  // namespace
}  // namespace ait

// Accuracy of a model on a Sort-of-CLEVR dataset file (made by `ait-convert sort-of-clevr`),
// broken down by question type and subtype, each beside its majority-answer baseline. Used by
// ait-clevr-report and by the tables of `ait experiment`.
//
// The type and subtype of each row are read from its question vector (src/apps/sort_of_clevr.h): the
// one-hot at features 12..14 (non-relational, binary relational, ternary relational) and at
// 15..17 (subtype). The majority baseline: per subtype, always giving that subtype's most
// frequent answer; for a type or the totals, the same per subtype, summed. That is about the
// best a model that reads the question but not the image can score (scenes are drawn
// independently of the questions).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "model/model.h"

namespace ait {

// True when the dataset has Sort-of-CLEVR's question vectors.
bool is_sort_of_clevr(const Dataset& ds);

// One line of the breakdown. `level` 0: a question type or a total, 1: a subtype of the type above.
struct ClevrRow {
  std::string name;
  int level = 0;
  int64_t n = 0, correct = 0;
  double accuracy = 0, majority = 0;  // 0 when n is 0
};

// Checks that `ds` is Sort-of-CLEVR and fits the model of `checkpoint`, and that every question
// vector names a type and a subtype (before running anything); runs the model over the data in
// batches (with MemoryEval::Update each batch writes the memory and commits it before the
// next) and returns the rows in report order: each type followed by its three subtypes, then
// "relational (binary + ternary)" and "overall". Throws ait::Error naming `data`/`checkpoint`.
std::vector<ClevrRow> clevr_breakdown(AiT& model, const Dataset& ds, int64_t batch, MemoryEval mode,
                                      const std::string& checkpoint, const std::string& data, bool progress);

}  // namespace ait

// The run directory of `ait train --out DIR` (docs/spec.md §8): each epoch's checkpoint is a
// complete set of files published by one atomic step, so a process killed at any instant
// leaves either the previous set or the new one, never a mixture.
//
//   DIR/lock                     flock(2)ed by the training process; holds its pid
//   DIR/ckpt-NNNNNN/             one committed set: model.safetensors, best.safetensors,
//                                train_state.safetensors, metrics.jsonl and checkpoint.json
//                                (the manifest: epoch, and each file's size and CRC-32)
//   DIR/current -> ckpt-NNNNNN   the commit point: replaced by one rename
//   DIR/model.safetensors -> current/model.safetensors   (and best, train_state, metrics.jsonl)
//
// A checkpoint is written into the next ckpt-NNNNNN folder, every file and the folder fsynced,
// then `current` is swapped; the superseded folder is removed after that.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/json.h"
#include "io/safetensors.h"

namespace ait {

class AiT;
class FileLock;

// The files of a run directory's committed checkpoint, each checked against the manifest.
struct CommittedRun {
  std::string folder;                    // where the files are: DIR/ckpt-NNNNNN (DIR: older layout)
  int64_t epoch = 0;                     // epochs completed
  std::string model, best, train_state;  // paths; `best` is empty when the set has none
  std::string metrics;                   // metrics.jsonl up to and including `epoch`
};

// Reads the committed checkpoint of the run directory `dir`. Throws an ait::Error naming the
// file when a file is missing, or its size or CRC-32 differs from the manifest's, and naming
// `dir` when nothing was ever committed there. A directory of the layout before the manifest
// (plain model.safetensors and train_state.safetensors) is read as it is, its metrics.jsonl
// cut back to the epochs train_state.safetensors records.
CommittedRun read_committed_run(const std::string& dir);
// The model file of the committed checkpoint of `dir`, without reading the files through: for
// reading a run's config (a resume then checks every file with read_committed_run). Throws as
// read_committed_run does when nothing was committed.
std::string committed_model(const std::string& dir);

class RunDir {
public:
  // Creates `dir` when missing and locks it for the life of the object: another process
  // training into it makes this throw, naming that process's pid. Then removes what killed
  // runs left: temporaries ("*.tmp.<pid>" of dead processes) and checkpoint folders that
  // `current` does not name. The committed files are not touched.
  explicit RunDir(const std::string& dir);
  // A folder this object created and never committed to is removed again.
  ~RunDir();
  RunDir(const RunDir&) = delete;
  RunDir& operator=(const RunDir&) = delete;

  // Names removed by the constructor's clean-up (for the start message).
  const std::vector<std::string>& removed() const { return removed_; }
  // A resumed run continues the metrics and the best checkpoint of `run`.
  void continue_from(const CommittedRun& run);
  // A metrics.jsonl line, kept until the next commit writes it with the checkpoint.
  void log(const Json& line);
  // Publishes the checkpoint after `epoch`: the model, the best model (`model` itself when
  // `improved`, else the previous set's), the training state and the metrics so far.
  void commit(int64_t epoch, const AiT& model, bool improved, const SafeTensors& train_state);

private:
  std::string dir_;
  std::unique_ptr<FileLock> lock_;
  bool created_ = false, committed_ = false;
  int64_t generation_ = 0;  // NNNNNN of the committed folder (0: none)
  std::string best_;        // the best model of the latest set, to link into the next one
  std::string metrics_;     // metrics.jsonl so far, committed lines and pending ones
  std::vector<std::string> removed_;

  void remove_uncommitted_folders();
  void publish_names(const std::vector<std::string>& names, bool over_plain_files);
};

}  // namespace ait

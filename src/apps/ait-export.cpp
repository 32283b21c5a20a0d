// ait-export: checkpoints out to numpy (.npz) and to / from the authors' PyTorch naming, and
// frozen-eval logits as .npy for cross-checks. `ait-export --help` lists the commands.
#include <cstdio>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "apps/export.h"
#include "io/inflate.h"
#include "model/options.h"

namespace {

using ait::cli::kRequired;

int cmd_npz(const ait::cli::Args& a) {
  const std::string out = a.get("out");
  size_t n = ait::export_npz(a.get("checkpoint"), out);
  std::printf("%s: %zu arrays; config in %s\n", out.c_str(), n, ait::npz_config_path(out).c_str());
  return 0;
}

int cmd_authors(const ait::cli::Args& a) {
  ait::export_authors(a.get("checkpoint"), a.get("out"));
  std::printf("%s: authors' state-dict naming\n", a.get("out").c_str());
  return 0;
}

int cmd_import_authors(const ait::cli::Args& a) {
  ait::import_authors(a.get("input"), a.get("config"), a.get("out"));
  std::printf("%s: checkpoint (spec names)\n", a.get("out").c_str());
  return 0;
}

int cmd_logits(const ait::cli::Args& a) {
  int64_t n = 0, classes = 0;
  std::vector<float> l;
  try {
    l = ait::checkpoint_logits(a.get("checkpoint"), a.get("data"), a.integer("limit", 0, 0),
                               a.integer("batch-size", 64, 1, ait::TrainLimits::kMaxBatchSize), &n, &classes);
  } catch (const ait::OptionError& e) {
    a.fail(e.what());  // the batch does not fit in memory: a usage error
  }
  ait::write_file_atomic(a.get("out"), ait::npy_f32({n, classes}, l));
  std::printf("%s: logits [%lld, %lld]\n", a.get("out").c_str(), (long long)n, (long long)classes);
  return 0;
}

std::vector<ait::cli::Subcommand> export_commands() {
  const ait::cli::Option checkpoint = {"checkpoint", "CKPT", "the checkpoint to read", kRequired};
  return {
      {{"ait-export npz",
        "one float32 .npy per tensor in a .npz (spec names, memory buffers included)",
        {checkpoint, {"out", "OUT.npz", "the archive; the config goes to OUT.config.json beside it", kRequired}}},
       cmd_npz},
      {{"ait-export authors",
        "the authors' PyTorch state-dict names (tools/reference/authors_naming.md)",
        {checkpoint, {"out", "AUTHORS.safetensors", "the file to write", kRequired}}},
       cmd_authors},
      {{"ait-export import-authors",
        "a checkpoint from a file in the authors' naming",
        {{"input", "AUTHORS.safetensors", "the file in the authors' naming", kRequired},
         {"config", "CONFIG.json", "the docs/spec.md §1 keys (default: the file's 'config' metadata)"},
         {"out", "CKPT", "the checkpoint to write", kRequired}}},
       cmd_import_authors},
      {{"ait-export logits",
        "frozen-memory eval logits [N, classes] as .npy, normalised as ait eval does",
        {checkpoint,
         {"data", "DATA.safetensors", "the dataset", kRequired},
         {"out", "LOGITS.npy", "the array to write", kRequired},
         {"limit", "N", "only the first N rows (default 0: all)"},
         {"batch-size", "B", "images per forward pass (default 64)"}}},
       cmd_logits},
  };
}

}  // namespace

int main(int argc, char** argv) {
  static const ait::cli::Program program = {
      "ait-export", "Checkpoints to numpy and to / from the authors' PyTorch naming; logits for cross-checks.",
      export_commands(), ""};
  return ait::cli::run_program(program, ait::cli::arguments(argc, argv));
}

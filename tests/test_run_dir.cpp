// The run directory of `ait train` (src/model/run_dir.h, docs/spec.md §8), in process: the lock
// names the process holding it, leftovers of killed runs are removed, an early failure changes
// nothing of a committed run, resume checks every file against the manifest and reads the
// layout before the manifest; evaluation errors name the data file.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "io/file.h"
#include "io/inflate.h"
#include "model/run_dir.h"
#include "model/train.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;
namespace fs = std::filesystem;

namespace {

// 32 quadrant images in batches of 16: 2 steps per epoch.
TrainOptions short_run(const std::string& out, const std::string& data, int64_t epochs) {
  TrainOptions o = small_train_options(out, data);
  o.epochs = epochs;
  o.log_every = 1;
  return o;
}

// Every entry of `dir` (recursively): where links point, and each file's (links followed) size
// and CRC-32.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    const std::string rel = e.path().lexically_relative(dir).string();
    if (e.is_symlink()) out[rel + " (link)"] = fs::read_symlink(e.path()).string();
    if (e.is_regular_file()) {
      FileDigest d = digest_file(e.path().string());
      out[rel] = std::to_string(d.size) + " bytes, CRC-32 " + std::to_string(d.crc32);
    }
  }
  return out;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

// A pid that no process has: a child's, after it was reaped.
pid_t dead_pid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

}  // namespace

TEST(RunDir, SecondOpenIsRefusedNamingTheHolder) {
  const std::string dir = test_tmpdir() + "/run";
  {
    RunDir first(dir);
    std::string e = error_of([&] { RunDir second(dir); });
    EXPECT_NE(e.find("run directory " + dir + " is in use by process " + std::to_string(getpid())), std::string::npos)
        << e;
    EXPECT_NE(e.find(dir + "/lock"), std::string::npos) << e;
  }
  EXPECT_EQ(error_of([&] { RunDir again(dir); }), "(no error)");  // released with the first
}

TEST(RunDir, LeftoversOfKilledRunsAreRemoved) {
  const std::string dir = test_tmpdir(), data = write_quadrant_dataset(dir, 32, 1), run = dir + "/run";
  fs::create_directories(run + "/ckpt-000007");  // a checkpoint folder never committed
  const std::string dead = std::to_string(dead_pid()), alive = std::to_string(getppid());
  for (const std::string& name : {"model.safetensors.tmp." + dead, "current.tmp." + dead, "ckpt-000007/x.tmp." + dead,
                                  std::string("notes.tmp.txt"), "curves.svg.tmp." + alive})
    write_text(run + "/" + name, "partial");
  train(short_run(run, data, 1), cpu());
  EXPECT_FALSE(fs::exists(run + "/model.safetensors.tmp." + dead));
  EXPECT_FALSE(fs::exists(run + "/current.tmp." + dead));
  EXPECT_FALSE(fs::exists(run + "/ckpt-000007"));
  EXPECT_TRUE(fs::exists(run + "/notes.tmp.txt"));            // not a temporary of ours
  EXPECT_TRUE(fs::exists(run + "/curves.svg.tmp." + alive));  // its writer is alive
  EXPECT_EQ(fs::read_symlink(run + "/current").string(), "ckpt-000001");
}

// A run that fails before its first commit (a NaN learning rate diverges at the second step, a
// bad --set fails at once) leaves the earlier run's files as they were, byte for byte.
TEST(RunDir, EarlyFailureLeavesTheRunUntouched) {
  const std::string dir = test_tmpdir(), data = write_quadrant_dataset(dir, 32, 2), run = dir + "/run";
  train(short_run(run, data, 1), cpu());
  const auto before = snapshot(run);
  ASSERT_EQ(before.count("metrics.jsonl"), 1u);

  TrainOptions nan_lr = short_run(run, data, 1);
  nan_lr.lr = std::nanf("");
  EXPECT_NE(error_of([&] { train(nan_lr, cpu()); }), "(no error)");
  EXPECT_EQ(snapshot(run), before);

  TrainOptions bad_set = short_run(run, data, 1);
  bad_set.overrides.push_back("patch_size=5");
  EXPECT_NE(error_of([&] { train(bad_set, cpu()); }).find("patch_size"), std::string::npos);
  EXPECT_EQ(snapshot(run), before);

  // Into a directory that did not exist: it is not left behind.
  bad_set.out = dir + "/typo";
  EXPECT_NE(error_of([&] { train(bad_set, cpu()); }), "(no error)");
  EXPECT_FALSE(fs::exists(dir + "/typo"));
}

// Each epoch publishes one folder named by `current`, with a manifest of its files; the
// superseded folder is gone. Resume refuses a file changed after the commit, and a directory
// where nothing was committed.
TEST(RunDir, CommitPublishesOneSetThatResumeChecks) {
  const std::string dir = test_tmpdir(), data = write_quadrant_dataset(dir, 32, 3), run = dir + "/run";
  train(short_run(run, data, 2), cpu());
  EXPECT_EQ(fs::read_symlink(run + "/current").string(), "ckpt-000002");
  EXPECT_FALSE(fs::exists(run + "/ckpt-000001"));
  for (const char* name : {"model.safetensors", "best.safetensors", "train_state.safetensors", "metrics.jsonl"})
    EXPECT_EQ(fs::read_symlink(run + "/" + name).string(), std::string("current/") + name);
  CommittedRun c = read_committed_run(run);
  EXPECT_EQ(c.epoch, 2);
  EXPECT_EQ(c.model, run + "/ckpt-000002/model.safetensors");
  EXPECT_EQ(std::count(c.metrics.begin(), c.metrics.end(), '\n'), 6);  // 2 step lines + 1 epoch line, twice

  std::vector<uint8_t> state = read_file(c.train_state);
  state[state.size() / 2] ^= 1;
  fs::remove(c.train_state);
  std::ofstream(c.train_state, std::ios::binary).write(reinterpret_cast<const char*>(state.data()), state.size());
  TrainOptions resume = short_run(run, data, 3);
  resume.resume = run;
  std::string e = error_of([&] { train(resume, cpu()); });
  EXPECT_NE(e.find(c.train_state + ": "), std::string::npos) << e;
  EXPECT_NE(e.find("CRC-32"), std::string::npos) << e;

  resume.resume = resume.out = dir + "/empty";
  fs::create_directories(resume.out);
  e = error_of([&] { train(resume, cpu()); });
  EXPECT_NE(e.find(resume.out + ": no committed checkpoint"), std::string::npos) << e;
}

// A run directory of the layout before the manifest (plain files, metrics.jsonl with lines of
// an epoch that was never checkpointed) resumes from its train_state's epoch, and ends as a
// run never stopped; the plain files become the published links.
TEST(RunDir, OlderLayoutResumes) {
  const std::string dir = test_tmpdir(), data = write_quadrant_dataset(dir, 32, 4);
  train(short_run(dir + "/straight", data, 2), cpu());
  TrainOptions first = short_run(dir + "/new", data, 2);
  first.stop_after_epochs = 1;
  train(first, cpu());
  const std::string old = dir + "/old";
  fs::create_directories(old);
  for (const char* name : {"model.safetensors", "best.safetensors", "train_state.safetensors", "metrics.jsonl"})
    fs::copy_file(dir + "/new/" + name, old + "/" + name);  // the links' targets, as plain files
  std::ofstream(old + "/metrics.jsonl", std::ios::app) << "{\"kind\":\"step\",\"epoch\":2,\"step\":3,\"loss\":9}\n";
  CommittedRun c = read_committed_run(old);
  EXPECT_EQ(c.epoch, 1);
  EXPECT_EQ(c.metrics, read_committed_run(dir + "/new").metrics);  // the epoch-2 line is dropped

  TrainOptions rest = short_run(old, data, 2);
  rest.resume = old;
  train(rest, cpu());
  EXPECT_EQ(fs::read_symlink(old + "/model.safetensors").string(), "current/model.safetensors");
  expect_same_tensors(dir + "/straight/model.safetensors", old + "/model.safetensors");
  expect_same_tensors(dir + "/straight/train_state.safetensors", old + "/train_state.safetensors");
  expect_same_metrics(dir + "/straight", old);
}

// evaluate() names the data file it was given, not the dataset's free-text source.
TEST(TrainEval, ErrorNamesTheDataFile) {
  const std::string dir = test_tmpdir(), path = dir + "/eight.safetensors";
  Dataset ds = quadrant_dataset(4, 5);  // source "quadrant test task"
  ds.width = ds.height = 8;
  ds.images.resize(4 * 64);
  save_dataset(path, ds);
  Config c = micro_config(0);
  c.image_height = c.image_width = 12;
  AiT model(c, cpu(), 1);
  std::string e = error_of([&] { evaluate(model, load_dataset(path), 4, MemoryEval::Frozen); });
  EXPECT_EQ(e.rfind(path + ": images are 1x8x8 but the model expects 1x12x12", 0), 0u) << e;
}

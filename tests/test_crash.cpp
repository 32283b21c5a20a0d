// Crash consistency of `ait train --out DIR` (docs/spec.md §8), with the `ait` binary as a child
// process: killed with SIGKILL before each disk operation of its checkpoints (AIT_TEST_KILL_AT),
// a run resumed from what it left ends with the bytes of a run never killed; two trains into
// one directory cannot both run; a dead run's lock does not block the next.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "io/inflate.h"
#include "io/json.h"
#include "model/run_dir.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;
namespace fs = std::filesystem;

namespace {

// The kill hook is for the children this file starts, never for the test binary itself (it
// reads the variable once, at its first disk step).
const bool g_kill_hook_cleared = [] {
  unsetenv("AIT_TEST_KILL_AT");
  return true;
}();

// Runs `env ait args` through the shell, capturing its output.
ProgramRun run_ait(const std::string& env, const std::string& args) { return run_built_program("ait", args, env); }

// A micro AiT on 24 quadrant images in batches of 8: 3 steps per epoch, a step line each.
std::string run_args(const std::string& data, const std::string& out, int epochs) {
  return "train --data " + data + " --out " + out + " --epochs " + std::to_string(epochs) +
         " --batch-size 8 --seed 3 --lr 3e-3 --log-every 1 --device cpu --set dim=8 --set heads=2 --set head_dim=4"
         " --set mlp_dim=16 --set memory_slots=3 --set memory_dim=4 --set memory_heads=2 --set bottleneck=6"
         " --set patch_size=4 --set depth=1";
}

std::vector<uint8_t> bytes_of(const std::string& path) {
  return fs::exists(path) ? read_file(path) : std::vector<uint8_t>{};
}

// metrics.jsonl without the timings (which differ from run to run), one string per line.
std::vector<std::string> metrics_without_timings(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream f(path);
  for (std::string line; std::getline(f, line);) {
    Json j = Json::parse(line, path), kept = Json::object();
    for (const auto& [key, value] : j.as_object())
      if (key != "images_per_s" && key != "seconds") kept.set(key, value);
    out.push_back(kept.dump());
  }
  return out;
}

// The lines of `all` up to and including the epoch line of `epoch`.
std::vector<std::string> lines_through_epoch(const std::vector<std::string>& all, int64_t epoch) {
  std::vector<std::string> out;
  for (const std::string& l : all) {
    Json j = Json::parse(l);
    if (j.at("epoch").as_int() > epoch) break;
    out.push_back(l);
  }
  return out;
}

// The text after "killed before " in a killed run's output: the operation it did not reach.
std::string killed_before(const std::string& output) {
  size_t at = output.find("killed before ");
  return at == std::string::npos ? "?" : output.substr(at + 14, output.find('\n', at) - at - 14);
}

// A run directory holds one committed set and nothing else: no temporaries, no second folder.
void expect_only_the_committed_set(const std::string& dir, const std::string& context) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  const std::string folder = fs::read_symlink(dir + "/current").string();
  std::vector<std::string> want = {
      "best.safetensors", folder, "current", "lock", "metrics.jsonl", "model.safetensors", "train_state.safetensors"};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(names, want) << context;
}

// Starts `ait args...` as a child process with its output discarded; returns its pid.
pid_t spawn_ait(const std::vector<std::string>& args) {
  const std::string binary = std::string(AIT_BINARY_DIR) + "/ait";
  std::vector<char*> argv = {const_cast<char*>(binary.c_str())};
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    FILE* null = std::freopen("/dev/null", "w", stdout);
    if (null) std::freopen("/dev/null", "w", stderr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

}  // namespace

// For every N from 1 to the number of disk operations of a 2-epoch run, the run is killed just
// before its N-th, then continued (--resume when a checkpoint was committed, else started
// again): model, best model, training state and metrics (timings aside) end byte for byte as
// a run never killed; what the kill left was always one consistent committed set (or none),
// and the continued run leaves no temporaries or stale folders.
TEST(Crash, KilledBeforeEachDiskStepResumesToTheSameBits) {
  const std::string dir = test_tmpdir(), data = write_quadrant_dataset(dir, 24, 11), straight = dir + "/straight";
  ProgramRun s = run_ait("", run_args(data, straight, 2));
  ASSERT_EQ(s.exit_code, 0) << s.output;
  const std::vector<std::string> want_metrics = metrics_without_timings(straight + "/metrics.jsonl");
  ASSERT_EQ(want_metrics.size(), 8u);  // 3 step lines and an epoch line per epoch
  int points = 0;
  for (int n = 1; n <= 200 && !points; ++n) {
    const std::string run = fresh_tmpdir("killed");
    ProgramRun k = run_ait("AIT_TEST_KILL_AT=" + std::to_string(n), run_args(data, run, 2));
    if (!k.killed) {
      ASSERT_EQ(k.exit_code, 0) << k.output;
      points = n - 1;
      break;
    }
    const std::string where = "killed at " + std::to_string(n) + " before " + killed_before(k.output);
    const bool committed = fs::is_symlink(run + "/current");
    if (committed) {
      CommittedRun c = read_committed_run(run);  // throws when a file does not match the manifest
      for (const char* f : {"/model.safetensors", "/best.safetensors", "/train_state.safetensors"})
        EXPECT_EQ(bytes_of(run + f), bytes_of(c.folder + f)) << where << ": " << f;
      EXPECT_EQ(metrics_without_timings(run + "/metrics.jsonl"), lines_through_epoch(want_metrics, c.epoch)) << where;
    } else {
      EXPECT_FALSE(fs::exists(run + "/model.safetensors")) << where;
      ProgramRun r = run_ait("", run_args(data, run, 2) + " --resume " + run);
      EXPECT_EQ(r.exit_code, 1) << where << "\n" << r.output;
      EXPECT_NE(r.output.find(run + ": no committed checkpoint"), std::string::npos) << where << "\n" << r.output;
    }
    ProgramRun r = run_ait("", run_args(data, run, 2) + (committed ? " --resume " + run : ""));
    ASSERT_EQ(r.exit_code, 0) << where << "\n" << r.output;
    for (const char* f : {"/model.safetensors", "/best.safetensors", "/train_state.safetensors"})
      EXPECT_EQ(bytes_of(run + f), bytes_of(straight + f)) << where << ": " << f;
    EXPECT_EQ(metrics_without_timings(run + "/metrics.jsonl"), want_metrics) << where;
    expect_only_the_committed_set(run, where);
  }
  // Two commits: the first also publishes the four names, the second removes the first folder.
  EXPECT_GE(points, 30) << "AIT_TEST_KILL_AT stopped the run at too few points";
  std::printf("[ crash    ] killed and resumed at each of %d disk steps of a 2-epoch run\n", points);
}

// A second `ait train` into a directory another one is training into stops at once, naming
// that process; once the first is dead (killed: no clean-up of its own), the directory is free.
TEST(Crash, SecondTrainIntoOneDirectoryIsRefused) {
  const std::string dir = test_tmpdir(), data = write_quadrant_dataset(dir, 24, 12), run = dir + "/run";
  const pid_t first = spawn_ait(split(run_args(data, run, 100000)));
  ASSERT_GT(first, 0);
  const std::string pid = std::to_string(static_cast<long long>(first));
  bool locked = false;
  for (int i = 0; i < 600 && !locked; ++i) {  // up to 30 s for the first to start
    std::ifstream f(run + "/lock");
    std::string text;
    locked = std::getline(f, text) && text == pid;
    if (!locked) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ProgramRun second = run_ait("", run_args(data, run, 1));
  kill(first, SIGKILL);
  int status = 0;
  waitpid(first, &status, 0);
  ASSERT_TRUE(locked) << "the first train never wrote its pid into " << run << "/lock";
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_NE(second.output.find("run directory " + run + " is in use by process " + pid), std::string::npos)
      << second.output;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the first train ended before it was killed";

  ProgramRun third = run_ait("", run_args(data, run, 1));
  EXPECT_EQ(third.exit_code, 0) << third.output;
  EXPECT_EQ(read_committed_run(run).epoch, 1);
}

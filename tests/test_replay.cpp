// Recorded training steps (Kernels::begin_capture / replay) on the Vulkan backend: a run that
// replays its steps gives bit for bit the losses, weights and optimizer state of one that does
// not, an epoch's smaller last batch runs as usual, and a program never outlives the buffers it
// uses. The validation layer (AIT_VK_VALIDATION=1) must stay quiet throughout.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/json.h"
#include "io/safetensors.h"
#include "testutil.h"
#include "model/train.h"
#ifdef AIT_VULKAN
#include "vulkan/vk_kernels.h"
#endif

using namespace ait;
using namespace ait::test;
namespace fs = std::filesystem;

#ifdef AIT_VULKAN
namespace {

TrainOptions tiny_run(const std::string& dir, const std::string& data) {
  TrainOptions o = small_train_options(dir, data);
  o.log_every = 1;  // every step's running loss goes to metrics.jsonl
  o.augment = true;
  return o;
}

std::vector<Json> read_metrics(const std::string& dir) {
  std::ifstream f(dir + "/metrics.jsonl");
  std::vector<Json> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(Json::parse(l));
  return lines;
}

// Trains with AIT_VK_REPLAY=replay; returns the number of program runs (recordings + replays).
uint64_t train_with(const TrainOptions& o, Kernels& vk, bool replay) {
  const char* old = std::getenv("AIT_VK_REPLAY");
  std::string saved = old ? old : "";
  setenv("AIT_VK_REPLAY", replay ? "1" : "0", 1);
  auto& v = dynamic_cast<VulkanKernels&>(vk);
  uint64_t before = v.program_runs();
  train(o, vk);
  if (old)
    setenv("AIT_VK_REPLAY", saved.c_str(), 1);
  else
    unsetenv("AIT_VK_REPLAY");
  EXPECT_FALSE(vk.can_replay()) << "the program outlived the run";
  return v.program_runs() - before;
}

// Trains `epochs` epochs on `images` quadrant images with replay off and on: off runs no
// program, on runs `program_runs` (the recording's run and the replays), and both runs end
// with the same metrics (timings aside), checkpoint and optimizer state, bit for bit.
// Returns the folder holding the runs ("off" and "on").
std::string expect_same_run(Kernels& vk, const std::string& name, int64_t images, uint64_t seed, int64_t epochs,
                            uint64_t program_runs) {
  std::string dir = fresh_tmpdir(name);
  std::string data = write_quadrant_dataset(dir, images, seed);
  TrainOptions off = tiny_run(dir + "/off", data), on = tiny_run(dir + "/on", data);
  off.epochs = on.epochs = epochs;
  EXPECT_EQ(train_with(off, vk, false), 0u);
  EXPECT_EQ(train_with(on, vk, true), program_runs);
  expect_same_metrics(dir + "/off", dir + "/on");
  for (const char* file : {"/model.safetensors", "/train_state.safetensors"})
    expect_same_tensors(dir + "/off" + file, dir + "/on" + file);
  test::expect_no_validation_messages();
  return dir;
}

// Mean seconds per training step over the epochs after the first (the recording is in epoch 1).
double seconds_per_step(const std::string& dir, int64_t steps_per_epoch) {
  double s = 0;
  int epochs = 0;
  for (const Json& j : read_metrics(dir))
    if (j.at("kind").as_string() == "epoch" && j.at("epoch").as_number() > 1) s += j.at("seconds").as_number(), ++epochs;
  return epochs ? s / (epochs * steps_per_epoch) : 0;
}

}  // namespace

// 5 epochs of 4 full batches: step 1 runs as usual, step 2 is recorded, steps 3..20 replay.
TEST(ReplayTest, SameLossesAndWeightsAsWithout) {
  Kernels* vk = test::vulkan_device();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  std::string dir = expect_same_run(*vk, "same", 64, 7, 5, 20u - 1u);  // the recording's run and 18 replays
  // A regression record, not a benchmark (on lavapipe the "device" is the same CPU).
  std::printf("[ replay   ] tiny config, batch 16, lavapipe: %.2f ms/step without replay, %.2f ms/step with\n",
              1e3 * seconds_per_step(dir + "/off", 4), 1e3 * seconds_per_step(dir + "/on", 4));
}

// 40 images in batches of 16: every epoch ends with a batch of 8, which runs as usual while the
// program (recorded at size 16) waits for the next epoch's full batches.
TEST(ReplayTest, SmallerLastBatchRunsAsUsual) {
  Kernels* vk = test::vulkan_device();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  // Epoch 1: 16 as usual, 16 recorded, 8 as usual; epochs 2 and 3: 16 and 16 replayed, 8 as usual.
  expect_same_run(*vk, "last", 40, 8, 3, 5u);
}

// The program's rules at the op level: the recorded work runs once at end_capture, replays
// take new per-step arguments, a host read during the recording keeps nothing (but the work is
// done), and freeing a buffer the program uses drops it.
TEST(ReplayTest, ProgramRules) {
  Kernels* vk = test::vulkan_device();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  const int64_t n = 1000;
  std::vector<float> xs = test::random_values(n, 1), gs = test::random_values(n, 2);
  auto args = [](float lr, int t) {
    return AdamWArgs{lr, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f - std::pow(0.9f, float(t)), 1.0f - std::pow(0.999f, float(t))};
  };
  // Reference: three plain (unrecorded) steps of dropout(g) -> y, AdamW with y as gradient.
  auto step = [&](Kernels& d, Tensor& p, Tensor& m, Tensor& v, const Tensor& g, Tensor& y, Tensor& mask, uint32_t seed,
                  const AdamWArgs& a) {
    d.dropout(g.buf(), y.buf(), mask.buf(), n, 0.25f, seed);
    d.adamw(p.buf(), y.buf(), m.buf(), v.buf(), n, a);
  };
  std::vector<std::vector<float>> want;
  {
    Tensor p = Tensor::from({n}, xs, vk), m = Tensor::zeros({n}, vk), v = Tensor::zeros({n}, vk);
    Tensor g = Tensor::from({n}, gs, vk), y = Tensor::empty({n}, vk), mask = Tensor::empty({n}, vk);
    for (int t = 1; t <= 3; ++t) {
      step(*vk, p, m, v, g, y, mask, 100u + t, args(1e-2f * t, t));
      want.push_back(p.to_vector());
    }
  }
  Tensor p = Tensor::from({n}, xs, vk), m = Tensor::zeros({n}, vk), v = Tensor::zeros({n}, vk), g = Tensor::from({n}, gs, vk);
  Tensor y = Tensor::empty({n}, vk), mask = Tensor::empty({n}, vk);
  ASSERT_TRUE(vk->begin_capture());
  step(*vk, p, m, v, g, y, mask, 101u, args(1e-2f, 1));
  StepArgs got;
  ASSERT_TRUE(vk->end_capture(&got));
  EXPECT_EQ(got.dropout_seeds, std::vector<uint32_t>{101u});
  EXPECT_EQ(got.adamw.lr, 1e-2f);
  EXPECT_EQ(p.to_vector(), want[0]);
  for (int t = 2; t <= 3; ++t) {
    ASSERT_TRUE(vk->can_replay());
    vk->replay({args(1e-2f * t, t), {100u + static_cast<uint32_t>(t)}});
    EXPECT_EQ(p.to_vector(), want[t - 1]) << "replay " << t;
  }
  EXPECT_THROW(vk->replay({args(1e-2f, 1), {}}), Error);  // one dropout seed per recorded call
  y = Tensor();  // the program's gradient buffer (ordinary pool): freeing it drops the program
  EXPECT_FALSE(vk->can_replay());

  // A host read in the middle: nothing is kept, everything is computed.
  Tensor q = Tensor::from({n}, xs, vk), r = Tensor::empty({n}, vk), rm = Tensor::empty({n}, vk);
  ASSERT_TRUE(vk->begin_capture());
  vk->dropout(q.buf(), r.buf(), rm.buf(), n, 0.5f, 7u);
  std::vector<float> seen = r.to_vector();
  vk->axpby(r.buf(), q.buf(), n, 1.0f, 1.0f);
  EXPECT_FALSE(vk->end_capture(&got));
  EXPECT_FALSE(vk->can_replay());
  Tensor qc = Tensor::from({n}, xs, vk), rc = Tensor::empty({n}, vk), rmc = Tensor::empty({n}, vk);
  vk->dropout(qc.buf(), rc.buf(), rmc.buf(), n, 0.5f, 7u);
  EXPECT_EQ(seen, rc.to_vector());
  vk->axpby(rc.buf(), qc.buf(), n, 1.0f, 1.0f);
  EXPECT_EQ(r.to_vector(), rc.to_vector());

  // drop_capture() during a recording (an error mid-step): the work so far runs, nothing is kept.
  ASSERT_TRUE(vk->begin_capture());
  vk->axpby(r.buf(), q.buf(), n, 1.0f, 1.0f);
  vk->drop_capture();
  EXPECT_FALSE(vk->end_capture(nullptr));
  EXPECT_FALSE(vk->can_replay());
  vk->axpby(rc.buf(), qc.buf(), n, 1.0f, 1.0f);
  EXPECT_EQ(r.to_vector(), rc.to_vector());
  test::expect_no_validation_messages();
}
#endif  // AIT_VULKAN

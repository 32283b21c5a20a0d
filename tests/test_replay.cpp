// The Vulkan backend's cache of recorded command buffers (src/vulkan/vk_runtime.h): training and
// evaluation written as eager steps run from the cache from their third repetition on, and give
// bit for bit what recording every segment anew (replay off) gives; per-run values and uploaded
// data are never baked into a cached command buffer. The validation layer must stay quiet.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>

#include "io/json.h"
#include "io/safetensors.h"
#include "model/train.h"
#include "testutil.h"
#ifdef AIT_VULKAN
#include "vulkan/vk_kernels.h"
#endif

using namespace ait;
using namespace ait::test;

#ifdef AIT_VULKAN
namespace {

VulkanKernels* vulkan_or_null() { return dynamic_cast<VulkanKernels*>(test::vulkan_device()); }

// The tiny run's model for a quadrant dataset.
Config quadrant_config(const Dataset& ds) {
  TrainOptions o = small_train_options("", "");
  Config c = Config::preset(o.model);
  c.channels = ds.channels, c.image_height = ds.height, c.image_width = ds.width;
  c.num_classes = static_cast<int64_t>(ds.classes.size());
  for (const std::string& kv : o.overrides) c.set(kv.substr(0, kv.find('=')), kv.substr(kv.find('=') + 1));
  c.validate();
  return c;
}

// Runs fn with the cache on or off; returns how many segments came from the cache.
uint64_t replays_during(VulkanKernels& vk, bool replay, const std::function<void()>& fn) {
  vk.set_replay(replay);
  uint64_t before = vk.replays();
  try {
    fn();
  } catch (...) {
    vk.set_replay(true);
    throw;
  }
  vk.set_replay(true);
  return vk.replays() - before;
}

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

// Mean seconds per training step over the epochs after the first.
double seconds_per_step(const std::string& dir, int64_t steps_per_epoch) {
  double s = 0;
  int epochs = 0;
  for (const Json& j : read_metrics(dir))
    if (j.at("kind").as_string() == "epoch" && j.at("epoch").as_number() > 1)
      s += j.at("seconds").as_number(), ++epochs;
  return epochs ? s / (epochs * steps_per_epoch) : 0;
}

// Trains `epochs` epochs on `images` quadrant images with the cache off and on: both runs end
// with the same metrics (timings aside), checkpoint and optimizer state, bit for bit; off
// replays nothing, on replays at least `min_replays` segments. Returns the folder of the runs.
std::string expect_same_run(VulkanKernels& vk, const std::string& dir, int64_t images, uint64_t seed, int64_t epochs,
                            uint64_t min_replays) {
  std::string data = write_quadrant_dataset(dir, images, seed);
  TrainOptions off = tiny_run(dir + "/off", data), on = tiny_run(dir + "/on", data);
  off.epochs = on.epochs = epochs;
  EXPECT_EQ(replays_during(vk, false, [&] { train(off, vk); }), 0u);
  EXPECT_GE(replays_during(vk, true, [&] { train(on, vk); }), min_replays);
  expect_same_metrics(dir + "/off", dir + "/on");
  for (const char* file : {"/model.safetensors", "/train_state.safetensors"})
    expect_same_tensors(dir + "/off" + file, dir + "/on" + file);
  test::expect_no_validation_messages();
  return dir;
}

}  // namespace

// 5 epochs of 4 full batches of 16 (and an evaluation per epoch): each training step is at least
// one segment, and from the third step on they come from the cache.
TEST(ReplayTest, SameLossesAndWeightsAsWithout) {
  VulkanKernels* vk = vulkan_or_null();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  std::string dir = expect_same_run(*vk, test_tmpdir(), 64, 7, 5, 20 - 3);
  // A regression record, not a benchmark (on lavapipe the "device" is the same CPU).
  std::printf("[ replay   ] tiny config, batch 16, lavapipe: %.2f ms/step without the cache, %.2f ms/step with\n",
              1e3 * seconds_per_step(dir + "/off", 4), 1e3 * seconds_per_step(dir + "/on", 4));
}

// 40 images in batches of 16: every epoch ends with a batch of 8, whose segments differ from
// the full batches'; both kinds stay cached side by side.
TEST(ReplayTest, SmallerLastBatchRunsAsUsual) {
  VulkanKernels* vk = vulkan_or_null();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  expect_same_run(*vk, test_tmpdir(), 40, 8, 3, 3);
}

// Evaluation (frozen and updating memory) replays too, and gives the same bits as without.
TEST(ReplayTest, EvaluationReplaysBitIdentically) {
  VulkanKernels* vk = vulkan_or_null();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  Dataset ds = quadrant_dataset(70, 3);  // batches of 16: four full ones and one of 6
  for (MemoryEval mode : {MemoryEval::Frozen, MemoryEval::Update}) {
    AiT off_model(quadrant_config(ds), *vk, 5), on_model(quadrant_config(ds), *vk, 5);
    EvalResult off, on;
    EXPECT_EQ(replays_during(*vk, false, [&] { off = evaluate(off_model, ds, 16, mode); }), 0u);
    EXPECT_GE(replays_during(*vk, true, [&] { on = evaluate(on_model, ds, 16, mode); }), 2u);
    EXPECT_EQ(off.correct, on.correct);
    EXPECT_EQ(off.confusion, on.confusion);
    EXPECT_EQ(off.ce, on.ce);  // bit for bit
    for (size_t i = 0; i < off_model.memory().size(); ++i)
      EXPECT_EQ(off_model.memory()[i].to_vector(), on_model.memory()[i].to_vector()) << "memory of layer " << i;
  }
  test::expect_no_validation_messages();
}

// At the op level: a repeated sequence of dropout and AdamW with new seeds, learning rates and
// uploaded gradients each time replays from the cache and matches the same sequence run with
// the cache off, so none of those values is baked into a cached command buffer.
TEST(ReplayTest, PerRunValuesAndUploadsAreNotBakedIn) {
  VulkanKernels* vk = vulkan_or_null();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  const int64_t n = 1000;
  auto args = [](float lr, int t) {
    return AdamWArgs{
        lr, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f - std::pow(0.9f, float(t)), 1.0f - std::pow(0.999f, float(t))};
  };
  auto run = [&](bool replay, uint64_t* replays) {
    std::vector<std::vector<float>> out;
    *replays = replays_during(*vk, replay, [&] {
      Tensor p = Tensor::from({n}, random_values(n, 1), vk), m = Tensor::zeros({n}, vk), v = Tensor::zeros({n}, vk);
      Tensor g = Tensor::zeros({n}, vk), y = Tensor::empty({n}, vk), mask = Tensor::empty({n}, vk);
      for (int t = 1; t <= 6; ++t) {
        g.copy_from(random_values(n, 100 + t));
        vk->dropout(g.buf(), y.buf(), mask.buf(), n, 0.25f, 1000u + t);
        vk->adamw(p.buf(), y.buf(), m.buf(), v.buf(), n, args(1e-2f * t, t));
        out.push_back(p.to_vector());
      }
    });
    return out;
  };
  uint64_t off_replays = 0, on_replays = 0;
  std::vector<std::vector<float>> off = run(false, &off_replays), on = run(true, &on_replays);
  EXPECT_EQ(off_replays, 0u);
  EXPECT_GE(on_replays, 4u);  // steps 2..6 have identical commands
  ASSERT_EQ(off.size(), on.size());
  for (size_t t = 0; t < off.size(); ++t) EXPECT_EQ(off[t], on[t]) << "step " << t + 1;
  for (size_t t = 1; t < off.size(); ++t) EXPECT_NE(off[t], off[t - 1]) << "the steps must differ";
  test::expect_no_validation_messages();
}

#endif  // AIT_VULKAN

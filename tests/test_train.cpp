// Training loop and command-line behaviour: resume is bit-identical, runs are reproducible,
// and every bad input stops with one message naming the file, tensor or option, a non-zero
// exit code, and no partial output file.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cpu/threadpool.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/train.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;
namespace fs = std::filesystem;

namespace {

TrainOptions small_run(const std::string& dir, const std::string& data) {
  TrainOptions o = small_train_options(dir, data);
  o.epochs = 3;
  o.log_every = 1000;
  return o;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream f(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(f, l);) lines.push_back(l);
  return lines;
}

}  // namespace

TEST(Train, LearnsAndResumesBitIdentically) {
  std::string dir = fresh_tmpdir("resume");
  std::string data = write_quadrant_dataset(dir, 96, 1);

  TrainOptions straight = small_run(dir + "/straight", data);
  double acc = train(straight, cpu());
  EXPECT_GT(acc, 0.5);  // 4 classes: chance is 0.25

  TrainOptions first = small_run(dir + "/split", data);
  first.stop_after_epochs = 1;  // interrupted after epoch 1 of 3; the schedule still spans 3
  train(first, cpu());
  TrainOptions rest = small_run(dir + "/split", data);
  rest.resume = dir + "/split";
  train(rest, cpu());

  expect_same_tensors(dir + "/straight/model.safetensors", dir + "/split/model.safetensors");
  expect_same_metrics(dir + "/straight", dir + "/split");  // logged losses identical too
}

TEST(Train, SameSeedSameThreadsSameBits) {
  std::string dir = fresh_tmpdir("repro");
  std::string data = write_quadrant_dataset(dir, 48, 2);
  TrainOptions o1 = small_run(dir + "/one", data), o2 = small_run(dir + "/two", data);
  o1.epochs = o2.epochs = 1;
  train(o1, cpu());
  train(o2, cpu());
  expect_same_tensors(dir + "/one/model.safetensors", dir + "/two/model.safetensors");
}

TEST(Cli, BadInputGivesOneClearError) {
  std::string dir = fresh_tmpdir("cli");
  std::string data = dir + "/quadrant.safetensors";
  Dataset ds = quadrant_dataset(16, 3);
  save_dataset(data, ds);
  std::string out;

  // A model whose patch size does not divide the images.
  EXPECT_EQ(run_program("ait", "train --data " + data + " --set patch_size=5 --out " + dir + "/r1 --device cpu", &out),
            1);
  EXPECT_NE(out.find("patch_size"), std::string::npos) << out;

  // A label outside the model's classes (the dataset reader rejects it first, naming the file).
  SafeTensors st = dataset_to_safetensors(ds);
  st.metadata["classes"] = "[\"a\",\"b\",\"c\"]";
  write_safetensors(dir + "/badlabel.safetensors", st);
  EXPECT_EQ(run_program("ait", "train --data " + dir + "/badlabel.safetensors --out " + dir + "/r2 --device cpu", &out),
            1);
  EXPECT_NE(out.find("badlabel.safetensors"), std::string::npos) << out;
  EXPECT_NE(out.find("label"), std::string::npos) << out;

  // Truncated checkpoint: the header claims more bytes than the file has.
  ASSERT_EQ(
      run_program(
          "ait",
          "train --data " + data +
              " --set dim=16 --set heads=2 --set head_dim=8 --set mlp_dim=32 --set bottleneck=16 --epochs 1 --out " +
              dir + "/r3 --device cpu",
          &out),
      0)
      << out;
  std::string ckpt = dir + "/r3/model.safetensors";
  auto size = fs::file_size(ckpt);
  fs::copy_file(ckpt, dir + "/trunc.safetensors");
  fs::resize_file(dir + "/trunc.safetensors", size / 2);
  EXPECT_EQ(
      run_program("ait", "eval --checkpoint " + dir + "/trunc.safetensors --data " + data + " --device cpu", &out), 1);
  EXPECT_NE(out.find("trunc.safetensors"), std::string::npos) << out;

  // A checkpoint whose images do not fit the data.
  Dataset wide = quadrant_dataset(4, 4);
  wide.width = 8, wide.height = 8;
  wide.images.resize(4 * 64);
  save_dataset(dir + "/small.safetensors", wide);
  EXPECT_EQ(
      run_program("ait", "eval --checkpoint " + ckpt + " --data " + dir + "/small.safetensors --device cpu", &out), 1);
  EXPECT_NE(out.find("model expects 1x12x12"), std::string::npos) << out;

  // Good eval works and prints accuracy + confusion matrix.
  EXPECT_EQ(run_program("ait", "eval --checkpoint " + ckpt + " --data " + data + " --device cpu", &out), 0) << out;
  EXPECT_NE(out.find("confusion matrix"), std::string::npos);

  // Unknown options and missing required ones name the option (usage errors: status 2).
  EXPECT_EQ(run_program("ait", "eval --checkpoint " + ckpt + " --data " + data + " --bogus 1", &out), 2);
  EXPECT_NE(out.find("--bogus"), std::string::npos);
  EXPECT_EQ(run_program("ait", "dump --checkpoint " + ckpt, &out), 2);
  EXPECT_NE(out.find("--batch"), std::string::npos);

  // A dump onto a missing directory fails cleanly and leaves no temporary file behind.
  SafeTensors batch;
  batch.add("images", StTensor::from_f32({1, 1, 12, 12}, std::vector<float>(144, 0.5f)));
  batch.add("labels", StTensor::from_i64({1}, {7}));
  write_safetensors(dir + "/batch.safetensors", batch);
  EXPECT_EQ(run_program("ait",
                        "dump --checkpoint " + ckpt + " --batch " + dir + "/batch.safetensors --out " + dir +
                            "/d.safetensors --device cpu",
                        &out),
            1);
  EXPECT_NE(out.find("label 7"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir + "/d.safetensors"));
  for (auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();

  // NaN in the batch is named.
  batch.tensors.clear();
  std::vector<float> px(144, 0.5f);
  px[3] = std::nanf("");
  batch.add("images", StTensor::from_f32({1, 1, 12, 12}, px));
  batch.add("labels", StTensor::from_i64({1}, {1}));
  write_safetensors(dir + "/nan.safetensors", batch);
  EXPECT_EQ(run_program("ait",
                        "dump --checkpoint " + ckpt + " --batch " + dir + "/nan.safetensors --out " + dir +
                            "/d.safetensors --device cpu",
                        &out),
            1);
  EXPECT_NE(out.find("NaN"), std::string::npos) << out;
}

TEST(Train, DivergenceStopsWithTheStep) {
  std::string dir = fresh_tmpdir("nan");
  std::string data = write_quadrant_dataset(dir, 32, 6);
  TrainOptions o = small_run(dir + "/run", data);
  o.lr = 1e30f;
  o.warmup = 0;
  try {
    train(o, cpu());
    FAIL() << "expected divergence";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at step"), std::string::npos) << e.what();
  }
}

// `ait train --device vulkan` follows the CPU run: same batches, same dropout masks, same top-k
// selections, so the logged losses agree to float rounding (1e-3 relative over 2 epochs).
TEST(Train, VulkanLossesMatchCpu) {
  Kernels* vk = test::vulkan_device();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  std::string dir = fresh_tmpdir("vulkan");
  std::string data = write_quadrant_dataset(dir, 64, 7);
  TrainOptions oc = small_run(dir + "/cpu", data), ov = small_run(dir + "/vk", data);
  oc.epochs = ov.epochs = 2;
  oc.log_every = ov.log_every = 1;
  train(oc, cpu());
  train(ov, *vk);
  auto lc = read_lines(dir + "/cpu/metrics.jsonl"), lv = read_lines(dir + "/vk/metrics.jsonl");
  ASSERT_EQ(lc.size(), lv.size());
  int steps = 0;
  double first = 0, last = 0;
  for (size_t i = 0; i < lc.size(); ++i) {
    Json jc = Json::parse(lc[i]), jv = Json::parse(lv[i]);
    double a = jc.at("loss").as_number(), b = jv.at("loss").as_number();
    EXPECT_LE(rel_error(b, a), 1e-3) << "line " << i << ": " << b << " against " << a;
    if (jc.at("kind").as_string() == "step") {
      if (!steps++) first = a;
      last = a;
    }
  }
  EXPECT_GE(steps, 8);
  EXPECT_LT(last, first);  // the running loss goes down
  test::expect_no_validation_messages();
  // And `ait eval --device vulkan` on the Vulkan-trained checkpoint agrees with the CPU.
  AiT mc = AiT::load(dir + "/vk/model.safetensors", cpu()), mv = AiT::load(dir + "/vk/model.safetensors", *vk);
  Dataset ds = load_dataset(data);
  EvalResult ec = evaluate(mc, ds, 32, MemoryEval::Frozen), ev = evaluate(mv, ds, 32, MemoryEval::Frozen);
  EXPECT_EQ(ec.correct, ev.correct);
  EXPECT_LE(rel_error(ev.ce, ec.ce), 1e-4) << ev.ce << " against " << ec.ce;
  test::expect_no_validation_messages();
}

// Augmentation: a random shift of up to 4 pixels with zero padding (the 4-pixel-padded random
// crop) and a horizontal flip, drawn from the given Rng in that order; pixels are normalised
// with the dataset's mean/std. Checked against a direct implementation of that description.
TEST(Train, AugmentationIsPaddedCropAndFlip) {
  Dataset ds;
  ds.n = 1, ds.channels = 2, ds.height = 5, ds.width = 7;
  for (int i = 0; i < 2 * 5 * 7; ++i) ds.images.push_back(static_cast<uint8_t>(3 * i + 1));
  ds.labels = {0};
  ds.classes = {"only"};
  ds.mean = {0.25f, 0.5f};
  ds.std = {0.5f, 0.25f};
  bool saw_flip = false, saw_noflip = false;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    Rng rng(seed), mirror(seed);
    std::vector<float> got = make_batch(ds, {0}, cpu(), true, &rng).images.to_vector();
    int dy = static_cast<int>(mirror.below(9)) - 4, dx = static_cast<int>(mirror.below(9)) - 4;
    bool flip = mirror.below(2);
    (flip ? saw_flip : saw_noflip) = true;
    for (int c = 0; c < 2; ++c)
      for (int y = 0; y < 5; ++y)
        for (int x = 0; x < 7; ++x) {
          int sy = y + dy, sx = (flip ? 6 - x : x) + dx;
          float pix = (sy >= 0 && sy < 5 && sx >= 0 && sx < 7) ? ds.images[(c * 5 + sy) * 7 + sx] / 255.0f : 0.0f;
          EXPECT_FLOAT_EQ(got[(c * 5 + y) * 7 + x], (pix - ds.mean[c]) / ds.std[c]) << seed;
        }
  }
  EXPECT_TRUE(saw_flip && saw_noflip);
  // Without augmentation the image is only normalised.
  std::vector<float> plain = make_batch(ds, {0}, cpu(), false, nullptr).images.to_vector();
  for (int i = 0; i < 70; ++i) EXPECT_FLOAT_EQ(plain[i], (ds.images[i] / 255.0f - ds.mean[i / 35]) / ds.std[i / 35]);
}

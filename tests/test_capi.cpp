// The C interface (include/ait.h): its predictions against the model's own forward pass on
// inputs normalised by hand (spec §9), memory modes, image decoding, threads, and every kind of
// bad input answered by a status and a message that names the culprit.
#include "ait.h"

#include <thread>

#include "io/image.h"
#include "io/inflate.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;

namespace {

const std::string kGolden = std::string(AIT_SOURCE_DIR) + "/tests/golden/";
const std::string kQuestionCkpt = kGolden + "tiny_question.ckpt.safetensors";  // 3x8x12, q = 5, K = 4
const std::string kSelectCkpt = kGolden + "tiny_select.ckpt.safetensors";      // 1x8x8, q = 0, K = 5

std::vector<uint8_t> random_pixels(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> v(n);
  for (uint8_t& p : v) p = uint8_t(rng.below(256));
  return v;
}

// A copy of `from` in the test's directory with `data_mean` / `data_std` set.
std::string with_normalisation(const std::string& from, const std::vector<float>& mean, const std::vector<float>& sd) {
  AiT m = AiT::load(from, *select_device("cpu"));
  m.data_mean = mean, m.data_std = sd;
  const std::string path = test_tmpdir() + "/normalised.ckpt.safetensors";
  m.save(path);
  return path;
}

// Logits of the model's forward pass on pixels normalised by hand: (v/255 - mean_c) / std_c.
std::vector<float> expected_logits(const std::string& ckpt, const std::vector<uint8_t>& pixels,
                                   const std::vector<float>& questions, int64_t batch, const std::vector<float>& mean,
                                   const std::vector<float>& sd) {
  AiT m = AiT::load(ckpt, *select_device("cpu"));
  const Config& c = m.config();
  const int64_t plane = c.image_height * c.image_width;
  std::vector<float> x(pixels.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t ch = (i / size_t(plane)) % size_t(c.channels);
    x[i] = (pixels[i] / 255.0f - mean[ch]) / sd[ch];
  }
  NoGradScope no_grad;
  Tensor images = Tensor::from({batch, c.channels, c.image_height, c.image_width}, x, &m.device());
  Tensor q = c.question_dim ? Tensor::from({batch, c.question_dim}, questions, &m.device()) : Tensor();
  return m.forward(images, q, {}, false, false, 0).logits.to_vector();
}

// An open handle, closed at the end of the scope.
struct Handle {
  explicit Handle(const std::string& ckpt, const char* device = "cpu") {
    EXPECT_EQ(ait_open(ckpt.c_str(), device, &model), AIT_OK) << ait_last_error();
  }
  ~Handle() { ait_close(model); }
  ait_model* model = nullptr;
};

}  // namespace

TEST(CApi, HeaderIsStrictC99) {
  if (std::system("cc --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "no C compiler (cc) on PATH";
  const std::string dir = test_tmpdir();
  std::ofstream(dir + "/use.c") << "#include <ait.h>\nint main(void) { ait_model* m = 0; ait_config c;\n"
                                   "  (void)c; return ait_open(\"x\", \"cpu\", &m) == AIT_OK; }\n";
  const std::string cmd = "cc -std=c99 -pedantic-errors -Wall -Wextra -Werror -I" + std::string(AIT_SOURCE_DIR) +
                          "/include -c " + dir + "/use.c -o " + dir + "/use.o 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(CApi, VersionIsTheHeaders) { EXPECT_STREQ(ait_version(), AIT_VERSION_STRING); }

TEST(CApi, ConfigOfACheckpoint) {
  Handle h(kQuestionCkpt);
  ait_config c{};
  ASSERT_EQ(ait_get_config(h.model, &c), AIT_OK);
  EXPECT_EQ(c.channels, 3);
  EXPECT_EQ(c.height, 8);
  EXPECT_EQ(c.width, 12);
  EXPECT_EQ(c.question_dim, 5);
  EXPECT_EQ(c.num_classes, 4);
  EXPECT_EQ(c.has_normalisation, 0);
}

// Without data_mean / data_std: pixels / 255 as they are. With questions, an odd batch.
TEST(CApi, PredictEqualsTheForwardPassWithoutNormalisation) {
  const int B = 3;
  const std::vector<uint8_t> px = random_pixels(size_t(B) * 3 * 8 * 12, 1);
  const std::vector<float> q = random_values(B * 5, 2);
  const std::vector<float> want = expected_logits(kQuestionCkpt, px, q, B, {0, 0, 0}, {1, 1, 1});
  Handle h(kQuestionCkpt);
  std::vector<float> logits(size_t(B) * 4);
  std::vector<int> classes(B, -1);
  ASSERT_EQ(ait_predict(h.model, B, px.data(), px.size(), q.data(), q.size(), logits.data(), logits.size(),
                        classes.data(), classes.size()),
            AIT_OK)
      << ait_last_error();
  EXPECT_LE(rel_error(logits, want), 1e-6);
  for (int i = 0; i < B; ++i) EXPECT_EQ(classes[size_t(i)], predicted_class(want, i, 4)) << "image " << i;
}

// Three channels with different statistics: the patch embedding's input LayerNorm mixes them,
// so a per-channel normalisation changes the logits (with one channel it would cancel out).
TEST(CApi, PredictUsesTheCheckpointsNormalisation) {
  const std::vector<float> mean = {0.1f, 0.5f, 0.9f}, sd = {0.2f, 1.5f, 0.7f};
  const std::string ckpt = with_normalisation(kQuestionCkpt, mean, sd);
  const int B = 5;
  const std::vector<uint8_t> px = random_pixels(size_t(B) * 3 * 8 * 12, 3);
  const std::vector<float> q = random_values(B * 5, 4);
  const std::vector<float> want = expected_logits(ckpt, px, q, B, mean, sd);
  Handle h(ckpt);
  ait_config c{};
  ASSERT_EQ(ait_get_config(h.model, &c), AIT_OK);
  EXPECT_EQ(c.has_normalisation, 1);
  std::vector<float> logits(size_t(B) * 4);
  ASSERT_EQ(ait_predict(h.model, B, px.data(), px.size(), q.data(), q.size(), logits.data(), logits.size(), nullptr, 0),
            AIT_OK)
      << ait_last_error();
  EXPECT_LE(rel_error(logits, want), 1e-6);
  // Far from the unnormalised answer: the normalisation really was applied.
  EXPECT_GT(rel_error(logits, expected_logits(ckpt, px, q, B, {0, 0, 0}, {1, 1, 1})), 1e-3);
}

// Frozen memory gives the same logits every time; updating memory gives, batch after batch,
// what the model's own write-and-commit passes give.
TEST(CApi, MemoryModes) {
  const int B = 2;
  const std::vector<uint8_t> px = random_pixels(size_t(B) * 64, 4);
  auto run = [&](ait_model* m) {
    std::vector<float> l(size_t(B) * 5);
    EXPECT_EQ(ait_predict(m, B, px.data(), px.size(), nullptr, 0, l.data(), l.size(), nullptr, 0), AIT_OK)
        << ait_last_error();
    return l;
  };
  Handle h(kSelectCkpt);
  const std::vector<float> frozen = run(h.model);
  EXPECT_EQ(run(h.model), frozen);
  ASSERT_EQ(ait_set_memory_mode(h.model, AIT_MEMORY_UPDATE), AIT_OK);
  const std::vector<float> first = run(h.model), second = run(h.model);
  EXPECT_GT(rel_error(second, first), 1e-7);  // the first pass changed the memory

  AiT m = AiT::load(kSelectCkpt, *select_device("cpu"));
  std::vector<float> x(px.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = px[i] / 255.0f;
  NoGradScope no_grad;
  const Tensor images = Tensor::from({B, 1, 8, 8}, x, &m.device());
  for (const std::vector<float>* got : {&first, &second}) {
    const ForwardResult f = m.forward(images, {}, {}, true, false, 0);
    m.commit_memory(f);
    EXPECT_LE(rel_error(*got, f.logits.to_vector()), 1e-6) << (got == &first ? "first" : "second") << " pass";
  }
}

// The Vulkan backend (lavapipe in CI) through the C interface: the CPU's logits within float
// rounding, and the same classes.
TEST(CApi, PredictOnVulkan) {
  if (!vulkan_device()) return;
  const int B = 3;
  const std::vector<uint8_t> px = random_pixels(size_t(B) * 3 * 8 * 12, 11);
  const std::vector<float> q = random_values(B * 5, 12);
  const std::vector<float> want = expected_logits(kQuestionCkpt, px, q, B, {0, 0, 0}, {1, 1, 1});
  Handle h(kQuestionCkpt, "vulkan");
  ASSERT_NE(h.model, nullptr);
  std::vector<float> logits(size_t(B) * 4);
  ASSERT_EQ(ait_predict(h.model, B, px.data(), px.size(), q.data(), q.size(), logits.data(), logits.size(), nullptr, 0),
            AIT_OK)
      << ait_last_error();
  EXPECT_LE(rel_error(logits, want), 1e-5);
  expect_no_validation_messages();
}

// Handles on several threads at once give what one thread alone gives.
TEST(CApi, HandlesOnSeveralThreads) {
  const int B = 4, kThreads = 3;
  const std::vector<uint8_t> px = random_pixels(size_t(B) * 64, 5);
  const std::vector<float> want = expected_logits(kSelectCkpt, px, {}, B, {0}, {1});
  std::vector<std::vector<float>> got(kThreads, std::vector<float>(size_t(B) * 5));
  std::vector<int> status(kThreads, -1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      ait_model* m = nullptr;
      status[size_t(t)] = ait_open(kSelectCkpt.c_str(), "cpu", &m);
      for (int rep = 0; rep < 3 && status[size_t(t)] == AIT_OK; ++rep)
        status[size_t(t)] = ait_predict(m, B, px.data(), px.size(), nullptr, 0, got[size_t(t)].data(),
                                        got[size_t(t)].size(), nullptr, 0);
      ait_close(m);
    });
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(status[size_t(t)], AIT_OK) << "thread " << t;
    EXPECT_LE(rel_error(got[size_t(t)], want), 1e-6) << "thread " << t;
  }
}

TEST(CApi, ReadImagePngAndPgm) {
  const int H = 3, W = 5;
  const std::vector<uint8_t> grey = random_pixels(H * W, 6), rgb = random_pixels(H * W * 3, 7);
  const std::string dir = test_tmpdir();
  write_file_atomic(dir + "/g.png", encode_png(grey.data(), W, H, 1));
  write_file_atomic(dir + "/c.image", encode_png(rgb.data(), W, H, 3));  // PNG by content, not name
  const std::string header = "P5\n5 3\n255\n";
  std::vector<uint8_t> pgm(header.begin(), header.end());
  pgm.insert(pgm.end(), grey.begin(), grey.end());
  write_file_atomic(dir + "/g.pgm", pgm);

  std::vector<uint8_t> out(size_t(3 * H * W));
  ASSERT_EQ(ait_read_image((dir + "/c.image").c_str(), 3, H, W, out.data(), out.size()), AIT_OK) << ait_last_error();
  for (int c = 0; c < 3; ++c)
    for (int p = 0; p < H * W; ++p) ASSERT_EQ(out[size_t(c * H * W + p)], rgb[size_t(p * 3 + c)]) << c << " " << p;
  for (const char* name : {"/g.png", "/g.pgm"}) {  // grey into three channels: repeated
    ASSERT_EQ(ait_read_image((dir + name).c_str(), 3, H, W, out.data(), out.size()), AIT_OK) << ait_last_error();
    for (int c = 0; c < 3; ++c)
      EXPECT_TRUE(std::equal(grey.begin(), grey.end(), out.begin() + c * H * W)) << name << " channel " << c;
    ASSERT_EQ(ait_read_image((dir + name).c_str(), 1, H, W, out.data(), size_t(H * W)), AIT_OK) << ait_last_error();
    EXPECT_TRUE(std::equal(grey.begin(), grey.end(), out.begin())) << name;
  }
}

// ------------------------------------------------------------------------------------------
// Bad input: a status and a message naming the file, tensor or argument; never a crash.

namespace {

// Expects `status` to be `want` with a message containing every one of `parts`.
void expect_error(ait_status status, ait_status want, const std::vector<std::string>& parts) {
  EXPECT_EQ(status, want) << ait_last_error();
  const std::string msg = ait_last_error();
  for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

}  // namespace

TEST(CApiBadInput, NullPointers) {
  ait_model* m = reinterpret_cast<ait_model*>(1);
  expect_error(ait_open(nullptr, "cpu", &m), AIT_ERROR_ARGUMENT, {"ait_open", "checkpoint is NULL"});
  EXPECT_EQ(m, nullptr);
  expect_error(ait_open(kSelectCkpt.c_str(), nullptr, &m), AIT_ERROR_ARGUMENT, {"device is NULL"});
  expect_error(ait_open(kSelectCkpt.c_str(), "cpu", nullptr), AIT_ERROR_ARGUMENT, {"model"});
  ait_config c;
  expect_error(ait_get_config(nullptr, &c), AIT_ERROR_ARGUMENT, {"ait_get_config", "model is NULL"});
  expect_error(ait_set_memory_mode(nullptr, AIT_MEMORY_UPDATE), AIT_ERROR_ARGUMENT, {"model is NULL"});
  float l[5];
  const uint8_t px[64] = {};
  expect_error(ait_predict(nullptr, 1, px, 64, nullptr, 0, l, 5, nullptr, 0), AIT_ERROR_ARGUMENT, {"model is NULL"});
  uint8_t out[4];
  expect_error(ait_read_image(nullptr, 1, 2, 2, out, 4), AIT_ERROR_ARGUMENT, {"path is NULL"});
  expect_error(ait_read_image("x.pgm", 1, 2, 2, nullptr, 4), AIT_ERROR_ARGUMENT, {"chw is NULL"});
  ait_close(nullptr);  // allowed, does nothing

  Handle h(kSelectCkpt);
  expect_error(ait_get_config(h.model, nullptr), AIT_ERROR_ARGUMENT, {"config is NULL"});
  expect_error(ait_predict(h.model, 1, nullptr, 64, nullptr, 0, l, 5, nullptr, 0), AIT_ERROR_ARGUMENT,
               {"images is NULL"});
  expect_error(ait_predict(h.model, 1, px, 64, nullptr, 0, nullptr, 0, nullptr, 0), AIT_ERROR_ARGUMENT,
               {"logits and classes are both NULL"});
}

TEST(CApiBadInput, WrongSizesAndValues) {
  Handle q(kQuestionCkpt), h(kSelectCkpt);
  const std::vector<uint8_t> px = random_pixels(2 * 64, 8), qpx = random_pixels(2 * 3 * 8 * 12, 9);
  std::vector<float> questions(10, 0.5f), l(10);
  std::vector<int> cls(2);
  expect_error(ait_predict(h.model, 2, px.data(), px.size() - 1, nullptr, 0, l.data(), 10, nullptr, 0),
               AIT_ERROR_ARGUMENT, {"images_size is 127", "128"});
  expect_error(ait_predict(h.model, 2, px.data(), px.size(), nullptr, 0, l.data(), 9, nullptr, 0), AIT_ERROR_ARGUMENT,
               {"logits_size is 9", "10"});
  expect_error(ait_predict(h.model, 2, px.data(), px.size(), nullptr, 0, nullptr, 0, cls.data(), 3), AIT_ERROR_ARGUMENT,
               {"classes_size is 3"});
  expect_error(ait_predict(h.model, 0, px.data(), 0, nullptr, 0, l.data(), 0, nullptr, 0), AIT_ERROR_ARGUMENT,
               {"batch 0"});
  expect_error(ait_predict(h.model, -3, px.data(), px.size(), nullptr, 0, l.data(), 10, nullptr, 0), AIT_ERROR_ARGUMENT,
               {"batch -3"});
  expect_error(ait_predict(h.model, 2, px.data(), px.size(), questions.data(), 10, l.data(), 10, nullptr, 0),
               AIT_ERROR_ARGUMENT, {"the model takes none"});
  expect_error(ait_predict(q.model, 2, qpx.data(), qpx.size(), nullptr, 0, l.data(), 8, nullptr, 0), AIT_ERROR_ARGUMENT,
               {"questions is NULL", "5 per image"});
  expect_error(ait_predict(q.model, 2, qpx.data(), qpx.size(), questions.data(), 9, l.data(), 8, nullptr, 0),
               AIT_ERROR_ARGUMENT, {"questions_size is 9", "10"});
  questions[7] = std::nanf("");
  expect_error(ait_predict(q.model, 2, qpx.data(), qpx.size(), questions.data(), 10, l.data(), 8, nullptr, 0),
               AIT_ERROR_ARGUMENT, {"questions[7] is not finite"});
  expect_error(ait_set_memory_mode(h.model, static_cast<ait_memory_mode>(7)), AIT_ERROR_ARGUMENT, {"mode 7"});
}

TEST(CApiBadInput, Checkpoints) {
  const std::string dir = test_tmpdir();
  SafeTensors st = read_safetensors(kSelectCkpt);
  st.metadata["version"] = "2";
  write_safetensors(dir + "/newer.safetensors", st);
  ait_model* m = nullptr;
  expect_error(ait_open((dir + "/newer.safetensors").c_str(), "cpu", &m), AIT_ERROR_VERSION,
               {dir + "/newer.safetensors", "version 2 is newer"});
  EXPECT_EQ(m, nullptr);

  expect_error(ait_open((dir + "/absent.safetensors").c_str(), "cpu", &m), AIT_ERROR_FILE, {"absent.safetensors"});
  std::vector<uint8_t> bytes = read_file(kSelectCkpt);
  bytes.resize(bytes.size() / 2);
  write_file_atomic(dir + "/truncated.safetensors", bytes);
  expect_error(ait_open((dir + "/truncated.safetensors").c_str(), "cpu", &m), AIT_ERROR_FILE,
               {"truncated.safetensors"});
  st.metadata["version"] = "1";
  st.tensors.erase("head.proj.bias");
  write_safetensors(dir + "/missing.safetensors", st);
  expect_error(ait_open((dir + "/missing.safetensors").c_str(), "cpu", &m), AIT_ERROR_FILE,
               {"missing.safetensors", "head.proj.bias"});
  EXPECT_EQ(m, nullptr);
}

TEST(CApiBadInput, Devices) {
  ait_model* m = nullptr;
  expect_error(ait_open(kSelectCkpt.c_str(), "gpu", &m), AIT_ERROR_DEVICE, {"device 'gpu'", "unknown device"});
  expect_error(ait_open(kSelectCkpt.c_str(), "vulkan:99", &m), AIT_ERROR_DEVICE, {"device 'vulkan:99'"});
  EXPECT_EQ(m, nullptr);
}

TEST(CApiBadInput, Images) {
  const std::string dir = test_tmpdir();
  const std::vector<uint8_t> rgb = random_pixels(4 * 6 * 3, 10);
  write_file_atomic(dir + "/c.png", encode_png(rgb.data(), 6, 4, 3));
  write_file_atomic(dir + "/junk.pgm", std::vector<uint8_t>{'P', '5', '\n', 'x'});
  std::vector<uint8_t> out(4 * 6 * 3);
  expect_error(ait_read_image((dir + "/c.png").c_str(), 3, 6, 4, out.data(), out.size()), AIT_ERROR_SHAPE,
               {"c.png", "3x4x6", "expected 3x6x4"});
  expect_error(ait_read_image((dir + "/c.png").c_str(), 1, 4, 6, out.data(), 24), AIT_ERROR_SHAPE,
               {"c.png", "expected 1x4x6"});
  expect_error(ait_read_image((dir + "/c.png").c_str(), 3, 4, 6, out.data(), 71), AIT_ERROR_ARGUMENT,
               {"chw_size is 71", "72"});
  expect_error(ait_read_image((dir + "/c.png").c_str(), 2, 4, 6, out.data(), 48), AIT_ERROR_ARGUMENT, {"channels 2"});
  expect_error(ait_read_image((dir + "/junk.pgm").c_str(), 1, 4, 6, out.data(), 24), AIT_ERROR_FILE, {"junk.pgm"});
  expect_error(ait_read_image((dir + "/none.png").c_str(), 1, 4, 6, out.data(), 24), AIT_ERROR_FILE, {"none.png"});
}

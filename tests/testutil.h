// Shared test helpers: seeded random tensors, a finite-difference gradient check, error
// messages, the Vulkan test device, temporary directories, and small datasets, models and
// training runs.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/rng.h"
#include "io/dataset.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "model/train.h"
#include "vulkan/device.h"

namespace ait::test {

// One run of a program of this build (`AIT_BINARY_DIR/program args`, through the shell, with
// `env` assignments before it): its exit status (-1 when it did not exit), whether SIGKILL stopped
// it, and its stdout and stderr together.
struct ProgramRun {
  int exit_code = -1;
  bool killed = false;
  std::string output;
};
inline ProgramRun run_built_program(const std::string& program, const std::string& args, const std::string& env = "") {
  const std::string cmd = env + " " + std::string(AIT_BINARY_DIR) + "/" + program + " " + args + " 2>&1";
  ProgramRun r;
  FILE* p = popen(cmd.c_str(), "r");
  char buf[512];
  while (p && fgets(buf, sizeof buf, p)) r.output += buf;
  const int status = p ? pclose(p) : -1;
  // A shell that does not exec its last command reports a signal as 128 + its number.
  r.killed = (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) || (WIFEXITED(status) && WEXITSTATUS(status) == 137);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}
// The same, for tests that want the status and the output apart.
inline int run_program(const std::string& program, const std::string& args, std::string* output) {
  ProgramRun r = run_built_program(program, args);
  if (output) *output = r.output;
  return r.exit_code;
}

inline std::vector<float> random_values(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform(lo, hi);
  return v;
}

inline Tensor random_tensor(const Shape& s, uint64_t seed, float lo = -1.0f, float hi = 1.0f, Kernels* dev = nullptr) {
  return Tensor::from(s, random_values(numel(s), seed, lo, hi), dev);
}

// The suite's one relative-error metric, for every comparison of numbers against an expectation:
//
//   rel_error(got, want, floor) = ‖got − want‖₂ / max(‖want‖₂, floor)
//
// summed in double over all elements (normwise, so one tiny element does not dominate), `want`
// being the reference. The floor stands in for ‖want‖₂ where the reference can cancel to near
// 0 while the computation's rounding scales with larger terms (a sum, a mean); callers say what
// they pass. Equal vectors give 0 (whatever the floor); sizes that differ, and a NaN anywhere,
// give infinity or NaN (so EXPECT_LE fails).
template <class A, class B>
double rel_error(const std::vector<A>& got, const std::vector<B>& want, double floor = 1e-30) {
  if (got.size() != want.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    double d = double(got[i]) - double(want[i]);
    num += d * d;
    den += double(want[i]) * double(want[i]);
  }
  if (num == 0) return 0;
  return std::sqrt(num) / std::max(std::sqrt(den), floor);
}
// The same metric for one number: |got − want| / max(|want|, floor).
inline double rel_error(double got, double want, double floor = 1e-30) {
  return rel_error(std::vector<double>{got}, std::vector<double>{want}, floor);
}

// The message of the ait::Error that fn throws, or "(no error)".
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Finite-difference check of every input's gradient.
// The scalar is L = Σ_i f(inputs)_i · w_i with fixed random weights w, evaluated in double on
// the host; central differences with step h·max(1, |x|). Metric: ‖g_analytic − g_numeric‖₂ /
// max(‖g_numeric‖₂, 1e-6) over the checked entries, which must be ≤ tol. Float32 forward
// passes put rounding noise of about 1e-7·Σ|f|/h into each difference, and smooth ops have
// truncation error O(h²): h = 1e-2 balances the two; the default tol is 3e-3.
// At most `max_entries` entries per input are perturbed (a seeded subset) to keep tests fast.
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                      double tol = 3e-3, float h = 1e-2f, int max_entries = 48, uint64_t seed = 7) {
  for (Tensor& t : inputs) t.set_requires_grad(true).zero_grad();
  Tensor out = f(inputs);
  std::vector<float> w = random_values(out.numel(), seed + 1000);
  auto loss_of = [&](const Tensor& o) {
    std::vector<float> v = o.to_vector();
    double s = 0;
    for (size_t i = 0; i < v.size(); ++i) s += double(v[i]) * w[i];
    return s;
  };
  out.backward(Tensor::from(out.shape(), w, &out.dev()));
  Rng pick(seed);
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    std::vector<float> analytic = x.grad().defined() ? x.grad().to_vector() : std::vector<float>(x.numel(), 0.0f);
    std::vector<float> base = x.to_vector();
    std::vector<int64_t> idx;
    if (x.numel() <= max_entries)
      for (int64_t i = 0; i < x.numel(); ++i) idx.push_back(i);
    else
      for (int i = 0; i < max_entries; ++i) idx.push_back(static_cast<int64_t>(pick.below(x.numel())));
    std::vector<float> a, n;
    NoGradScope no_grad;
    for (int64_t i : idx) {
      float step = h * std::max(1.0f, std::fabs(base[i]));
      std::vector<float> v = base;
      v[i] = base[i] + step;
      x.copy_from(v);
      double lp = loss_of(f(inputs));
      v[i] = base[i] - step;
      x.copy_from(v);
      double lm = loss_of(f(inputs));
      n.push_back(static_cast<float>((lp - lm) / (2.0 * step)));
      a.push_back(analytic[i]);
    }
    x.copy_from(base);
    double err = rel_error(a, n, 1e-6);
    EXPECT_LE(err, tol) << "input " << k << " shape " << shape_str(x.shape()) << ": gradient error " << err;
  }
}

// The Khronos validation layer (with synchronization validation) is on for the whole test
// binary unless AIT_VK_VALIDATION says otherwise; it must be asked for before the first Vulkan
// instance, hence at static initialisation.
inline const bool g_vk_validation_default = [] {
  setenv("AIT_VK_VALIDATION", "1", /*overwrite=*/0);
  return true;
}();

// The Vulkan device for a test, with validation messages cleared. A missing device fails the
// test (CI has lavapipe) unless AIT_SKIP_VULKAN_TESTS=1, which skips it.
inline Kernels* vulkan_device() {
  try {
    Kernels* k = select_device("vulkan");
    vk_clear_validation_messages();
    return k;
  } catch (const Error& e) {
    const char* skip = std::getenv("AIT_SKIP_VULKAN_TESTS");
    if (skip && std::string(skip) == "1") return nullptr;
    ADD_FAILURE() << "no Vulkan device: " << e.what() << " (AIT_SKIP_VULKAN_TESTS=1 skips the Vulkan tests)";
    return nullptr;
  }
}

inline void expect_no_validation_messages() {
  auto msgs = vk_validation_messages();
  std::string all;
  for (size_t i = 0; i < msgs.size() && i < 10; ++i) all += "\n  " + msgs[i];
  EXPECT_EQ(msgs.size(), 0u) << "validation layer messages:" << all;
  vk_clear_validation_messages();
}

// "Suite_Test" of the running test ("suite" outside one).
inline std::string current_test_label() {
  const ::testing::TestInfo* t = ::testing::UnitTest::GetInstance()->current_test_info();
  return t ? std::string(t->test_suite_name()) + "_" + t->name() : "suite";
}

// A directory of its own under $TMPDIR (else /tmp), named after the test and made by mkdtemp
// (unique per process and test, and no clash with another user's leftovers), removed with
// everything in it when the object goes, also when the test failed or threw.
class ScopedTempDir {
public:
  explicit ScopedTempDir(const std::string& label = current_test_label()) {
    const char* env = std::getenv("TMPDIR");
    std::string base = env && *env ? env : "/tmp";
    std::string name = "ait_";
    for (char c : label.substr(0, 60)) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    std::string tmpl = base + "/" + name + "_XXXXXX";
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    path_ = tmpl;
  }
  ~ScopedTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec) std::fprintf(stderr, "could not remove %s: %s\n", path_.c_str(), ec.message().c_str());
  }
  ScopedTempDir(const ScopedTempDir&) = delete;
  ScopedTempDir& operator=(const ScopedTempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  // Names of the entries in the directory, sorted.
  std::vector<std::string> list() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

private:
  std::string path_;
};

// The running test's own temporary directory: made on first use, named after the test, and
// removed by a listener when the test ends (pass, failure or exception alike).
class TestTempDirCleaner : public ::testing::EmptyTestEventListener {
public:
  static std::unique_ptr<ScopedTempDir>& current() {
    static std::unique_ptr<ScopedTempDir> dir;
    return dir;
  }
  void OnTestEnd(const ::testing::TestInfo&) override { current().reset(); }
  void OnTestProgramEnd(const ::testing::UnitTest&) override { current().reset(); }
};
inline const bool g_test_temp_dir_cleaner = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new TestTempDirCleaner);
  return true;
}();

inline const std::string& test_tmpdir() {
  std::unique_ptr<ScopedTempDir>& dir = TestTempDirCleaner::current();
  if (!dir) dir = std::make_unique<ScopedTempDir>();
  return dir->path();
}

// An empty directory `name` inside the running test's temporary directory (emptied again when
// called twice with one name).
inline std::string fresh_tmpdir(const std::string& name) {
  std::filesystem::path p = std::filesystem::path(test_tmpdir()) / name;
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p.string();
}

// A small learnable task: class = which quadrant holds the bright square, 12x12 grey images.
inline Dataset quadrant_dataset(int64_t n, uint64_t seed) {
  Dataset ds;
  ds.n = n, ds.channels = 1, ds.height = 12, ds.width = 12;
  ds.images.assign(n * 144, 0);
  Rng rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    int32_t q = static_cast<int32_t>(rng.below(4));
    ds.labels.push_back(q);
    int y0 = (q / 2) * 6 + static_cast<int>(rng.below(3)), x0 = (q % 2) * 6 + static_cast<int>(rng.below(3));
    for (int y = 0; y < 3; ++y)
      for (int x = 0; x < 3; ++x) ds.images[i * 144 + (y0 + y) * 12 + x0 + x] = 255;
    for (int p = 0; p < 144; ++p)
      ds.images[i * 144 + p] =
          static_cast<uint8_t>(std::min(255u, ds.images[i * 144 + p] + static_cast<unsigned>(rng.below(40))));
  }
  ds.classes = {"top-left", "top-right", "bottom-left", "bottom-right"};
  ds.source = "quadrant test task";
  compute_channel_stats(ds);
  return ds;
}

// A model small enough for finite differences: 8x8 grey images, or 8x12 RGB with a q-feature
// question token; top-k really selects (k = 5 of B·T tokens).
inline Config micro_config(int64_t q) {
  Config c;
  c.channels = q ? 3 : 1;
  c.image_height = 8;
  c.image_width = q ? 12 : 8;
  c.patch_size = 4;
  c.question_dim = q;
  c.dim = 12, c.depth = 2, c.heads = 2, c.head_dim = 4, c.mlp_dim = 16, c.num_classes = 5;
  c.memory_slots = 3, c.memory_dim = 4, c.memory_heads = 2, c.bottleneck = 5;
  c.write_dropout = 0;
  return c;
}

// A seeded batch for a model of config c: images uniform in [-2, 2], questions in [-1, 1] (only
// when c has a question token), labels (i · label_stride + seed) mod num_classes.
struct ModelInputs {
  Tensor images, questions, labels;
};
inline ModelInputs random_inputs(const Config& c, int64_t B, uint64_t seed, int64_t label_stride = 3) {
  ModelInputs b;
  b.images = random_tensor({B, c.channels, c.image_height, c.image_width}, seed, -2, 2);
  if (c.question_dim) b.questions = random_tensor({B, c.question_dim}, seed + 1);
  std::vector<int32_t> labels(static_cast<size_t>(B));
  for (int64_t i = 0; i < B; ++i)
    labels[static_cast<size_t>(i)] = static_cast<int32_t>((i * label_stride + seed) % c.num_classes);
  b.labels = Tensor::from_int({B}, labels);
  return b;
}

// A 12x12 grey model for the quadrant task (micro_config(0) with 4 classes), initialised with
// `seed` and saved as dir/model.safetensors; returns that path.
inline std::string write_quadrant_checkpoint(const std::string& dir, uint64_t seed) {
  Config c = micro_config(0);
  c.image_height = c.image_width = 12, c.num_classes = 4;
  const std::string path = dir + "/model.safetensors";
  AiT(c, cpu(), seed).save(path);
  return path;
}

// The short training run of the Train and Replay tests: a tiny AiT (16-wide, 2 heads, 4 memory
// slots) on `data`, batches of 16, seed 5, writing to `out`.
inline TrainOptions small_train_options(const std::string& out, const std::string& data) {
  TrainOptions o;
  o.data = data;
  o.val = data;
  o.model = "tiny";
  o.overrides = {"dim=16",       "heads=2",        "head_dim=8",    "mlp_dim=32",   "memory_slots=4",
                 "memory_dim=8", "memory_heads=2", "bottleneck=20", "patch_size=4", "write_dropout=0.1"};
  o.batch_size = 16;
  o.lr = 3e-3f;
  o.seed = 5;
  o.out = out;
  return o;
}

// Saves quadrant_dataset(n, seed) as dir/quadrant.safetensors and returns that path.
inline std::string write_quadrant_dataset(const std::string& dir, int64_t n, uint64_t seed) {
  std::string path = dir + "/quadrant.safetensors";
  save_dataset(path, quadrant_dataset(n, seed));
  return path;
}

// Two runs logged the same metrics.jsonl, bit for bit (timings aside).
inline void expect_same_metrics(const std::string& dir_a, const std::string& dir_b) {
  auto read = [](const std::string& dir) {
    std::ifstream f(dir + "/metrics.jsonl");
    std::vector<Json> lines;
    for (std::string l; std::getline(f, l);) lines.push_back(Json::parse(l));
    return lines;
  };
  std::vector<Json> a = read(dir_a), b = read(dir_b);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty()) << dir_a << "/metrics.jsonl";
  for (size_t i = 0; i < a.size(); ++i)
    for (const char* key : {"loss", "ce", "balance", "accuracy", "lr", "val_ce", "val_accuracy"})
      if (a[i].has(key)) {
        EXPECT_EQ(a[i].at(key).as_number(), b[i].at(key).as_number()) << key << " in line " << i;
      }
}

// Two safetensors files hold the same tensors, byte for byte.
inline void expect_same_tensors(const std::string& path_a, const std::string& path_b) {
  SafeTensors a = read_safetensors(path_a), b = read_safetensors(path_b);
  ASSERT_EQ(a.tensors.size(), b.tensors.size()) << path_a;
  for (auto& [name, t] : a.tensors) EXPECT_EQ(t.bytes, b.get(name).bytes) << path_a << " " << name;
}

}  // namespace ait::test

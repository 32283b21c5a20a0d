// ait-bench: performance sections.
//
//   ait-bench            run every section
//   ait-bench gemm       run only the named section(s): gemm, train, vulkan
//   --precision fp32|mixed   the precision asked for (default fp32); each section prints the one
//                            it measures, which is fp32 on every device today (docs/gpu.md)
//
// `train` and `vulkan` time whole training steps and eval passes in child processes
// (`ait-bench --child ...`), so that each measurement's peak memory is its own, and alternate
// ours with the PyTorch reference so that machine drift cancels.
//
// Each section is a `void bench_xxx()` registered in kSections below; add new ones there.
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "core/ops.h"
#include "core/rng.h"
#include "cpu/gemm.h"
#include "cpu/threadpool.h"
#include "io/json.h"
#include "model/model.h"
#include "model/options.h"
#include "model/train.h"
#include "vulkan/device.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

ait::Precision g_precision = ait::Precision::Fp32;  // --precision

// The precision a section measures on `device`, with the reason when it is not the one asked for.
void print_precision(ait::Kernels& device) {
  std::string note;
  const ait::Precision p = ait::resolve_precision(device, g_precision, &note);
  std::printf("precision: %s%s%s\n", ait::precision_name(p), note.empty() ? "" : " (",
              note.empty() ? "" : (note + ")").c_str());
}

// ------------------------------------------------------------------------------------------
// OpenBLAS, opened at run time only: it is a comparison point, never a build dependency.
// ------------------------------------------------------------------------------------------
struct OpenBlas {
  // cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)
  using SgemmFn = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                           int);
  using SetThreadsFn = void (*)(int);
  using CorenameFn = char* (*)();
  SgemmFn sgemm = nullptr;
  SetThreadsFn set_threads = nullptr;
  CorenameFn corename = nullptr;

  bool load() {
    // The environment of this machine pins OpenBLAS to a narrower core type and a small L2,
    // which roughly halves its speed. OpenBLAS reads these when the library is loaded, so
    // clear them (in this process only) before dlopen to compare against its best.
    for (const char* var : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}) {
      const char* v = std::getenv(var);
      std::printf("note: unsetenv(%s) in this process before loading OpenBLAS (was %s%s%s)\n", var, v ? "\"" : "",
                  v ? v : "not set", v ? "\"" : "");
      unsetenv(var);
    }
    void* h = nullptr;
    for (const char* name : {"libopenblas.so.0", "libopenblas.so"})
      if ((h = dlopen(name, RTLD_NOW | RTLD_LOCAL))) break;
    if (!h) return false;
    sgemm = reinterpret_cast<SgemmFn>(dlsym(h, "cblas_sgemm"));
    set_threads = reinterpret_cast<SetThreadsFn>(dlsym(h, "openblas_set_num_threads"));
    corename = reinterpret_cast<CorenameFn>(dlsym(h, "openblas_get_corename"));
    return sgemm && set_threads;
  }
};

// ------------------------------------------------------------------------------------------
// GEMM: ours vs OpenBLAS on the transformer's shapes (d_model 768, 4096 tokens).
// ------------------------------------------------------------------------------------------
struct GemmShape {
  const char* what;
  bool ta, tb;
  int M, N, K;
};

void bench_gemm() {
  std::printf("== gemm (row-major C[M,N] = op(A)[M,K] * op(B)[K,N]) ==\n");
  OpenBlas ob;
  const bool have_ob = ob.load();
  if (!have_ob) std::printf("OpenBLAS not found (apt-get install libopenblas0) — ours only\n");
  else if (ob.corename) std::printf("OpenBLAS core: %s\n", ob.corename());
  print_precision(ait::cpu());

  const GemmShape shapes[] = {
      {"qkv    X[4096x768]*W[768x2304]", false, false, 4096, 2304, 768},
      {"mlp1   X[4096x768]*W[768x3072]", false, false, 4096, 3072, 768},
      {"mlp2   X[4096x3072]*W[3072x768]", false, false, 4096, 768, 3072},
      {"dX     dY[4096x2304]*W[2304x768]", false, false, 4096, 768, 2304},
      {"dW     dY^T[2304x4096]*X[4096x768]", true, false, 2304, 768, 4096},
      {"linear X[4096x768]*W^T (W 3072x768)", false, true, 4096, 3072, 768},
  };
  const int thread_counts[] = {1, 2};
  const int default_threads = ait::num_threads();
  constexpr int kReps = 8;  // timed runs per config; the best is kept

  std::printf("%-38s %9s %9s %9s %9s %8s\n", "shape (GFLOP/s)", "ours@1", "ours@2", "oblas@1", "oblas@2", "ratio@2");
  const auto t_section = Clock::now();
  for (const GemmShape& s : shapes) {
    const int64_t a_rows = s.ta ? s.K : s.M, a_cols = s.ta ? s.M : s.K;
    const int64_t b_rows = s.tb ? s.N : s.K, b_cols = s.tb ? s.K : s.N;
    std::vector<float> A(a_rows * a_cols), B(b_rows * b_cols), C(int64_t(s.M) * s.N);
    ait::Rng rng(42);
    for (float& x : A) x = rng.uniform(-1.0f, 1.0f);
    for (float& x : B) x = rng.uniform(-1.0f, 1.0f);
    const double flops = 2.0 * s.M * s.N * s.K;

    auto ours = [&] {
      ait::sgemm(s.ta, s.tb, s.M, s.N, s.K, 1.0f, A.data(), a_cols, B.data(), b_cols, 0.0f, C.data(), s.N);
    };
    auto theirs = [&] {
      // CblasRowMajor = 101, CblasNoTrans = 111, CblasTrans = 112.
      ob.sgemm(101, s.ta ? 112 : 111, s.tb ? 112 : 111, s.M, s.N, s.K, 1.0f, A.data(), int(a_cols), B.data(),
               int(b_cols), 0.0f, C.data(), s.N);
    };
    // Per thread count: warm-up (page faults, thread start-up, packing buffers), then timed
    // runs alternating ours / OpenBLAS (and which goes first) so that slow drift of the shared
    // machine hits both alike. The thread count stays fixed meanwhile: switching it rebuilds
    // the pool, whose fresh threads would have to fault in new packing buffers.
    double best_ours[2] = {1e30, 1e30}, best_ob[2] = {1e30, 1e30};
    for (int ti = 0; ti < 2; ++ti) {
      ait::set_num_threads(thread_counts[ti]);
      if (have_ob) ob.set_threads(thread_counts[ti]);
      ours();
      if (have_ob) theirs();
      for (int r = 0; r < kReps; ++r) {
        for (int turn = 0; turn < 2; ++turn) {
          const bool run_ours = (turn == 0) == (r % 2 == 0);
          if (!run_ours && !have_ob) continue;
          const auto t0 = Clock::now();
          run_ours ? ours() : theirs();
          double& best = run_ours ? best_ours[ti] : best_ob[ti];
          best = std::min(best, seconds_since(t0));
        }
      }
    }
    auto gf = [&](double t) { return flops / t * 1e-9; };
    if (have_ob)
      std::printf("%-38s %9.1f %9.1f %9.1f %9.1f %8.2f\n", s.what, gf(best_ours[0]), gf(best_ours[1]), gf(best_ob[0]),
                  gf(best_ob[1]), best_ob[1] / best_ours[1]);
    else std::printf("%-38s %9.1f %9.1f %9s %9s %8s\n", s.what, gf(best_ours[0]), gf(best_ours[1]), "-", "-", "-");
    std::fflush(stdout);
  }
  ait::set_num_threads(default_threads);
  std::printf("(best of %d runs after warm-up; ratio = ours / OpenBLAS at 2 threads; %.1f s)\n\n", kReps,
              seconds_since(t_section));
}

// ------------------------------------------------------------------------------------------
// Model throughput: training steps (forward, backward, AdamW, memory update) and eval passes.
// ------------------------------------------------------------------------------------------
struct ModelCase {
  const char* preset;
  int64_t batch, channels, size;
};
const ModelCase kSmall{"small", 64, 3, 32}, kTiny{"tiny", 128, 1, 28};

ait::Config config_of(const ModelCase& c) {
  ait::Config cfg = ait::Config::preset(c.preset);
  cfg.channels = c.channels;
  cfg.image_height = cfg.image_width = c.size;
  cfg.num_classes = 10;
  return cfg;
}

// Runs in the child: prints one JSON line {train_images_per_s, eval_images_per_s, peak_rss_mb}.
int child_main(const std::string& preset, const std::string& device, double min_seconds, int min_steps) {
  const ModelCase& c = preset == "small" ? kSmall : kTiny;
  std::string note;
  ait::Kernels& dev = *ait::select_device(device, &note);
  ait::AiT model(config_of(c), dev, 1);
  ait::AdamW adam(model, 0.01f);
  ait::Rng rng(2);
  std::vector<float> img(c.batch * c.channels * c.size * c.size);
  for (float& v : img) v = rng.normal();
  std::vector<int32_t> lab(c.batch);
  for (auto& l : lab) l = static_cast<int32_t>(rng.below(10));
  ait::Tensor images = ait::Tensor::from({c.batch, c.channels, c.size, c.size}, img, &dev);
  ait::Tensor labels = ait::Tensor::from_int({c.batch}, lab, &dev);
  // Written as eager steps; the Vulkan backend reuses its recorded command buffers from the
  // third repetition on (AIT_VK_REPLAY=0 measures recording every step).
  auto train_step = [&] {
    ait::ForwardResult f = model.forward(images, {}, labels, true, true, 0);
    f.loss.backward();
    adam.step(1e-4f);
    adam.zero_grad();
    model.commit_memory(f);
    return f.loss.item();  // the value a log line needs; waits for the device
  };
  auto eval_step = [&] {
    ait::NoGradScope ng;
    return model.forward(images, {}, {}, false, false, 0).logits.to_vector()[0];
  };
  auto rate = [&](auto fn) {
    fn(), fn();  // warm-up: first-touch allocation, pipeline creation, recording
    int steps = 0;
    auto t0 = Clock::now();
    while (steps < min_steps || seconds_since(t0) < min_seconds) {
      fn();
      ++steps;
    }
    return c.batch * steps / seconds_since(t0);
  };
  double train = rate(train_step), eval = rate(eval_step);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  std::printf(
      "{\"train_images_per_s\": %.3f, \"eval_images_per_s\": %.3f, \"peak_rss_mb\": %.1f, \"device\": \"%s\"}\n", train,
      eval, ru.ru_maxrss / 1024.0, dev.name().c_str());
  return 0;
}

// Runs a command, returns its last stdout line parsed as JSON (null on failure).
ait::Json run_json(const std::string& cmd) {
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {};
  std::string last;
  char buf[4096];
  while (fgets(buf, sizeof buf, p))
    if (buf[0] == '{') last = buf;
  int rc = pclose(p);
  if (rc != 0 || last.empty()) return {};
  try {
    return ait::Json::parse(last, cmd);
  } catch (const ait::Error&) {
    return {};
  }
}

std::string self_path() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, n) : std::string("ait-bench");
}

std::string ours_cmd(const ModelCase& c, const std::string& device, double secs, int steps) {
  return self_path() + " --child " + c.preset + " " + device + " " + std::to_string(secs) + " " +
         std::to_string(steps) + " 2>/dev/null";
}

std::string source_dir() {
  const char* env = std::getenv("AIT_SOURCE_DIR");  // a bench binary carried to another machine
  return env ? env : AIT_SOURCE_DIR;
}

// Debian's python3-torch lives under /usr/bin/python3 (the python3 on PATH may lack it);
// AIT_BENCH_PYTHON names another interpreter (e.g. a GPU machine's CUDA build of PyTorch).
std::string python() {
  const char* env = std::getenv("AIT_BENCH_PYTHON");
  return env && *env ? env : "/usr/bin/python3";
}
bool torch_available() { return std::system((python() + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0; }
bool torch_cuda_available() {
  return std::system(
             (python() + " -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' >/dev/null 2>&1")
                 .c_str()) == 0;
}

std::string theirs_cmd(const ModelCase& c, int blas_threads, int steps, const std::string& device,
                       const std::string& extra = "") {
  std::string cfg = "/tmp/ait-bench-" + std::string(c.preset) + ".json";
  std::ofstream(cfg) << config_of(c).to_json().dump();
  // OpenBLAS's best settings for PyTorch: the machine's core-type pins unset, thread count tried.
  return "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=" + std::to_string(blas_threads) + " " +
         python() + " " + source_dir() + "/tools/reference/ait_reference.py bench --config " + cfg + " --batch-size " +
         std::to_string(c.batch) + " --steps " + std::to_string(steps) + " --threads 2 --device " + device + extra +
         " 2>/dev/null";
}

double num(const ait::Json& j, const char* key) { return j.is_object() && j.has(key) ? j.at(key).as_number() : 0.0; }

void bench_train() {
  std::printf("\n== train: AiT training / inference throughput on the CPU (ours %d threads vs PyTorch, 2 threads) ==\n",
              ait::num_threads());
  bool torch = torch_available();
  if (!torch) std::printf("PyTorch not found (apt-get install python3-torch): ours only\n");
  print_precision(ait::cpu());
  std::printf("%-28s %10s %10s %10s | %10s %10s %10s | %7s %7s\n", "config", "train/s", "eval/s", "peak MB",
              "torch tr/s", "eval/s", "peak MB", "train x", "mem x");
  for (const ModelCase& c : {kSmall, kTiny}) {
    const int rounds = 2;
    double ours_train = 0, ours_eval = 0, ours_mem = 0, th_train = 0, th_eval = 0, th_mem = 0;
    std::string th_setting;
    for (int r = 0; r < rounds; ++r) {  // ours, theirs, ours, theirs: drift cancels in the ratio
      ait::Json o = run_json(ours_cmd(c, "cpu", 8.0, 3));
      ours_train += num(o, "train_images_per_s") / rounds;
      ours_eval += num(o, "eval_images_per_s") / rounds;
      ours_mem = std::max(ours_mem, num(o, "peak_rss_mb"));
      if (!torch) continue;
      double best = -1;
      ait::Json best_j;
      for (int blas : {1, 2}) {  // PyTorch's faster OpenBLAS setting counts
        ait::Json t = run_json(theirs_cmd(c, blas, c.batch >= 128 ? 4 : 2, "cpu"));
        if (num(t, "train_images_per_s") > best)
          best = num(t, "train_images_per_s"), best_j = t, th_setting = std::to_string(blas);
      }
      th_train += num(best_j, "train_images_per_s") / rounds;
      th_eval += num(best_j, "eval_images_per_s") / rounds;
      th_mem = std::max(th_mem, num(best_j, "peak_rss_mb"));
    }
    char name[64];
    std::snprintf(name, sizeof name, "%s b%lld %lldx%lldx%lld", c.preset, static_cast<long long>(c.batch),
                  static_cast<long long>(c.channels), static_cast<long long>(c.size), static_cast<long long>(c.size));
    if (torch && th_train > 0)
      std::printf("%-28s %10.1f %10.1f %10.0f | %10.1f %10.1f %10.0f | %6.2fx %6.2fx\n", name, ours_train, ours_eval,
                  ours_mem, th_train, th_eval, th_mem, ours_train / th_train, ours_mem / th_mem);
    else std::printf("%-28s %10.1f %10.1f %10.0f |\n", name, ours_train, ours_eval, ours_mem);
    if (torch) std::printf("%-28s (PyTorch best with OPENBLAS_NUM_THREADS=%s)\n", "", th_setting.c_str());
  }
  std::printf(
      "(images/s, mean of 2 alternating rounds; peak MB = peak RSS of the measuring process;\n"
      " train x = ours / PyTorch training images/s; mem x = ours / PyTorch peak memory)\n");
}

// Vulkan rows: matmul at the AiT-Small shapes and model throughput on the selected device.
void bench_vulkan() {
  std::printf("\n== vulkan ==\n");
  std::string note;
  ait::Kernels* dev = nullptr;
  const char* spec = std::getenv("AIT_BENCH_VK_DEVICE");
  try {
    dev = ait::select_device(spec ? spec : "vulkan", &note);
  } catch (const ait::Error& e) {
    std::printf("no Vulkan device (%s): skipped\n", e.what());
    return;
  }
  const bool slow = dev->name().find("llvmpipe") != std::string::npos;
  std::printf("device: %s%s\n", dev->name().c_str(),
              slow ? "  (a CPU rasteriser: a regression record, not GPU speed)" : "");
  print_precision(*dev);
  std::printf("%-34s %10s\n", "matmul", "GFLOP/s");
  for (auto [what, ta, tb, M, N, K] : std::vector<std::tuple<const char*, bool, bool, int, int, int>>{
           {"qkv X[4096x768]*W^T", false, true, 4096, 2304, 768},
           {"mlp1 X[4096x768]*W^T", false, true, 4096, 3072, 768},
           {"mlp2 X[4096x3072]*W^T", false, true, 4096, 768, 3072},
           {"dX dY[4096x2304]*W", false, false, 4096, 768, 2304},
           {"dW dY^T[2304x4096]*X", true, false, 2304, 768, 4096}}) {
    if (slow) M /= 8;  // lavapipe: a smaller M keeps the section short
    ait::BufferPtr a = dev->alloc(size_t(M) * K), b = dev->alloc(size_t(N) * K), c = dev->alloc(size_t(M) * N);
    std::vector<float> ha(size_t(M) * K, 0.5f), hb(size_t(N) * K, 0.25f);
    dev->upload(*a, ha.data(), ha.size());
    dev->upload(*b, hb.data(), hb.size());
    ait::MatmulArgs m;
    m.M = M, m.N = N, m.K = K, m.trans_a = ta, m.trans_b = tb;
    m.lda = ta ? M : K, m.ldb = tb ? K : N, m.ldc = N;
    dev->matmul(*a, *b, *c, m);
    dev->sync();
    int reps = 0;
    auto t0 = Clock::now();
    while (seconds_since(t0) < (slow ? 1.0 : 0.5) || reps < 3) {
      for (int i = 0; i < 10; ++i) dev->matmul(*a, *b, *c, m);
      dev->sync();
      reps += 10;
    }
    double gf = 2.0 * M * N * K * reps / seconds_since(t0) / 1e9;
    char label[80];
    std::snprintf(label, sizeof label, "%s%s", what, slow ? " (M/8)" : "");
    std::printf("%-34s %10.1f\n", label, gf);
  }
  std::string device_arg = spec ? spec : "vulkan";
  // Beside a real GPU, PyTorch CUDA (eager, fp32) runs the same models when it is available.
  const bool cuda = !slow && torch_cuda_available();
  std::printf("%-16s %10s %10s %8s", "model", "train/s", "eval/s", "host MB");
  if (cuda) std::printf(" | %12s %10s %10s | %7s", "torch cuda/s", "eval/s", "dev MB", "train x");
  std::printf("\n");
  for (const ModelCase& c : {kTiny, kSmall}) {
    const std::string name = std::string(c.preset) + " b" + std::to_string(c.batch);
    if (slow && std::string(c.preset) == "small") {
      std::printf("%-16s skipped on a CPU rasteriser\n", name.c_str());
      continue;
    }
    const int rounds = cuda ? 2 : 1;  // ours, theirs, ours, theirs: drift cancels in the ratio
    double tr = 0, ev = 0, mem = 0, th_tr = 0, th_ev = 0, th_mem = 0;
    for (int r = 0; r < rounds; ++r) {
      ait::Json o = run_json(ours_cmd(c, device_arg, slow ? 0.0 : 3.0, slow ? 3 : 5));
      tr += num(o, "train_images_per_s") / rounds;
      ev += num(o, "eval_images_per_s") / rounds;
      mem = std::max(mem, num(o, "peak_rss_mb"));
      if (!cuda) continue;
      // As long as ours is measured (3 s), after 10 warm-up steps.
      ait::Json t = run_json(theirs_cmd(c, 1, 10, "cuda", " --seconds 3 --warmup 10"));
      th_tr += num(t, "train_images_per_s") / rounds;
      th_ev += num(t, "eval_images_per_s") / rounds;
      th_mem = std::max(th_mem, num(t, "peak_device_mb"));
    }
    std::printf("%-16s %10.1f %10.1f %8.0f", name.c_str(), tr, ev, mem);
    if (cuda) std::printf(" | %12.1f %10.1f %10.0f | %6.2fx", th_tr, th_ev, th_mem, th_tr > 0 ? tr / th_tr : 0.0);
    std::printf("\n");
  }
  if (cuda)
    std::printf(
        "(images/s, mean of 2 alternating rounds; train x = ours / PyTorch CUDA training images/s;\n"
        " PyTorch: %s tools/reference/ait_reference.py bench --device cuda)\n",
        python().c_str());
}

struct Section {
  const char* name;
  void (*run)();
};
const Section kSections[] = {
    {"gemm", bench_gemm},
    {"train", bench_train},
    {"vulkan", bench_vulkan},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 6 && std::strcmp(argv[1], "--child") == 0) {
    try {
      return child_main(argv[2], argv[3], std::atof(argv[4]), std::atoi(argv[5]));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "ait-bench child: %s\n", e.what());
      return 1;
    }
  }
  std::vector<std::string> sections;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg != "--precision" && arg.rfind("--precision=", 0) != 0) {
      sections.push_back(arg);
      continue;
    }
    const bool inline_value = arg.size() > 11;
    if (!inline_value && i + 1 >= argc) {
      std::fprintf(stderr, "ait-bench: option --precision needs a value (fp32|mixed)\n");
      return 2;
    }
    try {
      g_precision = ait::parse_precision(inline_value ? arg.substr(12) : argv[++i]);
    } catch (const ait::Error& e) {
      std::fprintf(stderr, "ait-bench: %s\n", e.what());
      return 2;
    }
  }
  bool ran = false;
  for (const Section& s : kSections) {
    bool selected = sections.empty();
    for (const std::string& name : sections) selected |= name == s.name;
    if (selected) {
      s.run();
      ran = true;
    }
  }
  if (!ran) {
    std::fprintf(stderr, "usage: %s [--precision fp32|mixed] [section...]; sections:", argv[0]);
    for (const Section& s : kSections) std::fprintf(stderr, " %s", s.name);
    std::fprintf(stderr, "\n");
    return 2;
  }
  return 0;
}

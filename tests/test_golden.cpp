// The cross-check against the PyTorch reference: tests/golden holds checkpoints, batches and
// the reference's float64 dumps (tools/reference/make_golden.py). We run the same dump (spec §7)
// and compare: logits and losses ≤ 1e-5 relative, gradients ≤ 1e-4 (‖a−b‖/‖b‖), step losses
// ≤ 1e-4, memories ≤ 1e-5 after one pass and 1e-4 after three steps, parameters after three
// steps ≤ 1e-3 of what the steps changed. No Python is needed.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "io/safetensors.h"
#include "model/train.h"
#include "testutil.h"

using namespace ait;

namespace {

// The source tree's golden folder; AIT_SOURCE_DIR in the environment overrides the build's
// path (a test binary carried to another machine).
const std::string kGolden =
    std::string(std::getenv("AIT_SOURCE_DIR") ? std::getenv("AIT_SOURCE_DIR") : AIT_SOURCE_DIR) + "/tests/golden/";

double tolerance_for(const std::string& name) {
  if (name.rfind("grad.", 0) == 0 || name == "step_losses" || name.rfind("memory.final.", 0) == 0) return 1e-4;
  if (name.rfind("param.", 0) == 0) return 1e-3;
  return 1e-5;  // logits, eval.logits, losses, memory.<i>
}

}  // namespace

class Golden : public ::testing::TestWithParam<std::string> {};

void check_dump_against_golden(const std::string& name, Kernels& dev) {
  std::string out = test::test_tmpdir() + "/" + name + ".dump.safetensors";
  DumpOptions o;
  o.checkpoint = kGolden + name + ".ckpt.safetensors";
  o.batch = kGolden + name + ".batch.safetensors";
  o.out = out;
  o.train_steps = 3;
  o.lr = 1e-3f;
  o.weight_decay = 0.01f;
  dump(o, dev);
  SafeTensors got = read_safetensors(out), want = read_safetensors(kGolden + name + ".dump.safetensors");
  SafeTensors ckpt = read_safetensors(o.checkpoint);
  EXPECT_EQ(got.tensors.size(), want.tensors.size());
  double worst_grad = 0;
  for (auto& [tname, w] : want.tensors) {
    ASSERT_TRUE(got.has(tname)) << name << ": missing " << tname;
    const StTensor& g = got.get(tname);
    ASSERT_EQ(g.shape, w.shape) << tname;
    std::vector<float> wv = w.f32(), gv = g.f32();
    if (tname.rfind("param.", 0) == 0) {
      // Relative to how far the three steps moved the parameter: the error of the change
      // (got − start against want − start), floored at 1e-3·‖param‖.
      std::vector<float> start = ckpt.get(tname.substr(6)).f32();
      std::vector<double> got_moved(wv.size()), want_moved(wv.size());
      double norm = 0;
      for (size_t i = 0; i < wv.size(); ++i) {
        got_moved[i] = double(gv[i]) - start[i];
        want_moved[i] = double(wv[i]) - start[i];
        norm += double(wv[i]) * wv[i];
      }
      if (norm == 0)  // an all-zero parameter that never moves (e.g. an untouched bias)
        EXPECT_EQ(gv, wv) << name << ": " << tname;
      else
        EXPECT_LE(test::rel_error(got_moved, want_moved, 1e-3 * std::sqrt(norm)), tolerance_for(tname))
            << name << ": " << tname;
      continue;
    }
    double e = test::rel_error(gv, wv);
    if (tname.rfind("grad.", 0) == 0) worst_grad = std::max(worst_grad, e);
    // An all-zero expectation (no gradient flows) must be matched exactly.
    double norm = 0;
    for (float v : wv) norm += double(v) * v;
    if (norm == 0) {
      for (float v : gv) EXPECT_EQ(v, 0.0f) << name << ": " << tname;
      continue;
    }
    EXPECT_LE(e, tolerance_for(tname)) << name << ": " << tname;
  }
  std::printf("%s on %s: worst gradient error %.2e\n", name.c_str(), dev.name().c_str(), worst_grad);
}

TEST_P(Golden, CpuDumpMatchesPyTorch) { check_dump_against_golden(GetParam(), cpu()); }

// The same fixture through the Vulkan backend (lavapipe in CI), under the validation layer.
TEST_P(Golden, VulkanDumpMatchesPyTorch) {
  Kernels* vk = test::vulkan_device();
  if (!vk) GTEST_SKIP() << "no Vulkan device";
  check_dump_against_golden(GetParam(), *vk);
  test::expect_no_validation_messages();
}

INSTANTIATE_TEST_SUITE_P(Cases, Golden,
                         ::testing::Values("tiny_select", "tiny_question", "tiny_noselect", "tiny_single",
                                           // the ablation switches of spec §2.6 and the ViT of §2.7
                                           "ablate_no_attention", "ablate_no_read", "ablate_dense_write",
                                           "ablate_reset", "ablate_learned", "vit_select", "vit_question", "coordination_select",
                                           "coordination_question"));

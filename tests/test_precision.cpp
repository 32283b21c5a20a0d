// The --precision switch (docs/gpu.md, spec §10.2) where no GPU is needed: parsing, the CPU
// backend's answer to mixed (fp32 with one line of notice), the description of a
// cooperative-matrix shape, and the programs: a bad value is a usage error, and `ait eval
// --precision mixed` on the CPU prints the notice once and the same results as fp32. (The
// Vulkan side is in test_vulkan_fp16.cpp.)
#include <gtest/gtest.h>

#include <string>

#include "model/options.h"
#include "testutil.h"
#include "vulkan/device.h"

using namespace ait;

TEST(Precision, ParsedFromItsTwoNames) {
  EXPECT_EQ(parse_precision("fp32"), Precision::Fp32);
  EXPECT_EQ(parse_precision("mixed"), Precision::Mixed);
  EXPECT_STREQ(precision_name(Precision::Fp32), "fp32");
  EXPECT_STREQ(precision_name(Precision::Mixed), "mixed");
  for (const char* bad : {"", "fp16", "FP32", "mixed ", "bf16"}) {
    const std::string e = test::error_of([&] { parse_precision(bad); });
    EXPECT_NE(e.find("option --precision: '" + std::string(bad) + "' is not one of fp32, mixed"), std::string::npos)
        << e;
    EXPECT_THROW(parse_precision(bad), OptionError);
  }
}

TEST(Precision, CpuRunsFp32WithOneLineOfNotice) {
  std::string note = "stale";
  EXPECT_EQ(resolve_precision(cpu(), Precision::Fp32, &note), Precision::Fp32);
  EXPECT_EQ(note, "");
  EXPECT_EQ(resolve_precision(cpu(), Precision::Mixed, &note), Precision::Fp32);
  EXPECT_EQ(note, "--precision mixed: the CPU backend computes in fp32 only; running fp32");
  EXPECT_EQ(resolve_precision(cpu(), Precision::Mixed, nullptr), Precision::Fp32);
}

TEST(Precision, CooperativeMatrixShapesAreDescribed) {
  CoopMatrixShape s;
  s.m = 16, s.n = 8, s.k = 16, s.a_type = 0, s.b_type = 0, s.c_type = 1, s.result_type = 1, s.scope = 3;
  EXPECT_EQ(describe_coop_shape(s), "16x8x16 f16*f16+f32->f32 subgroup");
  s.a_type = s.b_type = 1000141000u, s.c_type = s.result_type = 0, s.scope = 2, s.saturating = true;
  EXPECT_EQ(describe_coop_shape(s), "16x8x16 bf16*bf16+f16->f16 workgroup saturating");
  EXPECT_EQ(coop_component_name(3), "s8");
  EXPECT_EQ(coop_component_name(10), "u64");
  EXPECT_EQ(coop_component_name(11), "type 11");
}

TEST(Precision, ProgramsRefuseABadValueAndNoteMixedOnTheCpu) {
  std::string out;
  EXPECT_EQ(test::run_program("ait", "eval --device cpu --checkpoint c --data d --precision fp16", &out), 2) << out;
  EXPECT_NE(out.find("ait eval: option --precision: 'fp16' is not one of fp32, mixed"), std::string::npos) << out;
  EXPECT_EQ(test::run_program("ait", "train --device cpu --data d --out o --precision", &out), 2) << out;
  EXPECT_NE(out.find("--precision needs a value"), std::string::npos) << out;
  EXPECT_EQ(test::run_program("ait-bench", "--precision half gemm", &out), 2) << out;
  EXPECT_NE(out.find("option --precision: 'half' is not one of fp32, mixed"), std::string::npos) << out;

  const std::string dir = test::fresh_tmpdir("precision_cli");
  const std::string data = test::write_quadrant_dataset(dir, 19, 3);
  const std::string ckpt = test::write_quadrant_checkpoint(dir, 5);
  const std::string args = "eval --device cpu --checkpoint " + ckpt + " --data " + data + " --batch-size 7";
  std::string fp32, mixed;
  ASSERT_EQ(test::run_program("ait", args + " --precision fp32", &fp32), 0) << fp32;
  ASSERT_EQ(test::run_program("ait", args + " --precision mixed", &mixed), 0) << mixed;
  const std::string notice = "ait eval: --precision mixed: the CPU backend computes in fp32 only; running fp32\n";
  EXPECT_EQ(mixed.find(notice), 0u) << "the notice first\n" << mixed;
  EXPECT_EQ(mixed.rfind(notice), 0u) << "and only once\n" << mixed;
  EXPECT_EQ(fp32.find("--precision"), std::string::npos) << fp32;
  EXPECT_NE(fp32.find("accuracy"), std::string::npos) << fp32;
  EXPECT_EQ(mixed.substr(notice.size()), fp32) << "the same results after the notice";
}

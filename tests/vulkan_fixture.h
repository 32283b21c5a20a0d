// The fixture of the suites that test VulkanKernels itself (matmul tiles, fp16 storage).
#pragma once
#ifdef AIT_VULKAN
#include <gtest/gtest.h>

#include "testutil.h"
#include "vulkan/vk_kernels.h"

namespace ait::test {

// `vk` is the test's Vulkan device (the test is skipped where AIT_SKIP_VULKAN_TESTS allows a
// missing one). After each test the matmul tile and split-K go back to automatic, so that a
// forced choice does not leak into the next test, and validation must have stayed silent.
class VulkanKernelsTest : public ::testing::Test {
protected:
  void SetUp() override {
    Kernels* k = vulkan_device();  // a missing device has already failed the test, unless skipping is allowed
    if (!k) GTEST_SKIP() << "no Vulkan device";
    vk = dynamic_cast<VulkanKernels*>(k);
    ASSERT_NE(vk, nullptr);
  }
  void TearDown() override {
    if (vk) {
      vk->set_matmul_tile("");
      vk->set_matmul_splits(0);
      vk->sync();
    }
    expect_no_validation_messages();
  }
  VulkanKernels* vk = nullptr;
};

}  // namespace ait::test
#endif

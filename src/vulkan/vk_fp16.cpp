// fp16 storage on the Vulkan backend: fp32 <-> fp16 conversion (shaders/convert_f16.comp), the
// operands that matmul_fp16 (vk_matmul.cpp) reads.
#include "vulkan/vk_kernel_util.h"
#include "vulkan/vk_kernels.h"
#include "vulkan/vk_runtime.h"

namespace ait {

using namespace vkk;

bool VulkanKernels::has_fp16_storage() const { return ctx_->storage_16bit(); }

// x_off and y_off are in the units of each side's buffer elements: fp32 values, or fp16 pairs.
void VulkanKernels::convert_fp16(const char* k, uint32_t mode, const Buffer& x, Buffer& y, size_t n, size_t x_off,
                                 size_t y_off) {
  if (n == 0) return;
  const uint64_t values = n, pairs = (values + 1) / 2;
  const bool narrowing = mode == AIT_CONVERT_F32_TO_F16;
  const uint64_t x_elems = narrowing ? values : pairs, y_elems = narrowing ? pairs : values;
  if (x_off > x.size || x.size - x_off < x_elems)
    bad(k, "x holds too few elements for " + std::to_string(n) + " values");
  if (y_off > y.size || y.size - y_off < y_elems)
    bad(k, "y holds too few elements for " + std::to_string(n) + " values");
  struct Pc {
    PcBase base;
    uint32_t n, src_off, dst_off;
  } pc{};
  pc.n = u32(static_cast<int64_t>(n), k, "n");
  vk::BindRange bx = span_bind(*ctx_, x, k, x_off, x_elems, &pc.src_off);
  vk::BindRange by = span_bind(*ctx_, y, k, y_off, y_elems, &pc.dst_off);
  auto& p = ctx_->pipeline("convert_f16", 2, sizeof pc, {mode});
  ctx_->dispatch(k, p, {bx, by}, &pc, sizeof pc, groups_for(y_elems, kWG));
}

void VulkanKernels::to_fp16(const Buffer& x, Buffer& y, size_t n, size_t x_off, size_t y_word) {
  convert_fp16("to_fp16", AIT_CONVERT_F32_TO_F16, x, y, n, x_off, y_word);
}

void VulkanKernels::from_fp16(const Buffer& x, Buffer& y, size_t n, size_t x_word, size_t y_off) {
  convert_fp16("from_fp16", AIT_CONVERT_F16_TO_F32, x, y, n, x_word, y_off);
}

}  // namespace ait

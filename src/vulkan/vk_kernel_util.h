// Helpers every file of the Vulkan op table shares: argument checks that name the kernel, the
// workgroup arithmetic, and the shader modes (shaders/modes.h is valid C++ and GLSL).
#pragma once
#include <cstdint>
#include <string>

#include "../../shaders/modes.h"
#include "core/error.h"
#include "core/kernels.h"
#include "vulkan/vk_runtime.h"

namespace ait {
namespace vkk {

constexpr uint32_t kWG = 256;  // WG_SIZE in shaders/common.glsl

// binary.comp takes ait::BinaryOp as its OP.
static_assert(AIT_BINARY_ADD == int(BinaryOp::Add) && AIT_BINARY_SUB == int(BinaryOp::Sub) &&
                  AIT_BINARY_MUL == int(BinaryOp::Mul) && AIT_BINARY_DIV == int(BinaryOp::Div),
              "shaders/modes.h and BinaryOp disagree");

inline uint64_t groups_for(uint64_t n, uint64_t per) { return (n + per - 1) / per; }

[[noreturn]] inline void bad(const char* kernel, const std::string& why) {
  throw Error(std::string("vulkan ") + kernel + ": " + why);
}

// 32-bit index/count argument check (every bound range is < 2^32 bytes, so valid values fit).
inline uint32_t u32(int64_t v, const char* kernel, const char* what) {
  if (v < 0 || v > static_cast<int64_t>(UINT32_MAX))
    bad(kernel, std::string(what) + " = " + std::to_string(v) + " is out of range");
  return static_cast<uint32_t>(v);
}

inline void need(const Buffer& b, uint64_t elems, const char* kernel, const char* what) {
  if (b.size < elems)
    bad(kernel, std::string(what) + " holds " + std::to_string(b.size) + " elements, needs " + std::to_string(elems));
}

// Binds the span [first, first + count) of a buffer starting at an aligned element at or
// before `first`; *rel receives first's index inside the binding.
vk::BindRange span_bind(vk::Context& ctx, const Buffer& b, const char* kernel, uint64_t first, uint64_t count,
                        uint32_t* rel);

// The three uint32 every push-constant block starts with (vk::Context::dispatch sets them).
struct PcBase {
  uint32_t bx = 0, by = 0, bz = 0;
};

}  // namespace vkk
}  // namespace ait

// What a physical device offers for reduced-precision arithmetic: 16-bit storage buffers,
// float16 arithmetic, and the shapes of VK_KHR_cooperative_matrix (docs/gpu.md).
//
// The installed Vulkan headers may predate VK_KHR_cooperative_matrix (it appeared in 1.3.255), so
// the two things the query needs are declared here, laid out as the Vulkan registry defines
// them, and the entry point is looked up by name at run time.
#include <cstring>

#include "vulkan/vk_runtime.h"

// Vulkan structs are initialised as `T x{sType}` (the rest zeroed), the usual idiom.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ait {
namespace vk {

namespace {

constexpr const char* kCoopMatrixExtension = "VK_KHR_cooperative_matrix";
constexpr VkStructureType kCoopMatrixPropertiesType = static_cast<VkStructureType>(1000506001);

// VkCooperativeMatrixPropertiesKHR. The two enums (VkComponentTypeKHR, VkScopeKHR) are 32-bit
// values in C, kept as uint32_t.
struct CoopMatrixPropertiesKHR {
  VkStructureType sType;
  void* pNext;
  uint32_t MSize, NSize, KSize;
  uint32_t AType, BType, CType, ResultType;
  VkBool32 saturatingAccumulation;
  uint32_t scope;
};
using PFN_GetCoopMatrixProperties = VkResult(VKAPI_PTR*)(VkPhysicalDevice, uint32_t*, CoopMatrixPropertiesKHR*);

std::vector<CoopMatrixShape> coop_matrix_shapes(PFN_GetCoopMatrixProperties get, VkPhysicalDevice pd) {
  uint32_t n = 0;
  if (get(pd, &n, nullptr) != VK_SUCCESS || n == 0) return {};
  std::vector<CoopMatrixPropertiesKHR> props(n);
  for (auto& p : props) {
    std::memset(&p, 0, sizeof p);
    p.sType = kCoopMatrixPropertiesType;
  }
  VkResult r = get(pd, &n, props.data());
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) return {};
  std::vector<CoopMatrixShape> shapes;
  for (uint32_t i = 0; i < n && i < props.size(); ++i) {
    const CoopMatrixPropertiesKHR& p = props[i];
    shapes.push_back({p.MSize, p.NSize, p.KSize, p.AType, p.BType, p.CType, p.ResultType,
                      p.saturatingAccumulation == VK_TRUE, p.scope});
  }
  return shapes;
}

}  // namespace

void Instance::describe_precision(VkPhysicalDevice pd, const std::vector<VkExtensionProperties>& exts,
                                  DeviceInfo& d) const {
  // storageBuffer16BitAccess is a Vulkan 1.1 feature; shaderFloat16 is 1.2 core or
  // VK_KHR_shader_float16_int8.
  VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDeviceShaderFloat16Int8Features f16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  f2.pNext = &s16;
  if (d.api_version >= VK_API_VERSION_1_2 || has_extension(exts, VK_KHR_SHADER_FLOAT16_INT8_EXTENSION_NAME))
    s16.pNext = &f16;
  if (f_.vkGetPhysicalDeviceFeatures2) {
    f_.vkGetPhysicalDeviceFeatures2(pd, &f2);
    d.storage_16bit = s16.storageBuffer16BitAccess == VK_TRUE;
    d.shader_float16 = f16.shaderFloat16 == VK_TRUE;
  }
  d.coop_matrix_extension = has_extension(exts, kCoopMatrixExtension);
  if (!d.coop_matrix_extension) return;
  auto get = reinterpret_cast<PFN_GetCoopMatrixProperties>(
      f_.vkGetInstanceProcAddr(instance_, "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR"));
  if (get) d.coop_matrix_shapes = coop_matrix_shapes(get, pd);
}

}  // namespace vk
}  // namespace ait

// Device discovery and selection: the CPU backend or a Vulkan device.
//
// Compiled in every build. Without Vulkan support (no headers or GLSL compiler at build time,
// AIT_VULKAN undefined) list_devices() is empty and selecting "vulkan" throws
// "built without Vulkan support". With it, the Vulkan loader is opened at run time
// (dlopen("libvulkan.so.1"); env AIT_VULKAN_LOADER overrides the path), so a binary built here
// runs on machines without Vulkan and falls back to the CPU.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/kernels.h"

namespace ait {

struct MemoryHeapInfo {
  uint64_t size = 0;  // bytes
  bool device_local = false;
};

// One shape VK_KHR_cooperative_matrix offers (vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR):
// Result[M, N] = A[M, K] * B[K, N] + C[M, N] with the component types (VkComponentTypeKHR values)
// and the scope (VkScopeKHR value) the driver reports.
struct CoopMatrixShape {
  uint32_t m = 0, n = 0, k = 0;
  uint32_t a_type = 0, b_type = 0, c_type = 0, result_type = 0;
  bool saturating = false;
  uint32_t scope = 0;
};
// "f16", "f32", "bf16", "s8", ... for a VkComponentTypeKHR value ("type N" when unknown).
std::string coop_component_name(uint32_t type);
// "16x16x16 f16*f16+f32->f32 subgroup".
std::string describe_coop_shape(const CoopMatrixShape& s);

struct DeviceInfo {
  int index = 0;  // the N of "vulkan:N"
  std::string name;
  std::string type;  // "discrete", "integrated", "virtual", "cpu" or "other"
  uint32_t vendor_id = 0, device_id = 0;
  std::string driver_name, driver_info;  // empty when the driver does not report them
  uint32_t api_version = 0;              // VK_MAKE_API_VERSION encoding
  std::string api_version_str;           // "1.3.230"
  std::vector<MemoryHeapInfo> heaps;
  uint32_t subgroup_size = 0;
  uint32_t max_shared_memory = 0;           // maxComputeSharedMemorySize, bytes
  uint64_t max_storage_buffer_range = 0;    // bytes one storage-buffer binding may span
  uint64_t max_memory_allocation_size = 0;  // bytes one allocation may have
  uint32_t max_workgroup_count[3] = {0, 0, 0};
  // What mixed precision needs (docs/gpu.md): 16-bit storage buffers (storageBuffer16BitAccess,
  // enabled at device creation when present), float16 arithmetic (shaderFloat16, reported only),
  // and the shapes of VK_KHR_cooperative_matrix (empty when the extension is absent).
  bool storage_16bit = false, shader_float16 = false;
  bool coop_matrix_extension = false;
  std::vector<CoopMatrixShape> coop_matrix_shapes;
  bool usable = false;          // meets the backend's requirements (Vulkan 1.1, compute queue, limits)
  std::string unusable_reason;  // why not, when !usable
};

// Every Vulkan physical device the loader reports (empty without a loader or Vulkan support).
std::vector<DeviceInfo> list_devices();

// A printable table of the devices for `ait devices` (always lists "cpu" too).
std::string describe_devices();

// Picks the backend. spec:
//   "cpu"       the CPU backend
//   "vulkan"    the Vulkan device AIT_VK_DEVICE=N names, else the best usable one
//               (discrete, then integrated, virtual, cpu-type, other)
//   "vulkan:N"  Vulkan device N of list_devices()
//   "auto"      a discrete, then integrated, then virtual GPU; else the CPU backend. A CPU-type
//               Vulkan device (lavapipe) is only used when named explicitly.
// When "auto" falls back to the CPU, *note (when given) is set to a line that starts with
// "no Vulkan loader/device found, using CPU"; otherwise *note is cleared. "vulkan"/"vulkan:N"
// throw ait::Error when no loader/device is found (message starting "no Vulkan loader/device
// found"), when N is out of range or the device is unusable, and "built without Vulkan support"
// in builds without the backend. A Vulkan backend lives for the rest of the process: it is
// created on the first selection of its device and returned again afterwards.
Kernels* select_device(const std::string& spec, std::string* note = nullptr);

// The arithmetic precision of a run (--precision). fp32 is the reference: every tensor and every
// operation in float32. mixed would run the matmuls on tensor units (fp16/bf16 inputs, fp32
// accumulation) and keep everything else in fp32 (docs/spec.md §10.2).
enum class Precision { Fp32, Mixed };
const char* precision_name(Precision p);  // "fp32", "mixed"
// The precision a run on `device` computes at when `requested` is asked for. Today always Fp32:
// the CPU backend has no mixed path, and no Vulkan device runs one yet (the cooperative-matrix
// matmul is not built). When that differs from `requested`, *note gets one line saying why
// (naming the device and whether it offers VK_KHR_cooperative_matrix); otherwise it is cleared.
Precision resolve_precision(Kernels& device, Precision requested, std::string* note);

// Validation-layer diagnostics. The Khronos validation layer (and synchronization validation)
// is enabled when env AIT_VK_VALIDATION is set to anything but "0" before the first Vulkan use;
// a VK_EXT_debug_utils messenger then records every warning and error it reports.
bool vk_validation_enabled();
std::vector<std::string> vk_validation_messages();
void vk_clear_validation_messages();

}  // namespace ait

// The Vulkan side of device selection: the process-wide instance's devices, and one backend
// (context and op table) per device, made on first use.
#include "vulkan/backend.h"

#include <map>
#include <mutex>

#include "core/error.h"

#include "vulkan/vk_kernels.h"
#include "vulkan/vk_runtime.h"

namespace ait {
namespace backend {

std::vector<DeviceInfo> devices(std::string* error) {
  vk::Instance* inst = vk::Instance::get(error);
  if (!inst) return {};
  if (inst->devices().empty()) *error = "the Vulkan loader reports no physical device";
  return inst->devices();
}

Kernels* open(int index) {
  static std::mutex mu;
  static std::map<std::pair<vk::Instance*, int>, VulkanKernels*> made;  // live for the process
  std::string err;
  vk::Instance* inst = vk::Instance::get(&err);
  if (!inst) throw Error("no Vulkan loader/device found (" + err + ")");
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(inst, index);
  auto it = made.find(key);
  if (it != made.end()) return it->second;
  auto* ctx = new vk::Context(inst, index);
  auto* k = new VulkanKernels(ctx);
  made[key] = k;
  return k;
}

const DeviceInfo* info_of(const Kernels& k) {
  auto* v = dynamic_cast<const VulkanKernels*>(&k);
  return v ? &v->context().info() : nullptr;
}

bool validation_enabled() {
  std::string err;
  vk::Instance* inst = vk::Instance::get(&err);
  return inst && inst->validation();
}
std::vector<std::string> validation_messages() { return vk::validation_messages(); }
void clear_validation_messages() { vk::clear_validation_messages(); }

}  // namespace backend
}  // namespace ait

// Device selection in a build without Vulkan (no headers or GLSL compiler at build time): no
// devices, and a message that says so.
#include "vulkan/backend.h"

#include "core/error.h"

namespace ait {
namespace backend {

std::vector<DeviceInfo> devices(std::string* error) {
  *error = "built without Vulkan support (install libvulkan-dev and glslc, then rebuild)";
  return {};
}
Kernels* open(int) { throw Error("built without Vulkan support"); }
const DeviceInfo* info_of(const Kernels&) { return nullptr; }
bool validation_enabled() { return false; }
std::vector<std::string> validation_messages() { return {}; }
void clear_validation_messages() {}

}  // namespace backend
}  // namespace ait

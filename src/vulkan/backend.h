// The Vulkan backend as device selection (device.cpp) sees it. backend.cpp implements it with
// Vulkan; no_backend.cpp, compiled instead in builds without Vulkan, reports no devices.
#pragma once
#include <string>
#include <vector>

#include "core/kernels.h"
#include "vulkan/device.h"

namespace ait {
namespace backend {

// The physical devices; empty with *error saying why (no loader, no device, no Vulkan build).
std::vector<DeviceInfo> devices(std::string* error);
// The backend of device `index` of devices(), created on first use and kept for the process.
Kernels* open(int index);
// The description of the device a Vulkan backend runs on; null for another backend.
const DeviceInfo* info_of(const Kernels& k);
bool validation_enabled();
std::vector<std::string> validation_messages();
void clear_validation_messages();

}  // namespace backend
}  // namespace ait

// The Vulkan loader (opened at run time), the instance, validation messages and the description
// of each physical device.
#include "vulkan/vk_runtime.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/error.h"

// Vulkan structs are initialised as `T x{sType}` (the rest zeroed), the usual idiom.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ait {

namespace vk {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

const char* result_name(VkResult r) {
  switch (r) {
#define AIT_CASE(x) \
  case x: return #x;
    AIT_CASE(VK_SUCCESS)
    AIT_CASE(VK_NOT_READY)
    AIT_CASE(VK_TIMEOUT)
    AIT_CASE(VK_INCOMPLETE)
    AIT_CASE(VK_ERROR_OUT_OF_HOST_MEMORY)
    AIT_CASE(VK_ERROR_OUT_OF_DEVICE_MEMORY)
    AIT_CASE(VK_ERROR_INITIALIZATION_FAILED)
    AIT_CASE(VK_ERROR_DEVICE_LOST)
    AIT_CASE(VK_ERROR_MEMORY_MAP_FAILED)
    AIT_CASE(VK_ERROR_LAYER_NOT_PRESENT)
    AIT_CASE(VK_ERROR_EXTENSION_NOT_PRESENT)
    AIT_CASE(VK_ERROR_FEATURE_NOT_PRESENT)
    AIT_CASE(VK_ERROR_INCOMPATIBLE_DRIVER)
    AIT_CASE(VK_ERROR_TOO_MANY_OBJECTS)
    AIT_CASE(VK_ERROR_FORMAT_NOT_SUPPORTED)
    AIT_CASE(VK_ERROR_FRAGMENTED_POOL)
    AIT_CASE(VK_ERROR_OUT_OF_POOL_MEMORY)
    AIT_CASE(VK_ERROR_INVALID_EXTERNAL_HANDLE)
    AIT_CASE(VK_ERROR_UNKNOWN)
#undef AIT_CASE
    default: return "VkResult(?)";
  }
}

void check(VkResult r, const char* what) {
  if (r != VK_SUCCESS) throw Error(std::string("vulkan: ") + what + " failed: " + result_name(r));
}

namespace {

std::string version_str(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) + "." +
         std::to_string(VK_API_VERSION_PATCH(v));
}

// ---- validation messages ----
std::mutex g_msg_mu;
std::vector<std::string> g_messages;

VKAPI_ATTR VkBool32 VKAPI_CALL debug_callback(VkDebugUtilsMessageSeverityFlagBitsEXT severity,
                                              VkDebugUtilsMessageTypeFlagsEXT types,
                                              const VkDebugUtilsMessengerCallbackDataEXT* data, void*) {
  if (severity < VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT) return VK_FALSE;
  std::string m = severity >= VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT ? "[error]" : "[warning]";
  if (types & VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT) m += "[validation]";
  if (types & VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT) m += "[performance]";
  if (types & VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT) m += "[general]";
  if (data && data->pMessageIdName) m += std::string(" ") + data->pMessageIdName;
  if (data && data->pMessage) m += std::string(": ") + data->pMessage;
  fprintf(stderr, "ait vulkan %s\n", m.c_str());
  std::lock_guard<std::mutex> lock(g_msg_mu);
  g_messages.push_back(std::move(m));
  return VK_FALSE;
}

}  // namespace

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
  for (auto& e : exts)
    if (strcmp(e.extensionName, name) == 0) return true;
  return false;
}

bool validation_requested() {
  const char* v = getenv("AIT_VK_VALIDATION");
  return v && *v && strcmp(v, "0") != 0;
}
std::vector<std::string> validation_messages() {
  std::lock_guard<std::mutex> lock(g_msg_mu);
  return g_messages;
}
void clear_validation_messages() {
  std::lock_guard<std::mutex> lock(g_msg_mu);
  g_messages.clear();
}

// ---------------------------------------------------------------------------------------------
// Instance
// ---------------------------------------------------------------------------------------------

Instance* Instance::get(std::string* error) {
  static std::mutex mu;
  static std::map<std::string, Instance*> instances;  // live for the process
  static std::map<std::string, std::string> failures;
  const char* env = getenv("AIT_VULKAN_LOADER");
  std::string path = env && *env ? env : "libvulkan.so.1";
  std::lock_guard<std::mutex> lock(mu);
  auto it = instances.find(path);
  if (it != instances.end()) return it->second;
  auto ft = failures.find(path);
  if (ft != failures.end()) {
    if (error) *error = ft->second;
    return nullptr;
  }
  auto* inst = new Instance();
  std::string err;
  if (!inst->init(path, &err)) {
    // Keep the half-made instance's library open (never dlclose a Vulkan loader: drivers may
    // have registered atexit handlers), but forget the object.
    failures[path] = err;
    if (error) *error = err;
    return nullptr;
  }
  instances[path] = inst;
  return inst;
}

namespace {
// What the instance is created with: the validation layer and its extensions when requested.
struct InstanceSetup {
  std::vector<const char*> layers, extensions;
  bool validation = false, sync_validation = false, debug_utils = false;
};

std::vector<VkExtensionProperties> instance_extensions(const InstanceFns& f, const char* layer) {
  uint32_t n = 0;
  f.vkEnumerateInstanceExtensionProperties(layer, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  if (n) f.vkEnumerateInstanceExtensionProperties(layer, &n, exts.data());
  exts.resize(n);
  return exts;
}

bool has_layer(const InstanceFns& f, const char* name) {
  uint32_t n = 0;
  if (f.vkEnumerateInstanceLayerProperties) f.vkEnumerateInstanceLayerProperties(&n, nullptr);
  std::vector<VkLayerProperties> layers(n);
  if (n) f.vkEnumerateInstanceLayerProperties(&n, layers.data());
  for (uint32_t i = 0; i < n; ++i)
    if (strcmp(layers[i].layerName, name) == 0) return true;
  return false;
}

// The validation layer (env AIT_VK_VALIDATION=1) with synchronization checks when it offers
// them, and the debug messenger that collects its messages.
InstanceSetup plan_instance(const InstanceFns& f) {
  InstanceSetup s;
  std::vector<VkExtensionProperties> exts = instance_extensions(f, nullptr);
  const char* kLayer = "VK_LAYER_KHRONOS_validation";
  if (validation_requested()) {
    s.validation = has_layer(f, kLayer);
    if (s.validation) {
      s.layers.push_back(kLayer);
      std::vector<VkExtensionProperties> le = instance_extensions(f, kLayer);
      if (has_extension(le, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
        s.extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
        s.sync_validation = true;
      }
      exts.insert(exts.end(), le.begin(), le.end());
    } else {
      fprintf(stderr,
              "ait: AIT_VK_VALIDATION is set but VK_LAYER_KHRONOS_validation is not installed "
              "(Debian: vulkan-validationlayers); running without validation\n");
    }
  }
  s.debug_utils = s.validation && has_extension(exts, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  if (s.debug_utils) s.extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  return s;
}

VkDebugUtilsMessengerCreateInfoEXT messenger_info() {
  VkDebugUtilsMessengerCreateInfoEXT dbg{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  dbg.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  dbg.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                    VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  dbg.pfnUserCallback = debug_callback;
  return dbg;
}
}  // namespace

// Opens the loader and resolves the global entry points; false with *error when it cannot.
bool Instance::open_loader(const std::string& path, std::string* error, uint32_t* loader_version) {
  lib_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib_) {
    const char* e = dlerror();
    *error = "cannot open the Vulkan loader " + path + (e ? std::string(": ") + e : std::string());
    return false;
  }
  f_.vkGetInstanceProcAddr = reinterpret_cast<PFN_vkGetInstanceProcAddr>(dlsym(lib_, "vkGetInstanceProcAddr"));
  if (!f_.vkGetInstanceProcAddr) {
    *error = "the Vulkan loader " + path + " has no vkGetInstanceProcAddr";
    return false;
  }
#define AIT_LOAD_GLOBAL(name) f_.name = reinterpret_cast<PFN_##name>(f_.vkGetInstanceProcAddr(VK_NULL_HANDLE, #name));
  AIT_VK_GLOBAL_FNS(AIT_LOAD_GLOBAL)
#undef AIT_LOAD_GLOBAL
  if (!f_.vkCreateInstance || !f_.vkEnumerateInstanceExtensionProperties) {
    *error = "the Vulkan loader " + path + " lacks vkCreateInstance";
    return false;
  }
  *loader_version = VK_API_VERSION_1_0;
  if (f_.vkEnumerateInstanceVersion) f_.vkEnumerateInstanceVersion(loader_version);
  if (*loader_version < VK_API_VERSION_1_1) {
    *error = "the Vulkan loader supports only Vulkan " + version_str(*loader_version) + " (1.1 needed)";
    return false;
  }
  return true;
}

// Creates the instance (with validation when asked for and loadable; without it otherwise).
bool Instance::create_instance(uint32_t loader_version, std::string* error) {
  InstanceSetup s = plan_instance(f_);
  validation_ = s.validation;
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "ait";
  app.pEngineName = "ait";
  app.apiVersion = loader_version >= VK_API_VERSION_1_2 ? VK_API_VERSION_1_2 : VK_API_VERSION_1_1;
  VkDebugUtilsMessengerCreateInfoEXT dbg = messenger_info();
  VkValidationFeatureEnableEXT enables[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = enables;

  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.pApplicationInfo = &app;
  ci.enabledLayerCount = static_cast<uint32_t>(s.layers.size());
  ci.ppEnabledLayerNames = s.layers.data();
  ci.enabledExtensionCount = static_cast<uint32_t>(s.extensions.size());
  ci.ppEnabledExtensionNames = s.extensions.data();
  if (s.debug_utils) ci.pNext = &dbg;
  if (s.sync_validation) {
    features.pNext = ci.pNext;
    ci.pNext = &features;
  }
  VkResult r = f_.vkCreateInstance(&ci, nullptr, &instance_);
  if (r != VK_SUCCESS && validation_) {
    // The validation layer is installed but could not be loaded: run without it.
    fprintf(stderr,
            "ait: creating a Vulkan instance with VK_LAYER_KHRONOS_validation failed (%s); "
            "running without validation\n",
            result_name(r));
    validation_ = s.debug_utils = false;
    ci.enabledLayerCount = ci.enabledExtensionCount = 0;
    ci.pNext = nullptr;
    r = f_.vkCreateInstance(&ci, nullptr, &instance_);
  }
  if (r != VK_SUCCESS) {
    *error = std::string("vkCreateInstance failed: ") + result_name(r);
    return false;
  }
  return load_instance_functions(s.debug_utils, error);
}

bool Instance::load_instance_functions(bool debug_utils, std::string* error) {
#define AIT_LOAD_INSTANCE(name) f_.name = reinterpret_cast<PFN_##name>(f_.vkGetInstanceProcAddr(instance_, #name));
  AIT_VK_INSTANCE_FNS(AIT_LOAD_INSTANCE)
  if (debug_utils) {
    AIT_VK_DEBUG_FNS(AIT_LOAD_INSTANCE)
  }
#undef AIT_LOAD_INSTANCE
  if (!f_.vkEnumeratePhysicalDevices || !f_.vkGetPhysicalDeviceProperties2 || !f_.vkCreateDevice ||
      !f_.vkGetDeviceProcAddr) {
    *error = "the Vulkan loader lacks Vulkan 1.1 instance functions";
    return false;
  }
  if (debug_utils && f_.vkCreateDebugUtilsMessengerEXT) {
    VkDebugUtilsMessengerCreateInfoEXT dbg = messenger_info();
    f_.vkCreateDebugUtilsMessengerEXT(instance_, &dbg, nullptr, &messenger_);
  }
  return true;
}

bool Instance::init(const std::string& path, std::string* error) {
  uint32_t loader_version = 0;
  if (!open_loader(path, error, &loader_version) || !create_instance(loader_version, error)) return false;
  uint32_t count = 0;
  VkResult r = f_.vkEnumeratePhysicalDevices(instance_, &count, nullptr);
  if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
    *error = std::string("vkEnumeratePhysicalDevices failed: ") + result_name(r);
    return false;
  }
  phys_.resize(count);
  if (count) f_.vkEnumeratePhysicalDevices(instance_, &count, phys_.data());
  phys_.resize(count);
  for (uint32_t i = 0; i < count; ++i) describe(static_cast<int>(i));
  return true;
}

void Instance::describe(int index) {
  VkPhysicalDevice pd = phys_[static_cast<size_t>(index)];
  DeviceInfo d;
  d.index = index;
  VkPhysicalDeviceProperties p{};
  f_.vkGetPhysicalDeviceProperties(pd, &p);
  d.name = p.deviceName;
  switch (p.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: d.type = "discrete"; break;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: d.type = "integrated"; break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: d.type = "virtual"; break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: d.type = "cpu"; break;
    default: d.type = "other"; break;
  }
  d.vendor_id = p.vendorID;
  d.device_id = p.deviceID;
  d.api_version = p.apiVersion;
  d.api_version_str = version_str(p.apiVersion);
  d.max_shared_memory = p.limits.maxComputeSharedMemorySize;
  d.max_storage_buffer_range = p.limits.maxStorageBufferRange;
  for (int i = 0; i < 3; ++i) d.max_workgroup_count[i] = p.limits.maxComputeWorkGroupCount[i];

  uint32_t ne = 0;
  f_.vkEnumerateDeviceExtensionProperties(pd, nullptr, &ne, nullptr);
  std::vector<VkExtensionProperties> exts(ne);
  if (ne) f_.vkEnumerateDeviceExtensionProperties(pd, nullptr, &ne, exts.data());
  exts.resize(ne);

  VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  VkPhysicalDeviceSubgroupProperties sg{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
  VkPhysicalDeviceMaintenance3Properties m3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  VkPhysicalDeviceDriverProperties drv{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES};
  bool v11 = p.apiVersion >= VK_API_VERSION_1_1;
  bool have_driver = p.apiVersion >= VK_API_VERSION_1_2 || has_extension(exts, "VK_KHR_driver_properties");
  if (v11) {
    p2.pNext = &sg;
    sg.pNext = &m3;
    if (have_driver) m3.pNext = &drv;
    f_.vkGetPhysicalDeviceProperties2(pd, &p2);
    d.subgroup_size = sg.subgroupSize;
    d.max_memory_allocation_size = m3.maxMemoryAllocationSize;
    if (have_driver) {
      d.driver_name = drv.driverName;
      d.driver_info = drv.driverInfo;
    }
  }
  if (v11) describe_precision(pd, exts, d);
  VkPhysicalDeviceMemoryProperties mp{};
  f_.vkGetPhysicalDeviceMemoryProperties(pd, &mp);
  for (uint32_t i = 0; i < mp.memoryHeapCount; ++i)
    d.heaps.push_back({mp.memoryHeaps[i].size, (mp.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0});

  uint32_t nq = 0;
  f_.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> q(nq);
  f_.vkGetPhysicalDeviceQueueFamilyProperties(pd, &nq, q.data());
  bool compute = false;
  for (auto& f : q)
    if ((f.queueFlags & VK_QUEUE_COMPUTE_BIT) && f.queueCount > 0) compute = true;

  const auto& L = p.limits;
  if (!v11) d.unusable_reason = "Vulkan " + d.api_version_str + " (1.1 needed)";
  else if (!compute) d.unusable_reason = "no compute queue";
  else if (L.maxComputeWorkGroupInvocations < 256 || L.maxComputeWorkGroupSize[0] < 256)
    d.unusable_reason = "workgroups of 256 invocations not supported";
  else if (L.maxComputeSharedMemorySize < 16384) d.unusable_reason = "less than 16 KiB of shared memory";
  else if (L.maxPerStageDescriptorStorageBuffers < Context::kMaxBindings ||
           L.maxDescriptorSetStorageBuffers < Context::kMaxBindings)
    d.unusable_reason = "fewer than 8 storage buffers per shader";
  else if (L.maxPushConstantsSize < 128) d.unusable_reason = "push constants smaller than 128 bytes";
  d.usable = d.unusable_reason.empty();
  infos_.push_back(std::move(d));
}

}  // namespace vk
}  // namespace ait

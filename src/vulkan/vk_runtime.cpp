// Vulkan runtime: see vk_runtime.h for the model.
#include "vulkan/vk_runtime.h"

#include <dlfcn.h>
#include <unistd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/tensor.h"  // ait::Error

// Vulkan structs are initialised as `T x{sType}` (the rest zeroed), the usual idiom.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ait {

struct EmbeddedShader {
  const char* name;
  const uint32_t* words;
  size_t size_words;
};
extern const EmbeddedShader kShaders[];
extern const size_t kShaderCount;

namespace vk {

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

const char* result_name(VkResult r) {
  switch (r) {
#define AIT_CASE(x) \
  case x:           \
    return #x;
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
    default:
      return "VkResult(?)";
  }
}

void check(VkResult r, const char* what) {
  if (r != VK_SUCCESS) throw Error(std::string("vulkan: ") + what + " failed: " + result_name(r));
}

namespace {

std::string mib(uint64_t bytes) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

VkDeviceSize round_up(VkDeviceSize x, VkDeviceSize a) { return (x + a - 1) / a * a; }

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

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
  for (auto& e : exts)
    if (strcmp(e.extensionName, name) == 0) return true;
  return false;
}

}  // namespace

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

bool Instance::init(const std::string& path, std::string* error) {
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
  uint32_t loader_version = VK_API_VERSION_1_0;
  if (f_.vkEnumerateInstanceVersion) f_.vkEnumerateInstanceVersion(&loader_version);
  if (loader_version < VK_API_VERSION_1_1) {
    *error = "the Vulkan loader supports only Vulkan " + version_str(loader_version) + " (1.1 needed)";
    return false;
  }

  uint32_t n = 0;
  f_.vkEnumerateInstanceExtensionProperties(nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  f_.vkEnumerateInstanceExtensionProperties(nullptr, &n, exts.data());
  exts.resize(n);

  std::vector<const char*> layers, extensions;
  bool want_validation = validation_requested();
  bool sync_validation = false;
  if (want_validation) {
    uint32_t nl = 0;
    if (f_.vkEnumerateInstanceLayerProperties) f_.vkEnumerateInstanceLayerProperties(&nl, nullptr);
    std::vector<VkLayerProperties> lp(nl);
    if (nl) f_.vkEnumerateInstanceLayerProperties(&nl, lp.data());
    lp.resize(nl);
    for (auto& l : lp)
      if (strcmp(l.layerName, "VK_LAYER_KHRONOS_validation") == 0) validation_ = true;
    if (validation_) {
      layers.push_back("VK_LAYER_KHRONOS_validation");
      uint32_t ne = 0;
      f_.vkEnumerateInstanceExtensionProperties("VK_LAYER_KHRONOS_validation", &ne, nullptr);
      std::vector<VkExtensionProperties> le(ne);
      f_.vkEnumerateInstanceExtensionProperties("VK_LAYER_KHRONOS_validation", &ne, le.data());
      le.resize(ne);
      if (has_extension(le, VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME)) {
        extensions.push_back(VK_EXT_VALIDATION_FEATURES_EXTENSION_NAME);
        sync_validation = true;
      }
      for (auto& e : le) exts.push_back(e);
    } else {
      fprintf(stderr,
              "ait: AIT_VK_VALIDATION is set but VK_LAYER_KHRONOS_validation is not installed "
              "(Debian: vulkan-validationlayers); running without validation\n");
    }
  }
  bool debug_utils = validation_ && has_extension(exts, VK_EXT_DEBUG_UTILS_EXTENSION_NAME);
  if (debug_utils) extensions.push_back(VK_EXT_DEBUG_UTILS_EXTENSION_NAME);

  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "ait";
  app.pEngineName = "ait";
  app.apiVersion = loader_version >= VK_API_VERSION_1_2 ? VK_API_VERSION_1_2 : VK_API_VERSION_1_1;

  VkDebugUtilsMessengerCreateInfoEXT dbg{VK_STRUCTURE_TYPE_DEBUG_UTILS_MESSENGER_CREATE_INFO_EXT};
  dbg.messageSeverity = VK_DEBUG_UTILS_MESSAGE_SEVERITY_WARNING_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_SEVERITY_ERROR_BIT_EXT;
  dbg.messageType = VK_DEBUG_UTILS_MESSAGE_TYPE_GENERAL_BIT_EXT | VK_DEBUG_UTILS_MESSAGE_TYPE_VALIDATION_BIT_EXT |
                    VK_DEBUG_UTILS_MESSAGE_TYPE_PERFORMANCE_BIT_EXT;
  dbg.pfnUserCallback = debug_callback;

  VkValidationFeatureEnableEXT enables[] = {VK_VALIDATION_FEATURE_ENABLE_SYNCHRONIZATION_VALIDATION_EXT};
  VkValidationFeaturesEXT features{VK_STRUCTURE_TYPE_VALIDATION_FEATURES_EXT};
  features.enabledValidationFeatureCount = 1;
  features.pEnabledValidationFeatures = enables;

  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.pApplicationInfo = &app;
  ci.enabledLayerCount = static_cast<uint32_t>(layers.size());
  ci.ppEnabledLayerNames = layers.data();
  ci.enabledExtensionCount = static_cast<uint32_t>(extensions.size());
  ci.ppEnabledExtensionNames = extensions.data();
  if (debug_utils) ci.pNext = &dbg;
  if (sync_validation) {
    features.pNext = ci.pNext;
    ci.pNext = &features;
  }
  VkResult r = f_.vkCreateInstance(&ci, nullptr, &instance_);
  if (r != VK_SUCCESS && validation_) {
    // The validation layer is installed but could not be loaded: run without it.
    fprintf(stderr, "ait: creating a Vulkan instance with VK_LAYER_KHRONOS_validation failed (%s); "
                    "running without validation\n", result_name(r));
    validation_ = debug_utils = false;
    ci.enabledLayerCount = 0;
    ci.enabledExtensionCount = 0;
    ci.pNext = nullptr;
    r = f_.vkCreateInstance(&ci, nullptr, &instance_);
  }
  if (r != VK_SUCCESS) {
    *error = std::string("vkCreateInstance failed: ") + result_name(r);
    return false;
  }
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
    dbg.pNext = nullptr;
    f_.vkCreateDebugUtilsMessengerEXT(instance_, &dbg, nullptr, &messenger_);
  }

  uint32_t count = 0;
  r = f_.vkEnumeratePhysicalDevices(instance_, &count, nullptr);
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
  if (!v11)
    d.unusable_reason = "Vulkan " + d.api_version_str + " (1.1 needed)";
  else if (!compute)
    d.unusable_reason = "no compute queue";
  else if (L.maxComputeWorkGroupInvocations < 256 || L.maxComputeWorkGroupSize[0] < 256)
    d.unusable_reason = "workgroups of 256 invocations not supported";
  else if (L.maxComputeSharedMemorySize < 16384)
    d.unusable_reason = "less than 16 KiB of shared memory";
  else if (L.maxPerStageDescriptorStorageBuffers < Context::kMaxBindings ||
           L.maxDescriptorSetStorageBuffers < Context::kMaxBindings)
    d.unusable_reason = "fewer than 8 storage buffers per shader";
  else if (L.maxPushConstantsSize < 128)
    d.unusable_reason = "push constants smaller than 128 bytes";
  d.usable = d.unusable_reason.empty();
  infos_.push_back(std::move(d));
}

// ---------------------------------------------------------------------------------------------
// Memory blocks
// ---------------------------------------------------------------------------------------------

// One large device-local allocation with one VkBuffer over all of it; buffers are sub-ranges.
// Free space is a coalescing free list indexed two ways: by offset (to merge neighbours on
// release) and by size (best fit in O(log n); a freed range of the size a training step asks
// for again is found at once, which is what a size-class cache would give).
struct Block {
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize size = 0;
  std::map<VkDeviceSize, VkDeviceSize> by_off;        // offset -> size
  std::multimap<VkDeviceSize, VkDeviceSize> by_size;  // size -> offset
  size_t live = 0;
  bool program = false;  // kept for the program (recorded or replayed), see vk_runtime.h

  void add_free(VkDeviceSize off, VkDeviceSize bytes) {
    by_off[off] = bytes;
    by_size.emplace(bytes, off);
  }
  void remove_free(std::map<VkDeviceSize, VkDeviceSize>::iterator it) {
    auto range = by_size.equal_range(it->second);
    for (auto s = range.first; s != range.second; ++s)
      if (s->second == it->first) {
        by_size.erase(s);
        break;
      }
    by_off.erase(it);
  }
  // Returns the offset of a range of `bytes`, or UINT64_MAX when none fits.
  VkDeviceSize carve(VkDeviceSize bytes) {
    auto best = by_size.lower_bound(bytes);
    if (best == by_size.end()) return UINT64_MAX;
    VkDeviceSize off = best->second, sz = best->first;
    by_size.erase(best);
    by_off.erase(off);
    if (sz > bytes) add_free(off + bytes, sz - bytes);
    ++live;
    return off;
  }
  void give_back(VkDeviceSize off, VkDeviceSize bytes) {
    --live;
    auto next = by_off.lower_bound(off);
    if (next != by_off.end() && off + bytes == next->first) {
      bytes += next->second;
      auto after = std::next(next);
      remove_free(next);
      next = after;
    }
    if (next != by_off.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == off) {
        off = prev->first;
        bytes += prev->second;
        remove_free(prev);
      }
    }
    add_free(off, bytes);
  }
};

VkBuf::~VkBuf() {
  if (ctx && (buffer != VK_NULL_HANDLE)) ctx->release(*this);
}

// ---------------------------------------------------------------------------------------------
// Context
// ---------------------------------------------------------------------------------------------

namespace {
std::mutex g_ctx_mu;
std::vector<Context*> g_contexts;  // for the exit-time pipeline-cache save
void at_exit() {
  std::lock_guard<std::mutex> lock(g_ctx_mu);
  for (Context* c : g_contexts) {
    c->save_pipeline_cache();
    c->print_profile();
  }
}
}  // namespace

Context::Context(Instance* inst, int index) : fi_(inst->fns()) {
  info_ = inst->devices().at(static_cast<size_t>(index));  // usable: select_device checked
  phys_ = inst->physical(index);
  create_device();
  choose_memory_types();

  VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pci.queueFamilyIndex = queue_family_;
  check(f_.vkCreateCommandPool(device_, &pci, nullptr, &cmd_pool_), "vkCreateCommandPool");
  frames_.resize(3);
  auto make_frame = [&](Frame& fr) {
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = cmd_pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    check(f_.vkAllocateCommandBuffers(device_, &ai, &fr.cmd), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    check(f_.vkCreateFence(device_, &fci, nullptr, &fr.fence), "vkCreateFence");
  };
  for (auto& fr : frames_) make_frame(fr);
  make_frame(program_);
  dummy_ = alloc(kDummySlices * 64);
  slots_ = alloc(kMaxSlots);
  load_pipeline_cache();
  init_profiling();
  if (const char* b = getenv("AIT_VK_BARRIERS"); b && strcmp(b, "all") == 0) barrier_every_dispatch_ = true;
  std::lock_guard<std::mutex> lock(g_ctx_mu);
  static bool registered = false;
  if (!registered) {
    registered = true;
    std::atexit(at_exit);
  }
  g_contexts.push_back(this);
}

Context::~Context() {
  // Contexts live for the process (see select_device); this is for completeness only.
  {
    std::lock_guard<std::mutex> lock(g_ctx_mu);
    g_contexts.erase(std::remove(g_contexts.begin(), g_contexts.end(), this), g_contexts.end());
  }
  save_pipeline_cache();
  if (device_) f_.vkDeviceWaitIdle(device_);
  if (query_pool_) f_.vkDestroyQueryPool(device_, query_pool_, nullptr);
}

void Context::create_device() {
  uint32_t nq = 0;
  fi_.vkGetPhysicalDeviceQueueFamilyProperties(phys_, &nq, nullptr);
  std::vector<VkQueueFamilyProperties> q(nq);
  fi_.vkGetPhysicalDeviceQueueFamilyProperties(phys_, &nq, q.data());
  // Prefer a compute queue family without graphics (a dedicated compute engine), else any.
  int best = -1;
  for (uint32_t i = 0; i < nq; ++i) {
    if (!(q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) || q[i].queueCount == 0) continue;
    if (best < 0 || (!(q[i].queueFlags & VK_QUEUE_GRAPHICS_BIT) && (q[best].queueFlags & VK_QUEUE_GRAPHICS_BIT)))
      best = static_cast<int>(i);
  }
  if (best < 0) throw Error("vulkan: device " + info_.name + " has no compute queue");
  queue_family_ = static_cast<uint32_t>(best);
  timestamp_bits_ = q[queue_family_].timestampValidBits;
  float prio = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = queue_family_;
  qci.queueCount = 1;
  qci.pQueuePriorities = &prio;
  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  check(fi_.vkCreateDevice(phys_, &dci, nullptr, &device_), "vkCreateDevice");
#define AIT_LOAD_DEVICE(fn)                                                         \
  f_.fn = reinterpret_cast<PFN_##fn>(fi_.vkGetDeviceProcAddr(device_, #fn));       \
  if (!f_.fn) throw Error("vulkan: the driver of " + info_.name + " does not provide " #fn);
  AIT_VK_DEVICE_FNS(AIT_LOAD_DEVICE)
#undef AIT_LOAD_DEVICE
  f_.vkGetDeviceQueue(device_, queue_family_, 0, &queue_);

  fi_.vkGetPhysicalDeviceProperties(phys_, &props_);
  const VkPhysicalDeviceProperties& p = props_;
  limits_.max_storage_buffer_range = p.limits.maxStorageBufferRange;
  limits_.max_allocation = info_.max_memory_allocation_size ? info_.max_memory_allocation_size : (1ull << 30);
  limits_.storage_align = std::max<uint64_t>(4, p.limits.minStorageBufferOffsetAlignment);
  // (at most 256: dispatch copies them through a buffer of that size)
  limits_.max_push_constants = std::min<uint32_t>(256, p.limits.maxPushConstantsSize);
  for (int i = 0; i < 3; ++i) limits_.max_group_count[i] = p.limits.maxComputeWorkGroupCount[i];
  limits_.max_shared_memory = p.limits.maxComputeSharedMemorySize;
}

uint32_t Context::find_memory_type(uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) const {
  for (uint32_t i = 0; i < mem_props_.memoryTypeCount; ++i) {
    VkMemoryPropertyFlags fl = mem_props_.memoryTypes[i].propertyFlags;
    if ((bits & (1u << i)) && (fl & want) == want && (fl & avoid) == 0) return i;
  }
  return UINT32_MAX;
}

void Context::create_buffer(VkDeviceSize bytes, VkBufferUsageFlags usage, VkBuffer* buf) {
  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = bytes;
  bci.usage = usage;
  bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(f_.vkCreateBuffer(device_, &bci, nullptr, buf), "vkCreateBuffer");
}

static constexpr VkBufferUsageFlags kDeviceUsage =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;

void Context::choose_memory_types() {
  fi_.vkGetPhysicalDeviceMemoryProperties(phys_, &mem_props_);
  VkBuffer probe;
  create_buffer(4096, kDeviceUsage, &probe);
  VkMemoryRequirements req;
  f_.vkGetBufferMemoryRequirements(device_, probe, &req);
  f_.vkDestroyBuffer(device_, probe, nullptr);
  const VkMemoryPropertyFlags lazy = VK_MEMORY_PROPERTY_LAZILY_ALLOCATED_BIT | VK_MEMORY_PROPERTY_PROTECTED_BIT;
  device_type_ = find_memory_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, lazy);
  if (device_type_ == UINT32_MAX) device_type_ = find_memory_type(req.memoryTypeBits, 0, lazy);
  if (device_type_ == UINT32_MAX) throw Error("vulkan: no memory type for storage buffers on " + info_.name);
  const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  staging_type_ = find_memory_type(req.memoryTypeBits, host | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, lazy);
  if (staging_type_ == UINT32_MAX) staging_type_ = find_memory_type(req.memoryTypeBits, host, lazy);
  if (staging_type_ == UINT32_MAX) throw Error("vulkan: no host-visible coherent memory on " + info_.name);
  heap_size_ = mem_props_.memoryHeaps[mem_props_.memoryTypes[device_type_].heapIndex].size;
  alloc_align_ = std::max<VkDeviceSize>({256, limits_.storage_align, req.alignment});
  // Blocks of heap/16, clamped to [16 MiB, 256 MiB] and to maxMemoryAllocationSize.
  VkDeviceSize bs = std::clamp<VkDeviceSize>(heap_size_ / 16, 16ull << 20, 256ull << 20);
  bs = std::min<VkDeviceSize>(bs, limits_.max_allocation);
  block_size_ = bs / alloc_align_ * alloc_align_;
}

void Context::throw_oom(VkDeviceSize need) {
  VkDeviceSize have = heap_size_ > heap_used_ ? heap_size_ - heap_used_ : 0;
  throw Error("out of device memory: needed " + mib(need) + " MiB, have " + mib(have) + " MiB (" + info_.name + ")");
}

VkDeviceMemory Context::allocate_memory(VkDeviceSize bytes, uint32_t type, bool count_heap) {
  if (count_heap && heap_used_ + bytes > heap_size_) throw_oom(bytes);
  VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  ai.allocationSize = bytes;
  ai.memoryTypeIndex = type;
  VkDeviceMemory mem = VK_NULL_HANDLE;
  VkResult r = f_.vkAllocateMemory(device_, &ai, nullptr, &mem);
  if ((r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) && count_heap) {
    // Release what finished work still holds (freed dedicated buffers, empty blocks) and retry.
    sync();
    free_empty_blocks();
    r = f_.vkAllocateMemory(device_, &ai, nullptr, &mem);
  }
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) throw_oom(bytes);
  check(r, "vkAllocateMemory");
  if (count_heap) heap_used_ += bytes;
  return mem;
}

// Returns the empty blocks of the ordinary pool to the heap (the device must be idle). A
// program's blocks stay: a replay still uses them.
void Context::free_empty_blocks() {
  for (auto it = blocks_.begin(); it != blocks_.end();) {
    Block& b = **it;
    if (b.live == 0 && !b.program) {
      f_.vkDestroyBuffer(device_, b.buffer, nullptr);
      f_.vkFreeMemory(device_, b.memory, nullptr);
      heap_used_ -= b.size;
      it = blocks_.erase(it);
    } else {
      ++it;
    }
  }
}

// A device buffer over all of `mem` (`bytes`, counted in the heap); when that fails, frees `mem`.
VkBuffer Context::buffer_over(VkDeviceMemory mem, VkDeviceSize bytes) {
  VkBuffer b = VK_NULL_HANDLE;
  try {
    create_buffer(bytes, kDeviceUsage, &b);
    VkMemoryRequirements req;
    f_.vkGetBufferMemoryRequirements(device_, b, &req);
    check(f_.vkBindBufferMemory(device_, b, mem, 0), "vkBindBufferMemory");
  } catch (...) {
    if (b) f_.vkDestroyBuffer(device_, b, nullptr);
    f_.vkFreeMemory(device_, mem, nullptr);
    heap_used_ -= bytes;
    throw;
  }
  return b;
}

Block* Context::new_block(VkDeviceSize need) {
  auto b = std::make_unique<Block>();
  b->size = std::max(block_size_, round_up(need, alloc_align_));
  b->memory = allocate_memory(b->size, device_type_, true);
  b->program = recording_;  // (after the allocation: its out-of-memory retry ends a recording)
  b->buffer = buffer_over(b->memory, b->size);
  b->add_free(0, b->size);
  blocks_.push_back(std::move(b));
  return blocks_.back().get();
}

std::shared_ptr<VkBuf> Context::alloc(size_t n) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto buf = std::make_shared<VkBuf>(this, n);
  if (n == 0) return buf;
  if (n > (SIZE_MAX - alloc_align_) / 4) throw_oom(UINT64_MAX);
  VkDeviceSize bytes = round_up(static_cast<VkDeviceSize>(n) * 4, alloc_align_);
  if (bytes > heap_size_) throw_oom(bytes);
  // A recording takes every buffer from its own blocks (a block of the buffer's size if need be).
  if (bytes > block_size_ / 2 && !(recording_ && bytes <= limits_.max_allocation)) {
    // Dedicated allocation.
    if (bytes > limits_.max_allocation)
      throw Error("vulkan: a buffer of " + mib(bytes) + " MiB exceeds the largest allocation " + info_.name +
                  " supports (maxMemoryAllocationSize " + mib(limits_.max_allocation) + " MiB)");
    VkDeviceMemory mem = allocate_memory(bytes, device_type_, true);
    buf->buffer = buffer_over(mem, bytes);
    buf->dedicated = mem;
    buf->offset = 0;
    buf->bytes = bytes;
    return buf;
  }
  for (auto& blk : blocks_) {
    if (blk->program != recording_) continue;
    VkDeviceSize off = blk->carve(bytes);
    if (off != UINT64_MAX) {
      buf->block = blk.get();
      buf->buffer = blk->buffer;
      buf->offset = off;
      buf->bytes = bytes;
      return buf;
    }
  }
  Block* blk = new_block(bytes);
  buf->block = blk;
  buf->buffer = blk->buffer;
  buf->offset = blk->carve(bytes);
  buf->bytes = bytes;
  return buf;
}

void Context::release(VkBuf& b) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  // An ordinary buffer the program's commands use: a replay would touch whatever reuses it.
  const bool used_by_program = b.program_use != 0 && b.program_use == program_id_ && !(b.block && b.block->program);
  if (used_by_program && recording_) keepable_ = false;
  if (used_by_program && has_program_) drop_program();
  if (b.block) {
    // Safe to reuse at once: later commands are ordered after earlier ones by barriers.
    b.block->give_back(b.offset, b.bytes);
  } else if (b.dedicated) {
    // The VkBuffer may still be referenced by recorded or in-flight commands: destroy it once
    // the last frame that could use it has finished (for a recording: once its run has; the
    // serial is set when it is submitted).
    deferred_.push_back({used_by_program && recording_ ? UINT64_MAX : serial_, b.buffer, b.dedicated});
    heap_used_ -= b.bytes;  // accounted as free now; the retry path in allocate_memory syncs
    if (!rec_) collect_deferred();
  }
  b.buffer = VK_NULL_HANDLE;
}

void Context::collect_deferred() {
  bool idle = rec_ == nullptr && !program_.pending;
  for (auto& f : frames_) idle = idle && !f.pending;
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    if (it->serial <= completed_serial_ || (idle && it->serial <= serial_)) {
      f_.vkDestroyBuffer(device_, it->buffer, nullptr);
      f_.vkFreeMemory(device_, it->memory, nullptr);
      it = deferred_.erase(it);
    } else {
      ++it;
    }
  }
}

void Context::ensure_staging() {
  if (staging_) return;
  staging_size_ = 16ull << 20;
  create_buffer(staging_size_, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT, &staging_);
  VkMemoryRequirements req;
  f_.vkGetBufferMemoryRequirements(device_, staging_, &req);
  uint32_t type = staging_type_;
  if (!(req.memoryTypeBits & (1u << type))) {
    const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    type = find_memory_type(req.memoryTypeBits, host, 0);
    if (type == UINT32_MAX) throw Error("vulkan: no host-visible memory for the staging buffer");
  }
  staging_memory_ = allocate_memory(req.size, type, false);
  check(f_.vkBindBufferMemory(device_, staging_, staging_memory_, 0), "vkBindBufferMemory(staging)");
  void* p = nullptr;
  check(f_.vkMapMemory(device_, staging_memory_, 0, VK_WHOLE_SIZE, 0, &p), "vkMapMemory(staging)");
  staging_ptr_ = static_cast<uint8_t*>(p);
  staging_used_ = 0;
}

// ---- command recording ----

VkCommandBuffer Context::cmd() {
  if (rec_) return rec_->cmd;
  Frame& f = frames_[next_frame_];
  next_frame_ = (next_frame_ + 1) % frames_.size();
  if (f.pending) wait_frame(f);
  collect_deferred();
  check(f_.vkResetFences(device_, 1, &f.fence), "vkResetFences");
  check(f_.vkResetCommandBuffer(f.cmd, 0), "vkResetCommandBuffer");
  for (auto pool : f.pools) f_.vkResetDescriptorPool(device_, pool, 0);
  f.pool_next = 0;
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(f_.vkBeginCommandBuffer(f.cmd, &bi), "vkBeginCommandBuffer");
  f.serial = ++serial_;
  rec_ = &f;
  rec_dispatches_ = 0;
  need_barrier_ = true;  // order after work of earlier submissions
  return f.cmd;
}

// Before a transfer: everything recorded before it must be complete and visible.
void Context::barrier_if_needed() {
  VkCommandBuffer c = cmd();
  if (need_barrier_ || !since_barrier_.empty()) emit_barrier(c);
}

void Context::emit_barrier(VkCommandBuffer c) {
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                     VK_ACCESS_TRANSFER_WRITE_BIT;
  const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  f_.vkCmdPipelineBarrier(c, stages, stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
  need_barrier_ = false;
  since_barrier_.clear();
  if (recording_) ++program_barriers_;
}

void Context::wait_frame(Frame& f) {
  if (!f.pending) return;
  check(f_.vkWaitForFences(device_, 1, &f.fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
  f.pending = false;
  completed_serial_ = std::max(completed_serial_, f.serial);
}

void Context::submit(bool wait) {
  if (recording_) abandon_program();
  if (rec_) {
    check(f_.vkEndCommandBuffer(rec_->cmd), "vkEndCommandBuffer");
    VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
    si.commandBufferCount = 1;
    si.pCommandBuffers = &rec_->cmd;
    check(f_.vkQueueSubmit(queue_, 1, &si, rec_->fence), "vkQueueSubmit");
    rec_->pending = true;
    rec_ = nullptr;
    rec_dispatches_ = 0;
  }
  if (wait) {
    // Wait oldest first (the ring order after next_frame_).
    for (size_t i = 0; i < frames_.size(); ++i) wait_frame(frames_[(next_frame_ + i) % frames_.size()]);
    wait_frame(program_);
    staging_used_ = 0;
    collect_deferred();
  }
}

void Context::sync() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  submit(true);
}

// ---- programs ----

void Context::begin_program() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (recording_) throw Error("vulkan: begin_program while recording one");
  drop_program();
  sync();               // earlier work runs outside the program (and the device is idle)
  collect_profile();    // of the previous program's last run
  free_empty_blocks();  // e.g. the previous step's blocks: the program gets its own
  check(f_.vkResetCommandBuffer(program_.cmd, 0), "vkResetCommandBuffer");
  for (auto pool : program_.pools) f_.vkResetDescriptorPool(device_, pool, 0);
  program_.pool_next = 0;
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  check(f_.vkBeginCommandBuffer(program_.cmd, &bi), "vkBeginCommandBuffer");
  if (query_pool_) {
    f_.vkCmdResetQueryPool(program_.cmd, query_pool_, 0, query_capacity_);
    f_.vkCmdWriteTimestamp(program_.cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, query_pool_, 0);
    queries_used_ = 1;
    query_labels_.assign(1, "");
  }
  rec_ = &program_;
  rec_dispatches_ = 0;
  need_barrier_ = true;  // each run is ordered after the work submitted before it
  recording_ = keepable_ = true;
  program_barriers_ = program_dispatches_ = 0;
  ++program_id_;
  slot_values_.clear();
}

uint32_t Context::program_slot(uint32_t value) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (!recording_) return kNoSlot;
  if (slot_values_.size() == kMaxSlots) {
    abandon_program();
    return kNoSlot;
  }
  slot_values_.push_back(value);
  return static_cast<uint32_t>(slot_values_.size() - 1);
}

// Uploads the slot values (in an ordinary frame, submitted first) and submits the program.
void Context::launch_program() {
  wait_frame(program_);  // the previous run (a pending command buffer must not be resubmitted)
  collect_profile();
  if (!slot_values_.empty()) upload(*slots_, slot_values_.data(), slot_values_.size() * 4, 0);
  submit(false);
  check(f_.vkResetFences(device_, 1, &program_.fence), "vkResetFences");
  program_.serial = ++serial_;
  for (auto& d : deferred_)
    if (d.serial == UINT64_MAX) d.serial = program_.serial;
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &program_.cmd;
  check(f_.vkQueueSubmit(queue_, 1, &si, program_.fence), "vkQueueSubmit");
  program_.pending = true;
  // The recording's own run (first pipeline use, first-touch memory) is not profiled.
  profile_pending_ = query_pool_ && has_program_;
  ++program_runs_;
}

bool Context::end_program() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (!recording_) return false;  // abandoned: the work already ran
  check(f_.vkEndCommandBuffer(program_.cmd), "vkEndCommandBuffer");
  recording_ = false;
  rec_ = nullptr;
  launch_program();
  if (keepable_)
    has_program_ = true;
  else
    drop_program();
  return has_program_;
}

void Context::abandon_program() {
  keepable_ = false;
  end_program();
}

void Context::run_program(const std::vector<uint32_t>& values) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (!has_program_) throw Error("vulkan: no recorded program to run");
  if (values.size() != slot_values_.size())
    throw Error("vulkan: a program with " + std::to_string(slot_values_.size()) + " slots run with " +
                std::to_string(values.size()) + " values");
  slot_values_ = values;
  launch_program();
}

void Context::drop_program() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (recording_) {
    abandon_program();  // (which comes back here)
    return;
  }
  has_program_ = false;
  // Its blocks join the ordinary pool: work recorded from now on is ordered after its last run.
  for (auto& b : blocks_) b->program = false;
}

VkDescriptorSet Context::allocate_set(const Pipeline& p) {
  cmd();
  Frame& f = *rec_;
  for (;;) {
    if (f.pool_next == f.pools.size()) {
      VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 256 * kMaxBindings};
      VkDescriptorPoolCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
      ci.maxSets = 256;
      ci.poolSizeCount = 1;
      ci.pPoolSizes = &ps;
      VkDescriptorPool pool;
      check(f_.vkCreateDescriptorPool(device_, &ci, nullptr, &pool), "vkCreateDescriptorPool");
      f.pools.push_back(pool);
    }
    VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    ai.descriptorPool = f.pools[f.pool_next];
    ai.descriptorSetCount = 1;
    ai.pSetLayouts = &p.set_layout;
    VkDescriptorSet set = VK_NULL_HANDLE;
    VkResult r = f_.vkAllocateDescriptorSets(device_, &ai, &set);
    if (r == VK_SUCCESS) return set;
    if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) check(r, "vkAllocateDescriptorSets");
    ++f.pool_next;
  }
}

// ---- transfers ----

void Context::upload(VkBuf& dst, const void* src, size_t bytes, size_t off) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (bytes == 0) return;
  if (recording_) abandon_program();  // the data would be baked into the program
  const uint8_t* s = static_cast<const uint8_t*>(src);
  if (bytes <= 65536) {
    // Small: the data travels inside the command buffer.
    barrier_if_needed();
    f_.vkCmdUpdateBuffer(cmd(), dst.buffer, dst.offset + off, bytes, s);
    need_barrier_ = true;
    return;
  }
  ensure_staging();
  while (bytes > 0) {
    size_t chunk = static_cast<size_t>(std::min<VkDeviceSize>(bytes, staging_size_));
    if (staging_used_ + chunk > staging_size_) submit(true);  // frees the whole staging ring
    memcpy(staging_ptr_ + staging_used_, s, chunk);
    barrier_if_needed();
    VkBufferCopy region{staging_used_, dst.offset + off, chunk};
    f_.vkCmdCopyBuffer(cmd(), staging_, dst.buffer, 1, &region);
    need_barrier_ = true;
    staging_used_ = round_up(staging_used_ + chunk, 256);
    s += chunk;
    off += chunk;
    bytes -= chunk;
  }
}

void Context::download(const VkBuf& src, void* dst, size_t bytes, size_t off) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (recording_) abandon_program();
  if (bytes == 0) {
    sync();
    return;
  }
  ensure_staging();
  uint8_t* d = static_cast<uint8_t*>(dst);
  while (bytes > 0) {
    size_t chunk = static_cast<size_t>(std::min<VkDeviceSize>(bytes, staging_size_));
    if (staging_used_ + chunk > staging_size_) submit(true);
    VkDeviceSize at = staging_used_;
    barrier_if_needed();
    VkBufferCopy region{src.offset + off, at, chunk};
    f_.vkCmdCopyBuffer(cmd(), src.buffer, staging_, 1, &region);
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    f_.vkCmdPipelineBarrier(cmd(), VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr,
                            0, nullptr);
    need_barrier_ = true;
    submit(true);
    memcpy(d, staging_ptr_ + at, chunk);
    d += chunk;
    off += chunk;
    bytes -= chunk;
  }
}

// ---- bindings and dispatch ----

const VkBuf& Context::vkbuf(const Buffer& b, const char* kernel) const {
  auto* v = dynamic_cast<const VkBuf*>(&b);
  if (!v || v->ctx != this)
    throw Error(std::string("vulkan ") + kernel + ": a buffer of another backend or device was passed");
  return *v;
}

size_t Context::max_binding_elems() const {
  uint64_t r = limits_.max_storage_buffer_range / alloc_align_ * alloc_align_;
  return static_cast<size_t>(r / 4);
}

BindRange Context::bind(const Buffer& b, const char* kernel, size_t elem_off, size_t elems) {
  const VkBuf& v = vkbuf(b, kernel);
  if (elem_off > v.size) throw Error(std::string("vulkan ") + kernel + ": binding offset past the end of a buffer");
  if (elems == SIZE_MAX) elems = v.size - elem_off;
  if (elems > v.size - elem_off)
    throw Error(std::string("vulkan ") + kernel + ": binding range past the end of a buffer (" +
                std::to_string(elem_off) + " + " + std::to_string(elems) + " > " + std::to_string(v.size) + ")");
  if (elems == 0) return dummy();
  if (recording_) v.program_use = program_id_;
  VkDeviceSize bytes = static_cast<VkDeviceSize>(elems) * 4;
  if (bytes > limits_.max_storage_buffer_range)
    throw Error(std::string("vulkan ") + kernel + ": a tensor of " + mib(bytes) + " MiB exceeds the " +
                mib(limits_.max_storage_buffer_range) + " MiB one binding may span on " + info_.name +
                " (maxStorageBufferRange)");
  VkDeviceSize off = v.offset + static_cast<VkDeviceSize>(elem_off) * 4;
  if (off % limits_.storage_align != 0)
    throw Error(std::string("vulkan ") + kernel + ": binding offset not aligned to minStorageBufferOffsetAlignment");
  return {v.buffer, off, bytes};
}

// Which descriptor bindings (set 0) a SPIR-V module may write: bit i is clear when every
// variable at binding i is NonWritable (GLSL `readonly`, decorated on the variable or on all
// members of its block). Anything it cannot make sense of counts as written.
uint32_t spirv_written_bindings(const uint32_t* w, size_t n) {
  enum { kDecorate = 71, kMemberDecorate = 72, kTypeStruct = 30, kTypePointer = 32, kVariable = 59 };
  enum { kNonWritable = 24, kBinding = 33 };
  std::map<uint32_t, uint32_t> binding_of, pointee, var_type, struct_members, struct_readonly;
  std::map<uint32_t, bool> readonly_var;
  if (n < 5 || w[0] != 0x07230203u) return ~0u;
  for (size_t i = 5; i < n;) {
    const uint32_t op = w[i] & 0xffffu, len = w[i] >> 16;
    if (len == 0 || i + len > n) return ~0u;
    const uint32_t* a = w + i + 1;
    if (op == kDecorate && len >= 3) {
      if (a[1] == kBinding && len >= 4) binding_of[a[0]] = a[2];
      if (a[1] == kNonWritable) readonly_var[a[0]] = true;
    } else if (op == kMemberDecorate && len >= 4 && a[2] == kNonWritable) {
      ++struct_readonly[a[0]];
    } else if (op == kTypeStruct && len >= 2) {
      struct_members[a[0]] = len - 2;
    } else if (op == kTypePointer && len >= 4) {
      pointee[a[0]] = a[2];
    } else if (op == kVariable && len >= 4) {
      var_type[a[1]] = a[0];
    }
    i += len;
  }
  uint32_t written = 0;
  for (auto& [var, binding] : binding_of) {
    if (binding >= 32) return ~0u;
    bool ro = readonly_var.count(var) > 0;
    if (!ro && var_type.count(var) && pointee.count(var_type[var])) {
      uint32_t st = pointee[var_type[var]];
      ro = struct_members.count(st) && struct_members[st] > 0 && struct_readonly[st] == struct_members[st];
    }
    if (!ro) written |= 1u << binding;
  }
  // Bindings no variable names are never touched by the shader.
  return written;
}

Pipeline& Context::pipeline(const char* shader, uint32_t num_bindings, uint32_t push_size,
                            const std::vector<uint32_t>& spec) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  std::string key = shader;
  for (uint32_t s : spec) key += ":" + std::to_string(s);
  auto it = pipelines_.find(key);
  if (it != pipelines_.end()) return *it->second;

  if (num_bindings == 0 || num_bindings > kMaxBindings)  // a usable device has kMaxBindings
    throw Error(std::string("vulkan pipeline ") + shader + ": " + std::to_string(num_bindings) +
                " storage buffers exceed the device limit");
  if (push_size < 12 || push_size > limits_.max_push_constants || push_size % 4 != 0)
    throw Error(std::string("vulkan pipeline ") + shader + ": push-constant size " + std::to_string(push_size) +
                " is invalid (12.." + std::to_string(limits_.max_push_constants) + ", multiple of 4)");
  const EmbeddedShader* es = nullptr;
  for (size_t i = 0; i < kShaderCount; ++i)
    if (kShaders[i].name && strcmp(kShaders[i].name, shader) == 0) es = &kShaders[i];
  if (!es) throw Error(std::string("vulkan: shader '") + shader + "' is not embedded in this build");

  auto p = std::make_unique<Pipeline>();
  p->key = key;
  p->num_bindings = num_bindings;
  p->push_size = push_size;
  p->written_bindings = spirv_written_bindings(es->words, es->size_words);
  uint64_t lk = (static_cast<uint64_t>(num_bindings) << 32) | push_size;
  auto lt = layouts_.find(lk);
  if (lt == layouts_.end()) {
    std::vector<VkDescriptorSetLayoutBinding> b(num_bindings);
    for (uint32_t i = 0; i < num_bindings; ++i) {
      b[i] = {};
      b[i].binding = i;
      b[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      b[i].descriptorCount = 1;
      b[i].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo dl{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    dl.bindingCount = num_bindings;
    dl.pBindings = b.data();
    VkDescriptorSetLayout sl;
    check(f_.vkCreateDescriptorSetLayout(device_, &dl, nullptr, &sl), "vkCreateDescriptorSetLayout");
    VkPushConstantRange pr{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size};
    VkPipelineLayoutCreateInfo pl{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    pl.setLayoutCount = 1;
    pl.pSetLayouts = &sl;
    pl.pushConstantRangeCount = 1;
    pl.pPushConstantRanges = &pr;
    VkPipelineLayout lay;
    check(f_.vkCreatePipelineLayout(device_, &pl, nullptr, &lay), "vkCreatePipelineLayout");
    lt = layouts_.emplace(lk, std::make_pair(sl, lay)).first;
  }
  p->set_layout = lt->second.first;
  p->layout = lt->second.second;

  VkShaderModuleCreateInfo mi{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  mi.codeSize = es->size_words * 4;
  mi.pCode = es->words;
  VkShaderModule mod;
  check(f_.vkCreateShaderModule(device_, &mi, nullptr, &mod), "vkCreateShaderModule");
  std::vector<VkSpecializationMapEntry> entries(spec.size());
  for (size_t i = 0; i < spec.size(); ++i)
    entries[i] = {static_cast<uint32_t>(i), static_cast<uint32_t>(i * 4), 4};
  VkSpecializationInfo si{};
  si.mapEntryCount = static_cast<uint32_t>(entries.size());
  si.pMapEntries = entries.data();
  si.dataSize = spec.size() * 4;
  si.pData = spec.data();
  VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  ci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  ci.stage.module = mod;
  ci.stage.pName = "main";
  ci.stage.pSpecializationInfo = spec.empty() ? nullptr : &si;
  ci.layout = p->layout;
  VkResult r = f_.vkCreateComputePipelines(device_, pipeline_cache_, 1, &ci, nullptr, &p->pipeline);
  f_.vkDestroyShaderModule(device_, mod, nullptr);
  check(r, ("vkCreateComputePipelines(" + key + ")").c_str());
  pipeline_cache_dirty_ = true;
  return *pipelines_.emplace(key, std::move(p)).first->second;
}

void Context::dispatch(const char* kernel, Pipeline& p, const std::vector<BindRange>& binds, const void* push,
                       uint32_t push_size, uint64_t gx, uint64_t gy, uint64_t gz) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto fail = [&](const std::string& why) { throw Error(std::string("vulkan ") + kernel + ": " + why); };
  if (binds.size() != p.num_bindings)
    fail("binds " + std::to_string(binds.size()) + " buffers, pipeline " + p.key + " has " +
         std::to_string(p.num_bindings));
  if (push_size != p.push_size)
    fail("push constants of " + std::to_string(push_size) + " bytes, pipeline " + p.key + " expects " +
         std::to_string(p.push_size));
  for (size_t i = 0; i < binds.size(); ++i) {
    const BindRange& b = binds[i];
    if (!b.buffer || b.size == 0) fail("binding " + std::to_string(i) + " is empty");
    if (b.size > limits_.max_storage_buffer_range)
      fail("binding " + std::to_string(i) + " spans " + mib(b.size) + " MiB, more than maxStorageBufferRange");
    if (b.offset % limits_.storage_align) fail("binding " + std::to_string(i) + " offset is misaligned");
  }
  if (gx == 0 || gy == 0 || gz == 0) return;
  if (gx > UINT32_MAX || gy > UINT32_MAX || gz > UINT32_MAX) fail("workgroup grid too large");

  VkDescriptorSet set = allocate_set(p);
  VkDescriptorBufferInfo infos[kMaxBindings];
  VkWriteDescriptorSet writes[kMaxBindings];
  for (uint32_t i = 0; i < p.num_bindings; ++i) {
    infos[i] = {binds[i].buffer, binds[i].offset, binds[i].size};
    writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
    writes[i].dstSet = set;
    writes[i].dstBinding = i;
    writes[i].descriptorCount = 1;
    writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
    writes[i].pBufferInfo = &infos[i];
  }
  f_.vkUpdateDescriptorSets(device_, p.num_bindings, writes, 0, nullptr);

  VkCommandBuffer c = cmd();
  bool hazard = need_barrier_ || (barrier_every_dispatch_ && !since_barrier_.empty());
  for (size_t i = 0; i < binds.size() && !hazard; ++i) {
    const bool w = (p.written_bindings >> i) & 1u;
    for (const Access& a : since_barrier_)
      if (a.buffer == binds[i].buffer && a.begin < binds[i].offset + binds[i].size && binds[i].offset < a.end &&
          (w || a.write)) {
        hazard = true;
        break;
      }
  }
  if (hazard) emit_barrier(c);
  f_.vkCmdBindPipeline(c, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
  f_.vkCmdBindDescriptorSets(c, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
  uint8_t data[256];
  memcpy(data, push, push_size);
  const uint64_t mx = limits_.max_group_count[0], my = limits_.max_group_count[1], mz = limits_.max_group_count[2];
  uint32_t pieces = 0;
  for (uint64_t z = 0; z < gz; z += mz)
    for (uint64_t y = 0; y < gy; y += my)
      for (uint64_t x = 0; x < gx; x += mx) {
        // Pieces touch disjoint outputs, but a barrier keeps the synchronization validation
        // (which sees whole bindings) quiet; pieces only exist for very large grids.
        if (pieces > 0) emit_barrier(c);
        uint32_t base[3] = {static_cast<uint32_t>(x), static_cast<uint32_t>(y), static_cast<uint32_t>(z)};
        memcpy(data, base, sizeof base);
        f_.vkCmdPushConstants(c, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size, data);
        f_.vkCmdDispatch(c, static_cast<uint32_t>(std::min(mx, gx - x)), static_cast<uint32_t>(std::min(my, gy - y)),
                         static_cast<uint32_t>(std::min(mz, gz - z)));
        ++pieces;
      }
  for (size_t i = 0; i < binds.size(); ++i)
    since_barrier_.push_back(
        {binds[i].buffer, binds[i].offset, binds[i].offset + binds[i].size, bool((p.written_bindings >> i) & 1u)});
  rec_dispatches_ += pieces;
  if (recording_) program_dispatches_ += pieces;
  if (recording_ && query_pool_ && queries_used_ < query_capacity_) {
    // With AIT_VK_BARRIERS=all, consecutive timestamps bracket one dispatch; otherwise a
    // dispatch's time is when it finished after the previous one (overlap goes to the earlier).
    f_.vkCmdWriteTimestamp(c, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, query_pool_, queries_used_++);
    query_labels_.push_back(std::string(kernel) + " " + p.key + " grid " + std::to_string(gx) + "x" +
                            std::to_string(gy) + "x" + std::to_string(gz));
  }
  if (rec_dispatches_ >= kMaxDispatchesPerSubmit && !recording_) submit(false);
}

// ---- profiling ----

void Context::init_profiling() {
  const char* env = getenv("AIT_VK_PROFILE");
  if (!env || !*env || strcmp(env, "0") == 0) return;
  const uint32_t bits = timestamp_bits_;
  if (bits == 0 || props_.limits.timestampPeriod <= 0) {
    fprintf(stderr, "ait vulkan: AIT_VK_PROFILE: %s has no timestamps on its compute queue\n", info_.name.c_str());
    return;
  }
  timestamp_mask_ = bits >= 64 ? ~0ull : ((1ull << bits) - 1);
  tick_ns_ = props_.limits.timestampPeriod;
  query_capacity_ = 2 * kMaxDispatchesPerSubmit;
  VkQueryPoolCreateInfo ci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
  ci.queryType = VK_QUERY_TYPE_TIMESTAMP;
  ci.queryCount = query_capacity_;
  check(f_.vkCreateQueryPool(device_, &ci, nullptr, &query_pool_), "vkCreateQueryPool");
}

void Context::collect_profile() {
  if (!profile_pending_ || program_.pending) return;
  profile_pending_ = false;
  std::vector<uint64_t> t(queries_used_);
  if (f_.vkGetQueryPoolResults(device_, query_pool_, 0, queries_used_, t.size() * 8, t.data(), 8,
                               VK_QUERY_RESULT_64_BIT) != VK_SUCCESS)
    return;
  for (uint32_t i = 1; i < queries_used_; ++i) {
    auto& e = profile_[query_labels_[i]];
    e.first += double((t[i] - t[i - 1]) & timestamp_mask_) * tick_ns_ * 1e-6;
    e.second += 1;
  }
  ++profiled_runs_;
}

void Context::print_profile() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (!query_pool_) return;
  wait_frame(program_);
  collect_profile();
  if (profiled_runs_ == 0) return;
  const double runs = double(profiled_runs_);
  double total = 0;
  std::map<std::string, std::pair<double, uint64_t>> by_kernel;
  for (auto& [label, e] : profile_) {
    total += e.first;
    auto& k = by_kernel[label.substr(0, label.find(' '))];
    k.first += e.first;
    k.second += e.second;
  }
  auto print = [&](const char* title, const std::map<std::string, std::pair<double, uint64_t>>& m, size_t top) {
    std::vector<std::pair<std::string, std::pair<double, uint64_t>>> v(m.begin(), m.end());
    std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.first > b.second.first; });
    fprintf(stderr, "%s\n", title);
    for (size_t i = 0; i < v.size() && i < top; ++i)
      fprintf(stderr, "  %9.3f ms %5.1f%% %6.1f x  %s\n", v[i].second.first / runs, 100 * v[i].second.first / total,
              double(v[i].second.second) / runs, v[i].first.c_str());
  };
  fprintf(stderr,
          "ait vulkan profile (%s): %.0f runs of a recorded program, %.3f ms per run; %u dispatches, %u barriers "
          "(%s)\n",
          info_.name.c_str(), runs, total / runs, program_dispatches_, program_barriers_,
          barrier_every_dispatch_ ? "AIT_VK_BARRIERS=all" : "on hazards");
  print(" by kernel (ms per run, share, dispatches per run):", by_kernel, 100);
  print(" by dispatch (kernel, pipeline, grid):", profile_, 60);
}

// ---- pipeline cache ----

namespace {
std::string cache_dir() {
  const char* x = getenv("XDG_CACHE_HOME");
  std::string base;
  if (x && *x)
    base = x;
  else if (const char* h = getenv("HOME"); h && *h)
    base = std::string(h) + "/.cache";
  else
    return "";
  return base + "/ait";
}
void mkdirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i)
    if (i == path.size() || path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
}
}  // namespace

void Context::load_pipeline_cache() {
  const char* off = getenv("AIT_VK_PIPELINE_CACHE");
  std::vector<char> data;
  if (!(off && strcmp(off, "0") == 0)) {
    std::string dir = cache_dir();
    if (!dir.empty()) {
      char name[96];
      snprintf(name, sizeof name, "/pipeline-cache-%04x-%04x.bin", info_.vendor_id, info_.device_id);
      pipeline_cache_path_ = dir + name;
      std::ifstream in(pipeline_cache_path_, std::ios::binary);
      if (in) data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  // Header: length, version, vendorID, deviceID, pipelineCacheUUID. Use the data only when it
  // was written by this very device and driver.
  const VkPhysicalDeviceProperties& p = props_;
  bool ok = data.size() >= 16 + VK_UUID_SIZE;
  if (ok) {
    uint32_t h[4];
    memcpy(h, data.data(), sizeof h);
    ok = h[0] >= 16 + VK_UUID_SIZE && h[1] == VK_PIPELINE_CACHE_HEADER_VERSION_ONE && h[2] == p.vendorID &&
         h[3] == p.deviceID && memcmp(data.data() + 16, p.pipelineCacheUUID, VK_UUID_SIZE) == 0;
  }
  VkPipelineCacheCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  if (ok) {
    ci.initialDataSize = data.size();
    ci.pInitialData = data.data();
  }
  if (f_.vkCreatePipelineCache(device_, &ci, nullptr, &pipeline_cache_) != VK_SUCCESS) {
    ci.initialDataSize = 0;
    ci.pInitialData = nullptr;
    if (f_.vkCreatePipelineCache(device_, &ci, nullptr, &pipeline_cache_) != VK_SUCCESS)
      pipeline_cache_ = VK_NULL_HANDLE;
  }
}

void Context::save_pipeline_cache() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (!pipeline_cache_ || !pipeline_cache_dirty_ || pipeline_cache_path_.empty()) return;
  size_t size = 0;
  if (f_.vkGetPipelineCacheData(device_, pipeline_cache_, &size, nullptr) != VK_SUCCESS || size == 0) return;
  std::vector<char> data(size);
  if (f_.vkGetPipelineCacheData(device_, pipeline_cache_, &size, data.data()) != VK_SUCCESS) return;
  mkdirs(pipeline_cache_path_.substr(0, pipeline_cache_path_.rfind('/')));
  std::string tmp = pipeline_cache_path_ + ".tmp" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) return;
    out.write(data.data(), static_cast<std::streamsize>(size));
    if (!out) {
      std::remove(tmp.c_str());
      return;
    }
  }
  if (std::rename(tmp.c_str(), pipeline_cache_path_.c_str()) != 0) std::remove(tmp.c_str());
  pipeline_cache_dirty_ = false;
}

}  // namespace vk
}  // namespace ait

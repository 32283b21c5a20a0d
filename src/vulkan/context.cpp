// A Vulkan device opened for compute: queue, limits, and the parts of the runtime that use it.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/error.h"
#include "vulkan/vk_runtime.h"

// Vulkan structs are initialised as `T x{sType}` (the rest zeroed), the usual idiom.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ait {
namespace vk {

namespace {
std::mutex g_ctx_mu;
std::vector<Context*> g_contexts;  // for the exit-time pipeline-cache save and profile
void at_exit_all() {
  std::lock_guard<std::mutex> lock(g_ctx_mu);
  for (Context* c : g_contexts) c->at_exit();
}
bool env_is(const char* name, const char* value) {
  const char* v = getenv(name);
  return v && strcmp(v, value) == 0;
}
}  // namespace

Context::Context(Instance* inst, int index) : fi_(inst->fns()) {
  info_ = inst->devices().at(static_cast<size_t>(index));  // usable: select_device checked
  phys_ = inst->physical(index);
  create_device();
  read_limits();
  VkPhysicalDeviceMemoryProperties mem_props;
  fi_.vkGetPhysicalDeviceMemoryProperties(phys_, &mem_props);
  memory_ = std::make_unique<Memory>(f_, device_, info_, limits_, mem_props, mu_);
  memory_->on_pressure = [this] { sync(); };
  pipelines_ = std::make_unique<Pipelines>(f_, device_, info_, limits_, props_);
  profiler_ = std::make_unique<Profiler>(f_, device_, info_, props_, timestamp_bits_);
  create_segments();
  dummy_ = alloc(kDummySlices * 64);
  slots_ = alloc(kMaxSlots);
  staging_ = memory_->host_buffer(staging_size_, &staging_ptr_);
  barrier_every_dispatch_ = env_is("AIT_VK_BARRIERS", "all");
  replay_ = !env_is("AIT_VK_REPLAY", "0");
  std::lock_guard<std::mutex> lock(g_ctx_mu);
  static bool registered = false;
  if (!registered) {
    registered = true;
    std::atexit(at_exit_all);
  }
  g_contexts.push_back(this);
}

Context::~Context() {
  // Contexts live for the process (see backend.cpp); this is for completeness only.
  {
    std::lock_guard<std::mutex> lock(g_ctx_mu);
    g_contexts.erase(std::remove(g_contexts.begin(), g_contexts.end(), this), g_contexts.end());
  }
  at_exit();
  if (device_) f_.vkDeviceWaitIdle(device_);
}

void Context::at_exit() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  pipelines_->save_cache();
  wait_all();
  profiler_->print(barrier_every_dispatch_);
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
  // 16-bit storage buffers (the fp16 operands of matmul_fp16), only where the device has them:
  // fp32 work never needs a feature.
  VkPhysicalDevice16BitStorageFeatures s16{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  s16.storageBuffer16BitAccess = info_.storage_16bit ? VK_TRUE : VK_FALSE;
  if (info_.storage_16bit) dci.pNext = &s16;
  check(fi_.vkCreateDevice(phys_, &dci, nullptr, &device_), "vkCreateDevice");
#define AIT_LOAD_DEVICE(fn)                                                  \
  f_.fn = reinterpret_cast<PFN_##fn>(fi_.vkGetDeviceProcAddr(device_, #fn)); \
  if (!f_.fn) throw Error("vulkan: the driver of " + info_.name + " does not provide " #fn);
  AIT_VK_DEVICE_FNS(AIT_LOAD_DEVICE)
#undef AIT_LOAD_DEVICE
  f_.vkGetDeviceQueue(device_, queue_family_, 0, &queue_);
  storage_16bit_ = info_.storage_16bit;
}

void Context::read_limits() {
  fi_.vkGetPhysicalDeviceProperties(phys_, &props_);
  const VkPhysicalDeviceLimits& l = props_.limits;
  limits_.max_storage_buffer_range = l.maxStorageBufferRange;
  limits_.max_allocation = info_.max_memory_allocation_size ? info_.max_memory_allocation_size : (1ull << 30);
  limits_.storage_align = std::max<uint64_t>(4, l.minStorageBufferOffsetAlignment);
  // (at most 256: a Command holds the push constants in 256 bytes)
  limits_.max_push_constants = std::min<uint32_t>(256, l.maxPushConstantsSize);
  for (int i = 0; i < 3; ++i) limits_.max_group_count[i] = l.maxComputeWorkGroupCount[i];
  limits_.max_shared_memory = l.maxComputeSharedMemorySize;
}

void Context::create_segments() {
  VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pci.queueFamilyIndex = queue_family_;
  check(f_.vkCreateCommandPool(device_, &pci, nullptr, &cmd_pool_), "vkCreateCommandPool");
  segments_.resize(kCachedSegments);
  for (Segment& s : segments_) {
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = cmd_pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    check(f_.vkAllocateCommandBuffers(device_, &ai, &s.cmd), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    check(f_.vkCreateFence(device_, &fci, nullptr, &s.fence), "vkCreateFence");
  }
}

std::shared_ptr<VkBuf> Context::alloc(size_t n) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return memory_->alloc(n);
}

Pipeline& Context::pipeline(const char* shader, uint32_t num_bindings, uint32_t push_size,
                            const std::vector<uint32_t>& spec) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return pipelines_->get(shader, num_bindings, push_size, spec);
}

const VkBuf& Context::vkbuf(const Buffer& b, const char* kernel) const {
  auto* v = dynamic_cast<const VkBuf*>(&b);
  if (!v || v->mem != memory_.get())
    throw Error(std::string("vulkan ") + kernel + ": a buffer of another backend or device was passed");
  return *v;
}

size_t Context::max_binding_elems() const {
  uint64_t align = memory_->alignment();
  uint64_t r = limits_.max_storage_buffer_range / align * align;
  return static_cast<size_t>(r / 4);
}

BindRange Context::bind(const Buffer& b, const char* kernel, size_t elem_off, size_t elems) {
  const VkBuf& v = vkbuf(b, kernel);
  auto fail = [&](const std::string& why) { throw Error(std::string("vulkan ") + kernel + ": " + why); };
  if (elem_off > v.size) fail("binding offset past the end of a buffer");
  if (elems == SIZE_MAX) elems = v.size - elem_off;
  if (elems > v.size - elem_off)
    fail("binding range past the end of a buffer (" + std::to_string(elem_off) + " + " + std::to_string(elems) + " > " +
         std::to_string(v.size) + ")");
  if (elems == 0) return dummy();
  VkDeviceSize bytes = static_cast<VkDeviceSize>(elems) * 4;
  if (bytes > limits_.max_storage_buffer_range) {
    char buf[160];
    snprintf(buf, sizeof buf, "a tensor of %.1f MiB exceeds the %.1f MiB one binding may span on ", bytes / 1048576.0,
             limits_.max_storage_buffer_range / 1048576.0);
    fail(buf + info_.name + " (maxStorageBufferRange)");
  }
  VkDeviceSize off = v.offset + static_cast<VkDeviceSize>(elem_off) * 4;
  if (off % limits_.storage_align != 0) fail("binding offset not aligned to minStorageBufferOffsetAlignment");
  return {v.buffer, off, bytes};
}

}  // namespace vk
}  // namespace ait

// Compute pipelines from the embedded SPIR-V modules, which bindings each may write, and the
// driver's pipeline cache on disk.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "core/error.h"
#include "vulkan/vk_runtime.h"

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

Pipelines::Pipelines(const DeviceFns& f, VkDevice device, const DeviceInfo& info, const Limits& limits,
                     const VkPhysicalDeviceProperties& props)
    : f_(f), device_(device), info_(info), limits_(limits) {
  load_cache(props);
}

// One descriptor-set layout (`num_bindings` storage buffers) and pipeline layout per shape.
std::pair<VkDescriptorSetLayout, VkPipelineLayout> Pipelines::layout(uint32_t num_bindings, uint32_t push_size) {
  uint64_t key = (static_cast<uint64_t>(num_bindings) << 32) | push_size;
  auto it = layouts_.find(key);
  if (it != layouts_.end()) return it->second;
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
  VkDescriptorSetLayout set_layout;
  check(f_.vkCreateDescriptorSetLayout(device_, &dl, nullptr, &set_layout), "vkCreateDescriptorSetLayout");
  VkPushConstantRange pr{VK_SHADER_STAGE_COMPUTE_BIT, 0, push_size};
  VkPipelineLayoutCreateInfo pl{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  pl.setLayoutCount = 1;
  pl.pSetLayouts = &set_layout;
  pl.pushConstantRangeCount = 1;
  pl.pPushConstantRanges = &pr;
  VkPipelineLayout pipeline_layout;
  check(f_.vkCreatePipelineLayout(device_, &pl, nullptr, &pipeline_layout), "vkCreatePipelineLayout");
  return layouts_[key] = {set_layout, pipeline_layout};
}

namespace {
const EmbeddedShader& embedded(const char* shader) {
  for (size_t i = 0; i < kShaderCount; ++i)
    if (kShaders[i].name && strcmp(kShaders[i].name, shader) == 0) return kShaders[i];
  throw Error(std::string("vulkan: shader '") + shader + "' is not embedded in this build");
}
}  // namespace

Pipeline& Pipelines::get(const char* shader, uint32_t num_bindings, uint32_t push_size,
                         const std::vector<uint32_t>& spec) {
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
  const EmbeddedShader& es = embedded(shader);
  auto p = std::make_unique<Pipeline>();
  p->key = key;
  p->num_bindings = num_bindings;
  p->push_size = push_size;
  p->written_bindings = spirv_written_bindings(es.words, es.size_words);
  std::tie(p->set_layout, p->layout) = layout(num_bindings, push_size);

  VkShaderModuleCreateInfo mi{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  mi.codeSize = es.size_words * 4;
  mi.pCode = es.words;
  VkShaderModule mod;
  check(f_.vkCreateShaderModule(device_, &mi, nullptr, &mod), "vkCreateShaderModule");
  std::vector<VkSpecializationMapEntry> entries(spec.size());
  for (size_t i = 0; i < spec.size(); ++i) entries[i] = {static_cast<uint32_t>(i), static_cast<uint32_t>(i * 4), 4};
  VkSpecializationInfo si{static_cast<uint32_t>(entries.size()), entries.data(), spec.size() * 4, spec.data()};
  VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  ci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  ci.stage.module = mod;
  ci.stage.pName = "main";
  ci.stage.pSpecializationInfo = spec.empty() ? nullptr : &si;
  ci.layout = p->layout;
  VkResult r = f_.vkCreateComputePipelines(device_, cache_, 1, &ci, nullptr, &p->pipeline);
  f_.vkDestroyShaderModule(device_, mod, nullptr);
  check(r, ("vkCreateComputePipelines(" + key + ")").c_str());
  dirty_ = true;
  return *pipelines_.emplace(key, std::move(p)).first->second;
}

// ---- pipeline cache ----

namespace {
std::string cache_dir() {
  const char* x = getenv("XDG_CACHE_HOME");
  std::string base;
  if (x && *x) base = x;
  else if (const char* h = getenv("HOME"); h && *h) base = std::string(h) + "/.cache";
  else return "";
  return base + "/ait";
}
void mkdirs(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i)
    if (i == path.size() || path[i] == '/') mkdir(path.substr(0, i).c_str(), 0755);
}
}  // namespace

void Pipelines::load_cache(const VkPhysicalDeviceProperties& p) {
  const char* off = getenv("AIT_VK_PIPELINE_CACHE");
  std::vector<char> data;
  if (!(off && strcmp(off, "0") == 0)) {
    std::string dir = cache_dir();
    if (!dir.empty()) {
      char name[96];
      snprintf(name, sizeof name, "/pipeline-cache-%04x-%04x.bin", info_.vendor_id, info_.device_id);
      cache_path_ = dir + name;
      std::ifstream in(cache_path_, std::ios::binary);
      if (in) data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
  }
  // Header: length, version, vendorID, deviceID, pipelineCacheUUID. Use the data only when it
  // was written by this very device and driver.
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
  if (f_.vkCreatePipelineCache(device_, &ci, nullptr, &cache_) != VK_SUCCESS) {
    ci.initialDataSize = 0;
    ci.pInitialData = nullptr;
    if (f_.vkCreatePipelineCache(device_, &ci, nullptr, &cache_) != VK_SUCCESS) cache_ = VK_NULL_HANDLE;
  }
}

void Pipelines::save_cache() {
  if (!cache_ || !dirty_ || cache_path_.empty()) return;
  size_t size = 0;
  if (f_.vkGetPipelineCacheData(device_, cache_, &size, nullptr) != VK_SUCCESS || size == 0) return;
  std::vector<char> data(size);
  if (f_.vkGetPipelineCacheData(device_, cache_, &size, data.data()) != VK_SUCCESS) return;
  mkdirs(cache_path_.substr(0, cache_path_.rfind('/')));
  std::string tmp = cache_path_ + ".tmp" + std::to_string(getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) return;
    out.write(data.data(), static_cast<std::streamsize>(size));
    if (!out) {
      std::remove(tmp.c_str());
      return;
    }
  }
  if (std::rename(tmp.c_str(), cache_path_.c_str()) != 0) std::remove(tmp.c_str());
  dirty_ = false;
}

}  // namespace vk
}  // namespace ait

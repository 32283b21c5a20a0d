// Device discovery and selection (see device.h), in every build: the Vulkan side is reached
// through backend.h, which backend.cpp implements with Vulkan and no_backend.cpp without.
#include "vulkan/device.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "core/error.h"
#include "vulkan/backend.h"

namespace ait {

namespace {
const char* kNoVulkan = "no Vulkan loader/device found";

int type_rank(const std::string& t) {
  if (t == "discrete") return 0;
  if (t == "integrated") return 1;
  if (t == "virtual") return 2;
  if (t == "cpu") return 3;
  return 4;
}

std::string human_bytes(uint64_t b) {
  char buf[32];
  if (b >= (1ull << 30)) snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1ull << 30));
  else snprintf(buf, sizeof buf, "%.0f MiB", static_cast<double>(b) / (1ull << 20));
  return buf;
}

// The usable device of the best type rank up to max_rank (the first of equals), or -1.
int best_usable(const std::vector<DeviceInfo>& devs, int max_rank) {
  int best = -1;
  for (const DeviceInfo& d : devs)
    if (d.usable && type_rank(d.type) <= max_rank &&
        (best < 0 || type_rank(d.type) < type_rank(devs[static_cast<size_t>(best)].type)))
      best = d.index;
  return best;
}

int parse_index(const std::string& s, const std::string& spec) {
  if (s.empty() || s.size() > 6 || s.find_first_not_of("0123456789") != std::string::npos)
    throw Error("device '" + spec + "': expected vulkan:N with N a device index (see `ait devices`)");
  return std::stoi(s);
}
// The 16-bit and cooperative-matrix line of a device's description.
std::string precision_features(const DeviceInfo& d) {
  auto yes_no = [](bool b) { return b ? "yes" : "no"; };
  std::string s = std::string("16-bit storage ") + yes_no(d.storage_16bit) + ", float16 arithmetic " +
                  yes_no(d.shader_float16) + ", VK_KHR_cooperative_matrix ";
  if (!d.coop_matrix_extension) return s + "absent";
  if (d.coop_matrix_shapes.empty()) return s + "present, no shapes reported";
  s += "shapes:";
  for (size_t i = 0; i < d.coop_matrix_shapes.size(); ++i)
    s += (i ? ", " : " ") + describe_coop_shape(d.coop_matrix_shapes[i]);
  return s;
}
}  // namespace

std::string coop_component_name(uint32_t type) {
  // VkComponentTypeKHR (VK_KHR_cooperative_matrix, VK_KHR_shader_bfloat16, VK_EXT_shader_float8).
  static const char* const kCore[] = {"f16", "f32", "f64", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64"};
  if (type < sizeof kCore / sizeof kCore[0]) return kCore[type];
  if (type == 1000141000u) return "bf16";
  if (type == 1000491002u) return "fp8e4m3";
  if (type == 1000491003u) return "fp8e5m2";
  return "type " + std::to_string(type);
}

std::string describe_coop_shape(const CoopMatrixShape& s) {
  // VkScopeKHR: 1 device, 2 workgroup, 3 subgroup, 5 queue family.
  const char* scope = s.scope == 3 ? "subgroup" : s.scope == 2 ? "workgroup" : s.scope == 1 ? "device" : "queue-family";
  return std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k) + " " +
         coop_component_name(s.a_type) + "*" + coop_component_name(s.b_type) + "+" + coop_component_name(s.c_type) +
         "->" + coop_component_name(s.result_type) + " " + scope + (s.saturating ? " saturating" : "");
}

const char* precision_name(Precision p) { return p == Precision::Mixed ? "mixed" : "fp32"; }

Precision resolve_precision(Kernels& device, Precision requested, std::string* note) {
  if (note) note->clear();
  if (requested == Precision::Fp32) return Precision::Fp32;
  std::string why;
  const DeviceInfo* d = backend::info_of(device);
  if (!d) why = "the CPU backend computes in fp32 only";
  else if (!d->coop_matrix_extension) why = d->name + " does not offer VK_KHR_cooperative_matrix";
  else
    why = d->name + " offers VK_KHR_cooperative_matrix (" + std::to_string(d->coop_matrix_shapes.size()) +
          " shapes), but this build has no cooperative-matrix matmul yet";
  if (note) *note = "--precision mixed: " + why + "; running fp32";
  return Precision::Fp32;
}

std::vector<DeviceInfo> list_devices() {
  std::string err;
  return backend::devices(&err);
}

std::string describe_devices() {
  std::ostringstream os;
  os << "cpu       the CPU backend (always available)\n";
  std::string err;
  const std::vector<DeviceInfo> devs = backend::devices(&err);
  if (devs.empty()) {
    os << "vulkan    " << kNoVulkan << ": " << err << "\n";
    return os.str();
  }
  for (const DeviceInfo& d : devs) {
    os << "vulkan:" << d.index << "  " << d.name << "  [" << d.type << "]";
    if (!d.usable) os << "  UNUSABLE: " << d.unusable_reason;
    os << "\n";
    os << "          Vulkan " << d.api_version_str;
    if (!d.driver_name.empty()) os << ", driver " << d.driver_name;
    if (!d.driver_info.empty()) os << " (" << d.driver_info << ")";
    os << ", vendor 0x" << std::hex << d.vendor_id << " device 0x" << d.device_id << std::dec << "\n";
    os << "          memory heaps:";
    for (size_t i = 0; i < d.heaps.size(); ++i)
      os << (i ? "," : "") << " " << human_bytes(d.heaps[i].size)
         << (d.heaps[i].device_local ? " device-local" : " host");
    os << "\n";
    os << "          subgroup " << d.subgroup_size << ", shared memory " << d.max_shared_memory / 1024
       << " KiB, maxStorageBufferRange " << human_bytes(d.max_storage_buffer_range) << ", maxMemoryAllocationSize "
       << human_bytes(d.max_memory_allocation_size) << ", maxComputeWorkGroupCount " << d.max_workgroup_count[0]
       << " x " << d.max_workgroup_count[1] << " x " << d.max_workgroup_count[2] << "\n";
    os << "          " << precision_features(d) << "\n";
  }
  return os.str();
}

Kernels* select_device(const std::string& spec, std::string* note) {
  if (note) note->clear();
  if (spec == "cpu") return &cpu();
  bool is_auto = spec == "auto";
  bool is_vulkan = spec == "vulkan" || spec.rfind("vulkan:", 0) == 0;
  if (!is_auto && !is_vulkan) throw Error("unknown device '" + spec + "': use cpu, vulkan, vulkan:N or auto");

  std::string err;
  const std::vector<DeviceInfo> devs = backend::devices(&err);
  if (devs.empty()) {
    if (is_auto) {
      if (note) *note = std::string(kNoVulkan) + ", using CPU (" + err + ")";
      return &cpu();
    }
    throw Error(std::string(kNoVulkan) + " (" + err + ")");
  }

  if (is_vulkan) {
    int index = -1;
    if (spec.size() > 7) {
      index = parse_index(spec.substr(7), spec);
    } else if (const char* env = getenv("AIT_VK_DEVICE"); env && *env) {
      index = parse_index(env, std::string("AIT_VK_DEVICE=") + env);
    } else {
      index = best_usable(devs, type_rank("other"));  // any type
      if (index < 0)
        throw Error(std::string(kNoVulkan) + ": no usable Vulkan device (" + devs[0].name + ": " +
                    devs[0].unusable_reason + ")");
    }
    if (index < 0 || static_cast<size_t>(index) >= devs.size())
      throw Error("vulkan:" + std::to_string(index) + ": no such device (" + std::to_string(devs.size()) +
                  " Vulkan device(s); see `ait devices`)");
    const DeviceInfo& d = devs[static_cast<size_t>(index)];
    if (!d.usable)
      throw Error("vulkan:" + std::to_string(index) + " (" + d.name + ") is unusable: " + d.unusable_reason);
    return backend::open(index);
  }

  // auto: a GPU (discrete, integrated, virtual), never a CPU-type device.
  int best = best_usable(devs, type_rank("virtual"));
  if (best < 0) {
    if (note) {
      *note = std::string(kNoVulkan) + ", using CPU";
      for (const DeviceInfo& d : devs)
        if (d.usable)
          *note += " (vulkan:" + std::to_string(d.index) + " " + d.name + " is a " + d.type +
                   "-type device: select it explicitly to use it)";
    }
    return &cpu();
  }
  try {
    return backend::open(best);
  } catch (const Error& e) {
    if (note) *note = std::string(kNoVulkan) + ", using CPU (" + e.what() + ")";
    return &cpu();
  }
}

bool vk_validation_enabled() { return backend::validation_enabled(); }
std::vector<std::string> vk_validation_messages() { return backend::validation_messages(); }
void vk_clear_validation_messages() { backend::clear_validation_messages(); }

}  // namespace ait

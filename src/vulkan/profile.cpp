// GPU time per dispatch (env AIT_VK_PROFILE=1): every recorded segment writes a timestamp after
// each dispatch; the runs of a segment from its cache (not the run that recorded it, which pays
// for first use) are summed by label and printed at exit.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "vulkan/vk_runtime.h"

// Vulkan structs are initialised as `T x{sType}` (the rest zeroed), the usual idiom.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ait {
namespace vk {

Profiler::Profiler(const DeviceFns& f, VkDevice device, const DeviceInfo& info, const VkPhysicalDeviceProperties& props,
                   uint32_t timestamp_bits)
    : f_(f), device_(device), info_(info) {
  const char* env = getenv("AIT_VK_PROFILE");
  if (!env || !*env || strcmp(env, "0") == 0) return;
  if (timestamp_bits == 0 || props.limits.timestampPeriod <= 0) {
    fprintf(stderr, "ait vulkan: AIT_VK_PROFILE: %s has no timestamps on its compute queue\n", info_.name.c_str());
    return;
  }
  mask_ = timestamp_bits >= 64 ? ~0ull : ((1ull << timestamp_bits) - 1);
  tick_ns_ = props.limits.timestampPeriod;
  on_ = true;
}

Profiler::~Profiler() = default;

VkQueryPool Profiler::make_pool(uint32_t dispatches) {
  if (!on_) return VK_NULL_HANDLE;
  VkQueryPoolCreateInfo ci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
  ci.queryType = VK_QUERY_TYPE_TIMESTAMP;
  ci.queryCount = dispatches + 1;
  VkQueryPool pool;
  check(f_.vkCreateQueryPool(device_, &ci, nullptr, &pool), "vkCreateQueryPool");
  max_dispatches_ = std::max(max_dispatches_, dispatches);
  return pool;
}

void Profiler::destroy_pool(VkQueryPool pool) {
  if (pool) f_.vkDestroyQueryPool(device_, pool, nullptr);
}

void Profiler::add_run(VkQueryPool pool, const std::vector<std::string>& labels) {
  if (!pool || labels.empty()) return;
  const uint32_t n = static_cast<uint32_t>(labels.size()) + 1;
  std::vector<uint64_t> t(n);
  if (f_.vkGetQueryPoolResults(device_, pool, 0, n, t.size() * 8, t.data(), 8, VK_QUERY_RESULT_64_BIT) != VK_SUCCESS)
    return;
  // With AIT_VK_BARRIERS=all consecutive timestamps bracket one dispatch; otherwise a dispatch's
  // time is when it finished after the previous one (overlap goes to the earlier).
  for (uint32_t i = 1; i < n; ++i) {
    auto& e = by_label_[labels[i - 1]];
    e.first += double((t[i] - t[i - 1]) & mask_) * tick_ns_ * 1e-6;
    e.second += 1;
  }
  ++runs_;
}

namespace {
using Table = std::map<std::string, std::pair<double, uint64_t>>;
void print_table(const char* title, const Table& m, size_t top, double total) {
  std::vector<std::pair<std::string, std::pair<double, uint64_t>>> v(m.begin(), m.end());
  std::sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.second.first > b.second.first; });
  fprintf(stderr, "%s\n", title);
  for (size_t i = 0; i < v.size() && i < top; ++i)
    fprintf(stderr, "  %10.3f ms %5.1f%% %8llu x  %s\n", v[i].second.first, 100 * v[i].second.first / total,
            static_cast<unsigned long long>(v[i].second.second), v[i].first.c_str());
}
}  // namespace

void Profiler::print(bool barrier_every_dispatch) {
  if (runs_ == 0) return;
  double total = 0;
  Table by_kernel;
  for (auto& [label, e] : by_label_) {
    total += e.first;
    auto& k = by_kernel[label.substr(0, label.find(' '))];
    k.first += e.first;
    k.second += e.second;
  }
  fprintf(stderr, "ait vulkan profile (%s): %llu replayed segments, %.3f ms of GPU time (barriers %s)\n",
          info_.name.c_str(), static_cast<unsigned long long>(runs_), total,
          barrier_every_dispatch ? "after every dispatch, AIT_VK_BARRIERS=all" : "on hazards");
  print_table(" by kernel (ms in all, share, dispatches):", by_kernel, 100, total);
  print_table(" by dispatch (kernel, pipeline, grid):", by_label_, 60, total);
}

}  // namespace vk
}  // namespace ait

// Device memory: blocks sub-allocated best fit, dedicated allocations, deferred destruction.
#include <algorithm>
#include <cstdio>
#include <set>

#include "core/error.h"
#include "vulkan/vk_runtime.h"

// Vulkan structs are initialised as `T x{sType}` (the rest zeroed), the usual idiom.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ait {
namespace vk {

namespace {
std::string mib(uint64_t bytes) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.1f", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}
VkDeviceSize round_up(VkDeviceSize x, VkDeviceSize a) { return (x + a - 1) / a * a; }
constexpr VkBufferUsageFlags kDeviceUsage =
    VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT;
}  // namespace

// One large device-local allocation with one VkBuffer over all of it; buffers are sub-ranges.
// Free space is a coalescing free list indexed by offset (to merge neighbours) and by (size,
// offset): the smallest range that fits, the lowest one among equals. That choice depends only
// on which ranges are free, not on the order they were freed in, so a step that starts with the
// same live buffers gets the same addresses every time: what lets the stream reuse its recorded
// command buffers (vk_runtime.h).
struct Block {
  VkDeviceMemory memory = VK_NULL_HANDLE;
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize size = 0;
  std::map<VkDeviceSize, VkDeviceSize> by_off;              // offset -> size
  std::set<std::pair<VkDeviceSize, VkDeviceSize>> by_size;  // (size, offset)
  size_t live = 0;

  void add_free(VkDeviceSize off, VkDeviceSize bytes) {
    by_off[off] = bytes;
    by_size.insert({bytes, off});
  }
  void remove_free(std::map<VkDeviceSize, VkDeviceSize>::iterator it) {
    by_size.erase({it->second, it->first});
    by_off.erase(it);
  }
  // Returns the offset of a range of `bytes`, or UINT64_MAX when none fits.
  VkDeviceSize carve(VkDeviceSize bytes) {
    auto best = by_size.lower_bound({bytes, 0});
    if (best == by_size.end()) return UINT64_MAX;
    auto [sz, off] = *best;
    remove_free(by_off.find(off));
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
  if (mem && buffer != VK_NULL_HANDLE) mem->release(*this);
}

Memory::Memory(const DeviceFns& f, VkDevice device, const DeviceInfo& info, const Limits& limits,
               const VkPhysicalDeviceMemoryProperties& props, std::recursive_mutex& mu)
    : f_(f), device_(device), info_(info), limits_(limits), props_(props), mu_(mu) {
  VkBuffer probe;
  create_buffer(4096, kDeviceUsage, &probe);
  VkMemoryRequirements req;
  f_.vkGetBufferMemoryRequirements(device_, probe, &req);
  f_.vkDestroyBuffer(device_, probe, nullptr);
  const VkMemoryPropertyFlags lazy = VK_MEMORY_PROPERTY_LAZILY_ALLOCATED_BIT | VK_MEMORY_PROPERTY_PROTECTED_BIT;
  device_type_ = find_type(req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, lazy);
  if (device_type_ == UINT32_MAX) device_type_ = find_type(req.memoryTypeBits, 0, lazy);
  if (device_type_ == UINT32_MAX) throw Error("vulkan: no memory type for storage buffers on " + info_.name);
  const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
  host_type_ = find_type(req.memoryTypeBits, host | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, lazy);
  if (host_type_ == UINT32_MAX) host_type_ = find_type(req.memoryTypeBits, host, lazy);
  if (host_type_ == UINT32_MAX) throw Error("vulkan: no host-visible coherent memory on " + info_.name);
  heap_size_ = props_.memoryHeaps[props_.memoryTypes[device_type_].heapIndex].size;
  align_ = std::max<VkDeviceSize>({256, limits_.storage_align, req.alignment});
  // Blocks of heap/16, clamped to [16 MiB, 256 MiB] and to maxMemoryAllocationSize.
  VkDeviceSize bs = std::clamp<VkDeviceSize>(heap_size_ / 16, 16ull << 20, 256ull << 20);
  bs = std::min<VkDeviceSize>(bs, limits_.max_allocation);
  block_size_ = bs / align_ * align_;
}

Memory::~Memory() {
  // Contexts live for the process (see backend.cpp); the device is idle when this runs.
  collect(UINT64_MAX, true);
}

uint32_t Memory::find_type(uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) const {
  for (uint32_t i = 0; i < props_.memoryTypeCount; ++i) {
    VkMemoryPropertyFlags fl = props_.memoryTypes[i].propertyFlags;
    if ((bits & (1u << i)) && (fl & want) == want && (fl & avoid) == 0) return i;
  }
  return UINT32_MAX;
}

void Memory::create_buffer(VkDeviceSize bytes, VkBufferUsageFlags usage, VkBuffer* buf) {
  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = bytes;
  bci.usage = usage;
  bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(f_.vkCreateBuffer(device_, &bci, nullptr, buf), "vkCreateBuffer");
}

void Memory::throw_oom(VkDeviceSize need) {
  VkDeviceSize have = heap_size_ > heap_used_ ? heap_size_ - heap_used_ : 0;
  throw Error("out of device memory: needed " + mib(need) + " MiB, have " + mib(have) + " MiB (" + info_.name + ")");
}

VkDeviceMemory Memory::allocate(VkDeviceSize bytes, uint32_t type, bool count_heap) {
  if (count_heap && heap_used_ + bytes > heap_size_) throw_oom(bytes);
  VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  ai.allocationSize = bytes;
  ai.memoryTypeIndex = type;
  VkDeviceMemory mem = VK_NULL_HANDLE;
  VkResult r = f_.vkAllocateMemory(device_, &ai, nullptr, &mem);
  if ((r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) && count_heap) {
    // Release what finished work still holds (freed dedicated buffers, empty blocks) and retry.
    if (on_pressure) on_pressure();
    free_empty_blocks();
    r = f_.vkAllocateMemory(device_, &ai, nullptr, &mem);
  }
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY) throw_oom(bytes);
  check(r, "vkAllocateMemory");
  if (count_heap) heap_used_ += bytes;
  return mem;
}

void Memory::destroy(VkBuffer b, VkDeviceMemory m) {
  f_.vkDestroyBuffer(device_, b, nullptr);
  f_.vkFreeMemory(device_, m, nullptr);
  ++generation_;
}

// Returns the empty blocks to the heap (on_pressure has made the device idle).
void Memory::free_empty_blocks() {
  for (auto it = blocks_.begin(); it != blocks_.end();) {
    Block& b = **it;
    if (b.live == 0) {
      destroy(b.buffer, b.memory);
      heap_used_ -= b.size;
      it = blocks_.erase(it);
    } else {
      ++it;
    }
  }
}

// A device buffer over all of `mem` (`bytes`, counted in the heap); when that fails, frees `mem`.
VkBuffer Memory::buffer_over(VkDeviceMemory mem, VkDeviceSize bytes) {
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

Block* Memory::new_block(VkDeviceSize need) {
  auto b = std::make_unique<Block>();
  b->size = std::max(block_size_, round_up(need, align_));
  b->memory = allocate(b->size, device_type_, true);
  b->buffer = buffer_over(b->memory, b->size);
  b->add_free(0, b->size);
  blocks_.push_back(std::move(b));
  return blocks_.back().get();
}

std::shared_ptr<VkBuf> Memory::alloc(size_t n) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  auto buf = std::make_shared<VkBuf>(this, n);
  if (n == 0) return buf;
  if (n > (SIZE_MAX - align_) / 4) throw_oom(UINT64_MAX);
  VkDeviceSize bytes = round_up(static_cast<VkDeviceSize>(n) * 4, align_);
  if (bytes > heap_size_) throw_oom(bytes);
  buf->bytes = bytes;
  if (bytes > block_size_ / 2) {
    if (bytes > limits_.max_allocation)
      throw Error("vulkan: a buffer of " + mib(bytes) + " MiB exceeds the largest allocation " + info_.name +
                  " supports (maxMemoryAllocationSize " + mib(limits_.max_allocation) + " MiB)");
    buf->dedicated = allocate(bytes, device_type_, true);
    buf->buffer = buffer_over(buf->dedicated, bytes);
    return buf;
  }
  for (auto& blk : blocks_) {
    VkDeviceSize off = blk->carve(bytes);
    if (off != UINT64_MAX) {
      buf->block = blk.get();
      buf->buffer = blk->buffer;
      buf->offset = off;
      return buf;
    }
  }
  Block* blk = new_block(bytes);
  buf->block = blk;
  buf->buffer = blk->buffer;
  buf->offset = blk->carve(bytes);
  return buf;
}

void Memory::release(VkBuf& b) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (b.block) {
    // Safe to reuse at once: later commands are ordered after earlier ones by barriers.
    b.block->give_back(b.offset, b.bytes);
  } else if (b.dedicated) {
    // Pending or running commands may still use the VkBuffer: destroy it once they finished.
    deferred_.push_back({release_serial_, b.buffer, b.dedicated});
    heap_used_ -= b.bytes;  // accounted as free now; the retry path in allocate waits for the device
  }
  b.buffer = VK_NULL_HANDLE;
}

void Memory::collect(uint64_t completed_serial, bool idle) {
  for (auto it = deferred_.begin(); it != deferred_.end();) {
    if (idle || it->serial <= completed_serial) {
      destroy(it->buffer, it->memory);
      it = deferred_.erase(it);
    } else {
      ++it;
    }
  }
  if (idle && completed_serial == UINT64_MAX) {
    for (auto& [b, m] : host_buffers_) destroy(b, m);
    host_buffers_.clear();
  }
}

VkBuffer Memory::host_buffer(VkDeviceSize bytes, uint8_t** mapped) {
  VkBuffer buf;
  create_buffer(bytes, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT, &buf);
  VkMemoryRequirements req;
  f_.vkGetBufferMemoryRequirements(device_, buf, &req);
  uint32_t type = host_type_;
  if (!(req.memoryTypeBits & (1u << type))) {
    const VkMemoryPropertyFlags host = VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    type = find_type(req.memoryTypeBits, host, 0);
    if (type == UINT32_MAX) throw Error("vulkan: no host-visible memory for the staging buffer");
  }
  VkDeviceMemory mem = allocate(req.size, type, false);
  check(f_.vkBindBufferMemory(device_, buf, mem, 0), "vkBindBufferMemory(staging)");
  void* p = nullptr;
  check(f_.vkMapMemory(device_, mem, 0, VK_WHOLE_SIZE, 0, &p), "vkMapMemory(staging)");
  *mapped = static_cast<uint8_t*>(p);
  host_buffers_.push_back({buf, mem});
  return buf;
}

}  // namespace vk
}  // namespace ait

// The command stream: kernel calls append commands to the pending segment; at its end the
// segment is submitted, from the cache of recorded command buffers when an identical one is
// there, else recorded anew (the model is described in vk_runtime.h).
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "vulkan/vk_runtime.h"

// Vulkan structs are initialised as `T x{sType}` (the rest zeroed), the usual idiom.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ait {
namespace vk {

static_assert(std::is_trivially_copyable<Command>::value, "segments are compared bytewise");
static_assert(sizeof(Command) == 24 + 8 + 24 * Pipelines::kMaxBindings + 16 + 24 + 256, "Command has padding");

namespace {
VkDeviceSize round_up(VkDeviceSize x, VkDeviceSize a) { return (x + a - 1) / a * a; }
}  // namespace

// ---- building the pending segment ----

Command& Context::append(Command::Kind kind) {
  pending_.emplace_back();
  Command& c = pending_.back();
  std::memset(static_cast<void*>(&c), 0, sizeof c);  // every byte, padding too: segments compare bytewise
  c.kind = kind;
  if (kind == Command::kBarrier) {
    need_barrier_ = false;
    since_barrier_.clear();
  }
  return c;
}

// Before a transfer: everything before it must be complete and visible.
void Context::append_transfer_barrier() {
  if (need_barrier_ || !since_barrier_.empty()) append(Command::kBarrier);
}

void Context::barrier_before(const Pipeline& p, const std::vector<BindRange>& binds) {
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
  if (hazard) append(Command::kBarrier);
}

// An offset in the staging ring for `bytes`, keeping room for the pending per-run values; when
// the ring is full, waits for all submitted work and starts it over.
VkDeviceSize Context::staging_take(VkDeviceSize bytes) {
  if (bytes > staging_size_) throw Error("vulkan: a transfer larger than the staging ring");
  if (staging_used_ + bytes + slot_values_.size() * 4 + 256 > staging_size_) flush(true);
  VkDeviceSize at = staging_used_;
  staging_used_ = round_up(at + bytes, 256);
  return at;
}

void Context::dispatch(const char* kernel, Pipeline& p, const std::vector<BindRange>& binds, const void* push,
                       uint32_t push_size, uint64_t gx, uint64_t gy, uint64_t gz, const PerRun* per_run) {
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
      fail("binding " + std::to_string(i) + " spans more than maxStorageBufferRange");
    if (b.offset % limits_.storage_align) fail("binding " + std::to_string(i) + " offset is misaligned");
  }
  if (per_run && per_run->push_offset + 4 > push_size) fail("per-run slot index outside the push constants");
  if (gx == 0 || gy == 0 || gz == 0) return;
  if (gx > UINT32_MAX || gy > UINT32_MAX || gz > UINT32_MAX) fail("workgroup grid too large");

  uint8_t data[256];
  std::memcpy(data, push, push_size);
  if (per_run) {
    const size_t n = per_run->values.size();
    if (slot_values_.size() + n > kMaxSlots) flush(false);
    // The values go to the staging ring when the segment ends; a ring too full for them is
    // started over (that waits: the ring's bytes are reused only after all work has finished).
    if (staging_used_ + (slot_values_.size() + n) * 4 + 256 > staging_size_) flush(true);
    const uint32_t first = static_cast<uint32_t>(slot_values_.size());
    slot_values_.insert(slot_values_.end(), per_run->values.begin(), per_run->values.end());
    std::memcpy(data + per_run->push_offset, &first, 4);
  }
  barrier_before(p, binds);
  const uint64_t mx = limits_.max_group_count[0], my = limits_.max_group_count[1], mz = limits_.max_group_count[2];
  uint32_t pieces = 0;
  for (uint64_t z = 0; z < gz; z += mz)
    for (uint64_t y = 0; y < gy; y += my)
      for (uint64_t x = 0; x < gx; x += mx) {
        // Pieces touch disjoint outputs, but a barrier keeps the synchronization validation
        // (which sees whole bindings) quiet; pieces only exist for very large grids.
        if (pieces++ > 0) append(Command::kBarrier);
        Command& c = append(Command::kDispatch);
        c.pipeline = &p;
        c.num_binds = static_cast<uint32_t>(binds.size());
        std::copy(binds.begin(), binds.end(), c.binds);
        uint32_t base[3] = {static_cast<uint32_t>(x), static_cast<uint32_t>(y), static_cast<uint32_t>(z)};
        std::memcpy(data, base, sizeof base);
        std::memcpy(c.push, data, push_size);
        c.push_size = push_size;
        c.groups[0] = static_cast<uint32_t>(std::min(mx, gx - x));
        c.groups[1] = static_cast<uint32_t>(std::min(my, gy - y));
        c.groups[2] = static_cast<uint32_t>(std::min(mz, gz - z));
        if (profiler_->on())
          pending_labels_.push_back(std::string(kernel) + " " + p.key + " grid " + std::to_string(gx) + "x" +
                                    std::to_string(gy) + "x" + std::to_string(gz));
      }
  for (size_t i = 0; i < binds.size(); ++i)
    since_barrier_.push_back(
        {binds[i].buffer, binds[i].offset, binds[i].offset + binds[i].size, bool((p.written_bindings >> i) & 1u)});
  pending_dispatches_ += pieces;
  if (pending_dispatches_ >= kMaxDispatchesPerSegment) flush(false);
}

// ---- transfers ----

void Context::upload(VkBuf& dst, const void* src, size_t bytes, size_t off) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const uint8_t* s = static_cast<const uint8_t*>(src);
  while (bytes > 0) {
    // The data goes to the staging ring now and is copied from there when the segment runs, so
    // a recorded segment can run again with new data at the same place.
    size_t chunk = static_cast<size_t>(std::min<VkDeviceSize>(bytes, staging_size_ / 2));
    VkDeviceSize at = staging_take(chunk);
    std::memcpy(staging_ptr_ + at, s, chunk);
    append_transfer_barrier();
    Command& c = append(Command::kCopy);
    c.copy_src = staging_;
    c.copy_dst = dst.buffer;
    c.copy = {at, dst.offset + off, chunk};
    need_barrier_ = true;
    s += chunk;
    off += chunk;
    bytes -= chunk;
  }
}

void Context::download(const VkBuf& src, void* dst, size_t bytes, size_t off) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  uint8_t* d = static_cast<uint8_t*>(dst);
  if (bytes == 0) flush(true);
  while (bytes > 0) {
    size_t chunk = static_cast<size_t>(std::min<VkDeviceSize>(bytes, staging_size_ / 2));
    VkDeviceSize at = staging_take(chunk);
    append_transfer_barrier();
    Command& c = append(Command::kCopy);
    c.copy_src = src.buffer;
    c.copy_dst = staging_;
    c.copy = {src.offset + off, at, chunk};
    append(Command::kHostReadBarrier);
    need_barrier_ = true;
    flush(true);
    std::memcpy(d, staging_ptr_ + at, chunk);
    d += chunk;
    off += chunk;
    bytes -= chunk;
  }
}

void Context::set_replay(bool on) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  replay_ = on;
}

void Context::sync() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  flush(true);
}

// ---- ending a segment ----

void Context::flush(bool wait) {
  if (!pending_.empty()) {
    VkDeviceSize slots_at = 0;
    if (!slot_values_.empty()) {
      slots_at = staging_used_;  // staging_take and dispatch kept room for them
      std::memcpy(staging_ptr_ + slots_at, slot_values_.data(), slot_values_.size() * 4);
      staging_used_ = round_up(slots_at + slot_values_.size() * 4, 256);
    }
    Segment* s = replay_ ? find_cached(slots_at) : nullptr;
    if (s) {
      this->wait(*s);
      ++replays_;
    } else {
      s = &evict();
      record(*s, slots_at);
      ++recordings_;
    }
    submit(*s);
    pending_.clear();
    slot_values_.clear();
    pending_labels_.clear();
    pending_dispatches_ = 0;
    dummy_next_ = 0;       // so that a repeated segment binds the same dummies
    need_barrier_ = true;  // the next segment starts after everything submitted before it
    since_barrier_.clear();
  }
  if (wait) {
    wait_all();
    staging_used_ = 0;
  }
}

Context::Segment* Context::find_cached(VkDeviceSize slots_at) {
  for (Segment& s : segments_)
    if (s.valid && s.generation == memory_->generation() && s.slots_at == slots_at &&
        s.num_slots == slot_values_.size() && s.commands.size() == pending_.size() &&
        std::memcmp(s.commands.data(), pending_.data(), pending_.size() * sizeof(Command)) == 0)
      return &s;
  return nullptr;
}

// The least recently used segment, preferring one that is not running.
Context::Segment& Context::evict() {
  Segment* best = nullptr;
  for (Segment& s : segments_) {
    auto rank = [&](const Segment& x) { return std::make_pair(x.pending, x.valid ? x.last_use : 0); };
    if (!best || rank(s) < rank(*best)) best = &s;
  }
  wait(*best);
  best->valid = false;
  return *best;
}

// ---- recording and submission ----

void Context::record_barrier(VkCommandBuffer c) {
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_READ_BIT |
                     VK_ACCESS_TRANSFER_WRITE_BIT;
  const VkPipelineStageFlags stages = VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
  f_.vkCmdPipelineBarrier(c, stages, stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
}

VkDescriptorSet Context::allocate_set(Segment& s, const Pipeline& p) {
  for (;;) {
    if (s.pool_next == s.pools.size()) {
      VkDescriptorPoolSize ps{VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 256 * kMaxBindings};
      VkDescriptorPoolCreateInfo ci{VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
      ci.maxSets = 256;
      ci.poolSizeCount = 1;
      ci.pPoolSizes = &ps;
      VkDescriptorPool pool;
      check(f_.vkCreateDescriptorPool(device_, &ci, nullptr, &pool), "vkCreateDescriptorPool");
      s.pools.push_back(pool);
    }
    VkDescriptorSetAllocateInfo ai{VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    ai.descriptorPool = s.pools[s.pool_next];
    ai.descriptorSetCount = 1;
    ai.pSetLayouts = &p.set_layout;
    VkDescriptorSet set = VK_NULL_HANDLE;
    VkResult r = f_.vkAllocateDescriptorSets(device_, &ai, &set);
    if (r == VK_SUCCESS) return set;
    if (r != VK_ERROR_OUT_OF_POOL_MEMORY && r != VK_ERROR_FRAGMENTED_POOL) check(r, "vkAllocateDescriptorSets");
    ++s.pool_next;
  }
}

void Context::record_command(Segment& s, const Command& c) {
  switch (c.kind) {
    case Command::kBarrier: record_barrier(s.cmd); break;
    case Command::kCopy: f_.vkCmdCopyBuffer(s.cmd, c.copy_src, c.copy_dst, 1, &c.copy); break;
    case Command::kHostReadBarrier: {
      VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
      mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
      f_.vkCmdPipelineBarrier(s.cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb, 0, nullptr,
                              0, nullptr);
      break;
    }
    case Command::kDispatch: {
      const Pipeline& p = *c.pipeline;
      VkDescriptorSet set = allocate_set(s, p);
      VkDescriptorBufferInfo infos[kMaxBindings];
      VkWriteDescriptorSet writes[kMaxBindings];
      for (uint32_t i = 0; i < c.num_binds; ++i) {
        infos[i] = {c.binds[i].buffer, c.binds[i].offset, c.binds[i].size};
        writes[i] = {VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET};
        writes[i].dstSet = set;
        writes[i].dstBinding = i;
        writes[i].descriptorCount = 1;
        writes[i].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
        writes[i].pBufferInfo = &infos[i];
      }
      f_.vkUpdateDescriptorSets(device_, c.num_binds, writes, 0, nullptr);
      f_.vkCmdBindPipeline(s.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.pipeline);
      f_.vkCmdBindDescriptorSets(s.cmd, VK_PIPELINE_BIND_POINT_COMPUTE, p.layout, 0, 1, &set, 0, nullptr);
      f_.vkCmdPushConstants(s.cmd, p.layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, c.push_size, c.push);
      f_.vkCmdDispatch(s.cmd, c.groups[0], c.groups[1], c.groups[2]);
      break;
    }
  }
}

// Records the pending segment into `s`: first the per-run values' copy into the slots buffer,
// then every command (and, when profiling, a timestamp after each dispatch).
void Context::record(Segment& s, VkDeviceSize slots_at) {
  check(f_.vkResetCommandBuffer(s.cmd, 0), "vkResetCommandBuffer");
  for (auto pool : s.pools) f_.vkResetDescriptorPool(device_, pool, 0);
  s.pool_next = 0;
  profiler_->destroy_pool(s.queries);
  s.queries = profiler_->make_pool(pending_dispatches_);
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  check(f_.vkBeginCommandBuffer(s.cmd, &bi), "vkBeginCommandBuffer");
  if (s.queries) {
    f_.vkCmdResetQueryPool(s.cmd, s.queries, 0, pending_dispatches_ + 1);
    f_.vkCmdWriteTimestamp(s.cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s.queries, 0);
  }
  if (!slot_values_.empty()) {
    // After whatever ran before (an earlier segment may still read the slots); the segment's
    // own first command is a barrier, which orders it after this copy.
    record_barrier(s.cmd);
    VkBufferCopy region{slots_at, slots_->offset, slot_values_.size() * 4};
    f_.vkCmdCopyBuffer(s.cmd, staging_, slots_->buffer, 1, &region);
  }
  uint32_t barriers = 0, query = 1;
  for (const Command& c : pending_) {
    record_command(s, c);
    barriers += c.kind == Command::kBarrier;
    if (c.kind == Command::kDispatch && s.queries)
      f_.vkCmdWriteTimestamp(s.cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, s.queries, query++);
  }
  check(f_.vkEndCommandBuffer(s.cmd), "vkEndCommandBuffer");
  s.commands.swap(pending_);  // (pending_ is cleared by the caller)
  s.labels.swap(pending_labels_);
  s.slots_at = slots_at;
  s.num_slots = static_cast<uint32_t>(slot_values_.size());
  s.generation = memory_->generation();
  s.runs = 0;
  s.valid = true;
  last_barriers_ = barriers;
}

void Context::submit(Segment& s) {
  check(f_.vkResetFences(device_, 1, &s.fence), "vkResetFences");
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &s.cmd;
  check(f_.vkQueueSubmit(queue_, 1, &si, s.fence), "vkQueueSubmit");
  s.pending = true;
  s.serial = ++serial_;
  s.last_use = ++use_clock_;
  ++s.runs;
  memory_->set_release_serial(serial_ + 1);  // what is released now may be used by the next one
}

void Context::wait(Segment& s) {
  if (!s.pending) return;
  check(f_.vkWaitForFences(device_, 1, &s.fence, VK_TRUE, UINT64_MAX), "vkWaitForFences");
  s.pending = false;
  completed_serial_ = std::max(completed_serial_, s.serial);
  if (s.runs >= 2) profiler_->add_run(s.queries, s.labels);  // not the run that recorded it
}

void Context::wait_all() {
  for (Segment& s : segments_) wait(s);
  // With nothing pending either, no command can still name a released buffer.
  memory_->collect(completed_serial_, pending_.empty());
}

}  // namespace vk
}  // namespace ait

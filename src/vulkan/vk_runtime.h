// Vulkan runtime for the compute backend: run-time loader and instance (instance.cpp), device
// memory (memory.cpp), pipelines and their on-disk cache (pipelines.cpp), the command stream with
// its cache of recorded command buffers (stream.cpp), and the GPU-time profile (profile.cpp).
//
// Everything here is internal to the backend (vk_kernels.cpp, backend.cpp); the rest of the
// program sees only core/kernels.h and vulkan/device.h. Compiled only when AIT_VULKAN is defined.
//
// Execution model. A kernel call appends commands (dispatches, copies, barriers) to the pending
// segment of the stream; nothing is recorded into Vulkan yet. A barrier is appended before a
// dispatch whose buffer ranges overlap a range that a dispatch since the last barrier wrote, or
// that it writes and one of them read (which bindings a shader writes is read from its SPIR-V),
// and around every transfer. So every command sees the results of every earlier one, independent
// dispatches (e.g. the optimizer's per-parameter updates) run concurrently, and a buffer freed
// on the host may be handed to a later command at once. Env AIT_VK_BARRIERS=all puts a barrier
// between every two dispatches.
//
// A segment ends when the host needs results (download, sync) or when it holds
// kMaxDispatchesPerSegment dispatches (then it is submitted and the host goes on building the
// next one without waiting). At its end the stream looks for a cached command buffer recorded
// from exactly the same commands (same pipelines, buffer ranges, push constants, grids, copies
// and staging offsets) and submits that one again; otherwise it records the segment into the
// least recently used cache entry. A training or evaluation step allocates the same buffers in
// the same order every time (the allocator is deterministic: see memory.cpp), so from its second
// or third repetition on every segment of it is a cache hit: the host builds the step's graph as
// usual but records nothing. Env AIT_VK_REPLAY=0 records every segment anew.
//
// What may differ between two runs of one cached command buffer travels through one channel the
// stream owns, never inside the command buffer:
//   - data uploaded from the host (a batch) is copied into the staging ring when the kernel call
//     happens, and the segment copies it from there; the offset in the ring is part of the
//     segment, the bytes are not;
//   - per-run values of a dispatch (AdamW's learning-rate terms, a dropout seed: see
//     Context::dispatch's `per_run`) are written to the staging ring when the segment ends and
//     copied into the slots buffer at its start; the shader reads them from there.
// Recorded command buffers name VkBuffers; destroying any VkBuffer (a freed dedicated allocation,
// an empty block) forgets every cached one.
#pragma once
#ifdef AIT_VULKAN

#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/kernels.h"
#include "vulkan/device.h"

namespace ait {
namespace vk {

// ---- entry points (all resolved at run time through vkGetInstanceProcAddr/vkGetDeviceProcAddr) ----
#define AIT_VK_GLOBAL_FNS(X)                \
  X(vkCreateInstance)                       \
  X(vkEnumerateInstanceExtensionProperties) \
  X(vkEnumerateInstanceLayerProperties)     \
  X(vkEnumerateInstanceVersion)

#define AIT_VK_INSTANCE_FNS(X)                \
  X(vkDestroyInstance)                        \
  X(vkEnumeratePhysicalDevices)               \
  X(vkGetPhysicalDeviceProperties)            \
  X(vkGetPhysicalDeviceProperties2)           \
  X(vkGetPhysicalDeviceFeatures2)             \
  X(vkGetPhysicalDeviceMemoryProperties)      \
  X(vkGetPhysicalDeviceQueueFamilyProperties) \
  X(vkEnumerateDeviceExtensionProperties)     \
  X(vkCreateDevice)                           \
  X(vkGetDeviceProcAddr)

#define AIT_VK_DEBUG_FNS(X)         \
  X(vkCreateDebugUtilsMessengerEXT) \
  X(vkDestroyDebugUtilsMessengerEXT)

#define AIT_VK_DEVICE_FNS(X)       \
  X(vkDestroyDevice)               \
  X(vkGetDeviceQueue)              \
  X(vkDeviceWaitIdle)              \
  X(vkCreateBuffer)                \
  X(vkDestroyBuffer)               \
  X(vkGetBufferMemoryRequirements) \
  X(vkAllocateMemory)              \
  X(vkFreeMemory)                  \
  X(vkBindBufferMemory)            \
  X(vkMapMemory)                   \
  X(vkUnmapMemory)                 \
  X(vkCreateShaderModule)          \
  X(vkDestroyShaderModule)         \
  X(vkCreateDescriptorSetLayout)   \
  X(vkCreatePipelineLayout)        \
  X(vkCreateComputePipelines)      \
  X(vkCreatePipelineCache)         \
  X(vkGetPipelineCacheData)        \
  X(vkCreateDescriptorPool)        \
  X(vkResetDescriptorPool)         \
  X(vkAllocateDescriptorSets)      \
  X(vkUpdateDescriptorSets)        \
  X(vkCreateCommandPool)           \
  X(vkAllocateCommandBuffers)      \
  X(vkBeginCommandBuffer)          \
  X(vkEndCommandBuffer)            \
  X(vkResetCommandBuffer)          \
  X(vkCmdBindPipeline)             \
  X(vkCmdBindDescriptorSets)       \
  X(vkCmdPushConstants)            \
  X(vkCmdDispatch)                 \
  X(vkCmdPipelineBarrier)          \
  X(vkCmdCopyBuffer)               \
  X(vkCmdUpdateBuffer)             \
  X(vkCreateFence)                 \
  X(vkResetFences)                 \
  X(vkWaitForFences)               \
  X(vkQueueSubmit)                 \
  X(vkCreateQueryPool)             \
  X(vkDestroyQueryPool)            \
  X(vkCmdResetQueryPool)           \
  X(vkCmdWriteTimestamp)           \
  X(vkGetQueryPoolResults)

#define AIT_VK_DECLARE_FN(name) PFN_##name name = nullptr;
struct InstanceFns {
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr = nullptr;
  AIT_VK_GLOBAL_FNS(AIT_VK_DECLARE_FN)
  AIT_VK_INSTANCE_FNS(AIT_VK_DECLARE_FN)
  AIT_VK_DEBUG_FNS(AIT_VK_DECLARE_FN)
};
struct DeviceFns {
  AIT_VK_DEVICE_FNS(AIT_VK_DECLARE_FN)
};
#undef AIT_VK_DECLARE_FN

// Throws ait::Error("vulkan: <what> failed: <VkResult name>") unless r == VK_SUCCESS.
void check(VkResult r, const char* what);
// Which descriptor bindings a SPIR-V module may write (bit i: binding i); see vk_runtime.cpp.
uint32_t spirv_written_bindings(const uint32_t* words, size_t n);
const char* result_name(VkResult r);
bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name);

// ---- instance ----
class Instance {
public:
  // The process-wide instance for the loader named by AIT_VULKAN_LOADER (default
  // "libvulkan.so.1"). Returns null and sets *error when the loader cannot be opened or no
  // instance can be created; the outcome is remembered per loader path.
  static Instance* get(std::string* error);

  const std::vector<DeviceInfo>& devices() const { return infos_; }
  VkPhysicalDevice physical(int index) const { return phys_.at(static_cast<size_t>(index)); }
  const InstanceFns& fns() const { return f_; }
  bool validation() const { return validation_; }

private:
  Instance() = default;
  bool init(const std::string& loader_path, std::string* error);
  bool open_loader(const std::string& path, std::string* error, uint32_t* loader_version);
  bool create_instance(uint32_t loader_version, std::string* error);
  bool load_instance_functions(bool debug_utils, std::string* error);
  void describe(int index);
  // Fills the 16-bit and cooperative-matrix fields of `d` (precision_features.cpp).
  void describe_precision(VkPhysicalDevice pd, const std::vector<VkExtensionProperties>& exts, DeviceInfo& d) const;

  void* lib_ = nullptr;
  InstanceFns f_;
  VkInstance instance_ = VK_NULL_HANDLE;
  VkDebugUtilsMessengerEXT messenger_ = VK_NULL_HANDLE;
  bool validation_ = false;
  std::vector<VkPhysicalDevice> phys_;
  std::vector<DeviceInfo> infos_;
};

// Validation messages (warnings and errors) seen by any instance's messenger.
bool validation_requested();
std::vector<std::string> validation_messages();
void clear_validation_messages();

// ---- memory (memory.cpp) ----
class Context;
class Memory;
struct Block;

class VkBuf final : public Buffer {
public:
  VkBuf(Memory* mem, size_t n) : Buffer(n), mem(mem) {}
  ~VkBuf() override;
  Memory* mem;
  VkBuffer buffer = VK_NULL_HANDLE;  // the block's buffer, or a dedicated one
  VkDeviceSize offset = 0;           // byte offset of this allocation in `buffer`
  VkDeviceSize bytes = 0;            // bytes reserved (>= size * 4, rounded up)
  Block* block = nullptr;            // owning block, or null for a dedicated allocation
  VkDeviceMemory dedicated = VK_NULL_HANDLE;
};

// Device limits the backend checks against.
struct Limits {
  uint64_t max_storage_buffer_range = 0;
  uint64_t max_allocation = 0;
  uint64_t storage_align = 256;  // minStorageBufferOffsetAlignment, at least 4
  uint32_t max_push_constants = 128;
  uint32_t max_group_count[3] = {65535, 65535, 65535};
  uint32_t max_shared_memory = 16384;
};

// Device-local buffers: large blocks sub-allocated best fit, dedicated allocations for big
// buffers, and destruction deferred until the GPU work that may use a buffer has finished.
class Memory {
public:
  // `mu` is the context's lock (buffers are released from any thread that drops a tensor).
  Memory(const DeviceFns& f, VkDevice device, const DeviceInfo& info, const Limits& limits,
         const VkPhysicalDeviceMemoryProperties& props, std::recursive_mutex& mu);
  ~Memory();
  // Throws ait::Error("out of device memory: needed X MiB, have Y MiB") when the heap cannot
  // hold the buffer.
  std::shared_ptr<VkBuf> alloc(size_t n);
  void release(VkBuf& b);  // called by ~VkBuf
  // A host-visible, coherent, mapped buffer of `bytes` for transfers (not counted in the heap).
  VkBuffer host_buffer(VkDeviceSize bytes, uint8_t** mapped);
  // Destroys what was released while work up to `completed_serial` might still use it; with
  // `idle`, everything released.
  void collect(uint64_t completed_serial, bool idle);
  // Serial of the work that may still use a buffer released now (set by the stream).
  void set_release_serial(uint64_t s) { release_serial_ = s; }
  // Counts VkBuffer destructions: a recorded command buffer is valid while this is unchanged.
  uint64_t generation() const { return generation_; }
  VkDeviceSize alignment() const { return align_; }  // of every buffer's offset and size
  // Called when vkAllocateMemory fails: waits for the device and frees what is unused.
  std::function<void()> on_pressure;

private:
  struct Deferred {
    uint64_t serial;
    VkBuffer buffer;
    VkDeviceMemory memory;
  };
  uint32_t find_type(uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) const;
  VkDeviceMemory allocate(VkDeviceSize bytes, uint32_t type, bool count_heap);
  void create_buffer(VkDeviceSize bytes, VkBufferUsageFlags usage, VkBuffer* buf);
  VkBuffer buffer_over(VkDeviceMemory mem, VkDeviceSize bytes);
  Block* new_block(VkDeviceSize need);
  void free_empty_blocks();
  void destroy(VkBuffer b, VkDeviceMemory m);
  [[noreturn]] void throw_oom(VkDeviceSize need);

  const DeviceFns& f_;
  VkDevice device_;
  const DeviceInfo& info_;
  const Limits& limits_;
  VkPhysicalDeviceMemoryProperties props_;
  std::recursive_mutex& mu_;
  uint32_t device_type_ = 0, host_type_ = 0;
  VkDeviceSize heap_size_ = 0, heap_used_ = 0;
  VkDeviceSize block_size_ = 0, align_ = 256;
  std::vector<std::unique_ptr<Block>> blocks_;
  std::vector<Deferred> deferred_;
  std::vector<std::pair<VkBuffer, VkDeviceMemory>> host_buffers_;
  uint64_t release_serial_ = 0, generation_ = 0;
};

// ---- pipelines (pipelines.cpp) ----

// One storage-buffer binding of a dispatch: a byte range of a VkBuffer.
struct BindRange {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize offset = 0;
  VkDeviceSize size = 0;
};

struct Pipeline {
  std::string key;
  uint32_t num_bindings = 0;
  uint32_t push_size = 0;
  uint32_t written_bindings = ~0u;  // bit i: binding i may be written (from the SPIR-V)
  VkDescriptorSetLayout set_layout = VK_NULL_HANDLE;
  VkPipelineLayout layout = VK_NULL_HANDLE;
  VkPipeline pipeline = VK_NULL_HANDLE;
};

// Compute pipelines made on first use from the embedded SPIR-V, and the driver's pipeline cache
// kept on disk ($XDG_CACHE_HOME/ait or ~/.cache/ait; env AIT_VK_PIPELINE_CACHE=0: none).
class Pipelines {
public:
  static constexpr uint32_t kMaxBindings = 8;
  Pipelines(const DeviceFns& f, VkDevice device, const DeviceInfo& info, const Limits& limits,
            const VkPhysicalDeviceProperties& props);
  // Keyed by the module and the specialization constants (constant_id i = spec[i]).
  Pipeline& get(const char* shader, uint32_t num_bindings, uint32_t push_size, const std::vector<uint32_t>& spec);
  void save_cache();

private:
  std::pair<VkDescriptorSetLayout, VkPipelineLayout> layout(uint32_t num_bindings, uint32_t push_size);
  void load_cache(const VkPhysicalDeviceProperties& props);

  const DeviceFns& f_;
  VkDevice device_;
  const DeviceInfo& info_;
  const Limits& limits_;
  VkPipelineCache cache_ = VK_NULL_HANDLE;
  std::string cache_path_;
  bool dirty_ = false;
  std::map<std::string, std::unique_ptr<Pipeline>> pipelines_;
  std::map<uint64_t, std::pair<VkDescriptorSetLayout, VkPipelineLayout>> layouts_;
};

// ---- the command stream (stream.cpp) ----

// One command of a segment: plain bytes without padding, zero-filled and then set, so that two
// segments compare with memcmp.
struct Command {
  enum Kind : uint32_t { kBarrier, kDispatch, kCopy, kHostReadBarrier };
  Kind kind;
  uint32_t num_binds, push_size;
  uint32_t groups[3];
  const Pipeline* pipeline;
  BindRange binds[Pipelines::kMaxBindings];
  VkBuffer copy_src, copy_dst;
  VkBufferCopy copy;
  uint8_t push[256];
};

// GPU time per dispatch of replayed command buffers (env AIT_VK_PROFILE=1; profile.cpp).
class Profiler {
public:
  Profiler(const DeviceFns& f, VkDevice device, const DeviceInfo& info, const VkPhysicalDeviceProperties& props,
           uint32_t timestamp_bits);
  ~Profiler();
  bool on() const { return on_; }
  // A query pool for a command buffer of `dispatches` dispatches (null when profiling is off).
  VkQueryPool make_pool(uint32_t dispatches);
  void destroy_pool(VkQueryPool pool);
  // Adds the timestamps of a finished run: query i follows commands[label_of[i]].
  void add_run(VkQueryPool pool, const std::vector<std::string>& labels);
  void print(bool barrier_every_dispatch);

private:
  const DeviceFns& f_;
  VkDevice device_;
  const DeviceInfo& info_;
  bool on_ = false;
  double tick_ns_ = 1.0;
  uint64_t mask_ = ~0ull;
  uint64_t runs_ = 0;
  uint32_t max_dispatches_ = 0;
  std::map<std::string, std::pair<double, uint64_t>> by_label_;  // label -> (ms, dispatches)
};

// ---- context (context.cpp, stream.cpp) ----

class Context {
public:
  static constexpr uint32_t kMaxBindings = Pipelines::kMaxBindings;
  static constexpr uint32_t kMaxDispatchesPerSegment = 256;
  static constexpr uint32_t kCachedSegments = 64;
  static constexpr uint32_t kMaxSlots = 4096;  // per-run values in one segment

  Context(Instance* inst, int index);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceInfo& info() const { return info_; }
  const Limits& limits() const { return limits_; }
  // Whether storageBuffer16BitAccess was enabled (shaders may declare float16_t buffers).
  bool storage_16bit() const { return storage_16bit_; }

  std::shared_ptr<VkBuf> alloc(size_t n);
  void upload(VkBuf& dst, const void* src, size_t bytes, size_t dst_byte_off);
  void download(const VkBuf& src, void* dst, size_t bytes, size_t src_byte_off);
  void sync();

  Pipeline& pipeline(const char* shader, uint32_t num_bindings, uint32_t push_size,
                     const std::vector<uint32_t>& spec = {});

  // Values of one dispatch that change from one run of the same work to the next. dispatch()
  // stores them in the segment's slots and writes the index of the first one as a uint32 into
  // the push constants at byte `push_offset`; the shader reads them from the slots binding.
  struct PerRun {
    std::vector<uint32_t> values;
    uint32_t push_offset = 0;
  };
  // Appends one dispatch of `groups` workgroups (logical grid). Checks, naming `kernel` in the
  // ait::Error it throws: binding count and push-constant size match the pipeline and the
  // device; every range lies inside its buffer, is aligned and fits maxStorageBufferRange. Each
  // grid axis larger than maxComputeWorkGroupCount is split into several dispatches; `push`
  // must start with three uint32 (base_x, base_y, base_z) which are set per piece.
  void dispatch(const char* kernel, Pipeline& p, const std::vector<BindRange>& binds, const void* push,
                uint32_t push_size, uint64_t gx, uint64_t gy = 1, uint64_t gz = 1, const PerRun* per_run = nullptr);

  // A binding for elements [elem_off, elem_off + elems) of a buffer of this context (the whole
  // buffer by default). Throws naming `kernel` when the buffer belongs to another backend, the
  // range is out of bounds, or it exceeds maxStorageBufferRange. An empty range binds a dummy.
  BindRange bind(const Buffer& b, const char* kernel, size_t elem_off = 0, size_t elems = SIZE_MAX);
  // A binding the shader ignores: the next of a ring of 256-byte slices, so that two dispatches
  // whose unused bindings the shader declares writable do not look like conflicting writes.
  BindRange dummy() { return {dummy_->buffer, dummy_->offset + 256 * (dummy_next_++ % kDummySlices), 256}; }
  // The slots buffer, bound where a shader reads per-run values.
  BindRange slots() const { return {slots_->buffer, slots_->offset, slots_->bytes}; }
  const VkBuf& vkbuf(const Buffer& b, const char* kernel) const;
  // Largest element count one binding may span (a multiple of the offset alignment).
  size_t max_binding_elems() const;

  // For tests: segments submitted from the cache without recording, and barriers in the last
  // recorded segment.
  uint64_t replays() const { return replays_; }
  uint64_t recordings() const { return recordings_; }
  uint32_t last_segment_barriers() const { return last_barriers_; }
  // Whether segments may come from the cache (env AIT_VK_REPLAY=0 starts with false).
  void set_replay(bool on);

  void at_exit();  // saves the pipeline cache, prints the profile

private:
  // A command buffer with what it was recorded from.
  struct Segment {
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    std::vector<VkDescriptorPool> pools;
    size_t pool_next = 0;
    VkQueryPool queries = VK_NULL_HANDLE;
    std::vector<std::string> labels;  // of the profiled dispatches, in order
    std::vector<Command> commands;
    VkDeviceSize slots_at = 0;  // staging offset of the per-run values
    uint32_t num_slots = 0;
    uint64_t generation = 0;  // Memory::generation() when recorded
    uint64_t serial = 0;      // of its last submission
    uint64_t last_use = 0;
    uint64_t runs = 0;
    bool pending = false;  // submitted, fence not yet waited on
    bool valid = false;
  };

  void create_device();
  void read_limits();
  void create_segments();

  // stream.cpp
  Command& append(Command::Kind kind);
  void barrier_before(const Pipeline& p, const std::vector<BindRange>& binds);
  void flush(bool wait);
  Segment* find_cached(VkDeviceSize slots_at);
  Segment& evict();
  void record(Segment& s, VkDeviceSize slots_at);
  void record_command(Segment& s, const Command& c);
  void record_barrier(VkCommandBuffer c);
  VkDescriptorSet allocate_set(Segment& s, const Pipeline& p);
  void submit(Segment& s);
  void wait(Segment& s);
  void wait_all();
  VkDeviceSize staging_take(VkDeviceSize bytes);
  void append_transfer_barrier();

  const InstanceFns& fi_;
  DeviceFns f_;
  DeviceInfo info_;
  Limits limits_;
  VkPhysicalDeviceProperties props_{};
  uint32_t timestamp_bits_ = 0;
  VkPhysicalDevice phys_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  bool storage_16bit_ = false;
  std::recursive_mutex mu_;

  std::unique_ptr<Memory> memory_;
  std::unique_ptr<Pipelines> pipelines_;
  std::unique_ptr<Profiler> profiler_;
  static constexpr uint32_t kDummySlices = 64;
  std::shared_ptr<VkBuf> dummy_;  // bound where a shader's binding is unused or empty
  uint32_t dummy_next_ = 0;
  std::shared_ptr<VkBuf> slots_;

  // staging ring: reused from its start after every wait for all submitted work
  VkBuffer staging_ = VK_NULL_HANDLE;
  uint8_t* staging_ptr_ = nullptr;
  VkDeviceSize staging_size_ = 16ull << 20, staging_used_ = 0;

  // the pending segment
  std::vector<Command> pending_;
  std::vector<uint32_t> slot_values_;
  std::vector<std::string> pending_labels_;  // one per dispatch, when profiling
  uint32_t pending_dispatches_ = 0;
  bool need_barrier_ = true;  // the next command must wait for everything before it
  struct Access {
    VkBuffer buffer;
    VkDeviceSize begin, end;
    bool write;
  };
  std::vector<Access> since_barrier_;    // what dispatches since the last barrier touch
  bool barrier_every_dispatch_ = false;  // env AIT_VK_BARRIERS=all
  bool replay_ = true;                   // env AIT_VK_REPLAY=0: never reuse a command buffer

  // cached segments
  VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
  std::vector<Segment> segments_;
  uint64_t serial_ = 0, completed_serial_ = 0, use_clock_ = 0;
  uint64_t replays_ = 0, recordings_ = 0;
  uint32_t last_barriers_ = 0;
};

}  // namespace vk
}  // namespace ait

#endif  // AIT_VULKAN

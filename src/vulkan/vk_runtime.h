// Vulkan runtime for the compute backend: run-time loader, instance and device, a
// sub-allocating memory manager, staging transfers, command recording with batched submission,
// pipelines (with an on-disk pipeline cache) and one checked dispatch helper.
//
// Everything here is internal to the backend (vk_kernels.cpp, device.cpp); the rest of the
// program sees only kernels.h and device.h. Compiled only when AIT_VULKAN is defined.
//
// Execution model. Kernels record dispatches into the current command buffer. A global
// compute/transfer memory barrier goes before a dispatch whose buffer ranges overlap a range that
// a dispatch since the last barrier wrote, or that it writes and one of them read (which bindings
// a shader writes is read from its SPIR-V), and before every transfer. So every command sees the
// results of every earlier one, independent dispatches (e.g. the optimizer's per-parameter
// updates) run concurrently, and a buffer freed on the host may be handed to a later-recorded
// command at once. Env AIT_VK_BARRIERS=all puts a barrier between every two dispatches. Work is submitted when the host needs results (download, sync) or when a
// command buffer holds kMaxDispatchesPerSubmit dispatches (then it is submitted with a fence and
// recording continues in the next of a small ring of command buffers, without waiting).
//
// Programs (a recorded training step, see Kernels::begin_capture). Between begin_program() and
// end_program() commands go into one reusable command buffer instead, never split, and buffers
// come from blocks kept for the program: freed ones are reused inside the recording (the barriers
// order that) but never handed to work outside it, so a replay finds its intermediates where the
// recording put them. Per-step scalars live in a small device buffer of slots that is uploaded
// before every run. A buffer of the ordinary pool that a recorded command uses must outlive the
// program: releasing it drops the program (or, during recording, keeps it from being kept). A
// transfer, sync or submit during recording abandons the program: what was recorded runs once.
#pragma once
#ifdef AIT_VULKAN

#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/kernels.h"

namespace ait {
namespace vk {

// ---- entry points (all resolved at run time through vkGetInstanceProcAddr/vkGetDeviceProcAddr) ----
#define AIT_VK_GLOBAL_FNS(X)                 \
  X(vkCreateInstance)                        \
  X(vkEnumerateInstanceExtensionProperties)  \
  X(vkEnumerateInstanceLayerProperties)      \
  X(vkEnumerateInstanceVersion)

#define AIT_VK_INSTANCE_FNS(X)                   \
  X(vkDestroyInstance)                           \
  X(vkEnumeratePhysicalDevices)                  \
  X(vkGetPhysicalDeviceProperties)               \
  X(vkGetPhysicalDeviceProperties2)              \
  X(vkGetPhysicalDeviceMemoryProperties)         \
  X(vkGetPhysicalDeviceQueueFamilyProperties)    \
  X(vkEnumerateDeviceExtensionProperties)        \
  X(vkCreateDevice)                              \
  X(vkGetDeviceProcAddr)

#define AIT_VK_DEBUG_FNS(X)          \
  X(vkCreateDebugUtilsMessengerEXT)  \
  X(vkDestroyDebugUtilsMessengerEXT)

#define AIT_VK_DEVICE_FNS(X)            \
  X(vkDestroyDevice)                    \
  X(vkGetDeviceQueue)                   \
  X(vkDeviceWaitIdle)                   \
  X(vkCreateBuffer)                     \
  X(vkDestroyBuffer)                    \
  X(vkGetBufferMemoryRequirements)      \
  X(vkAllocateMemory)                   \
  X(vkFreeMemory)                       \
  X(vkBindBufferMemory)                 \
  X(vkMapMemory)                        \
  X(vkUnmapMemory)                      \
  X(vkCreateShaderModule)               \
  X(vkDestroyShaderModule)              \
  X(vkCreateDescriptorSetLayout)        \
  X(vkCreatePipelineLayout)             \
  X(vkCreateComputePipelines)           \
  X(vkCreatePipelineCache)              \
  X(vkGetPipelineCacheData)             \
  X(vkCreateDescriptorPool)             \
  X(vkResetDescriptorPool)              \
  X(vkAllocateDescriptorSets)           \
  X(vkUpdateDescriptorSets)             \
  X(vkCreateCommandPool)                \
  X(vkAllocateCommandBuffers)           \
  X(vkBeginCommandBuffer)               \
  X(vkEndCommandBuffer)                 \
  X(vkResetCommandBuffer)               \
  X(vkCmdBindPipeline)                  \
  X(vkCmdBindDescriptorSets)            \
  X(vkCmdPushConstants)                 \
  X(vkCmdDispatch)                      \
  X(vkCmdPipelineBarrier)               \
  X(vkCmdCopyBuffer)                    \
  X(vkCmdUpdateBuffer)                  \
  X(vkCreateFence)                      \
  X(vkResetFences)                      \
  X(vkWaitForFences)                    \
  X(vkQueueSubmit)                      \
  X(vkCreateQueryPool)                  \
  X(vkDestroyQueryPool)                 \
  X(vkCmdResetQueryPool)                \
  X(vkCmdWriteTimestamp)                \
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
  void describe(int index);

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

// ---- memory ----
class Context;
struct Block;

class VkBuf final : public Buffer {
public:
  VkBuf(Context* ctx, size_t n) : Buffer(n), ctx(ctx) {}
  ~VkBuf() override;
  Context* ctx;
  VkBuffer buffer = VK_NULL_HANDLE;  // the block's buffer, or a dedicated one
  VkDeviceSize offset = 0;           // byte offset of this allocation in `buffer`
  VkDeviceSize bytes = 0;            // bytes reserved (>= size * 4, rounded up)
  Block* block = nullptr;            // owning block, or null for a dedicated allocation
  VkDeviceMemory dedicated = VK_NULL_HANDLE;
  mutable uint64_t program_use = 0;  // id of the last program whose recording bound it
};

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

// Device limits the backend checks against.
struct Limits {
  uint64_t max_storage_buffer_range = 0;
  uint64_t max_allocation = 0;
  uint64_t storage_align = 256;  // minStorageBufferOffsetAlignment, at least 4
  uint32_t max_push_constants = 128;
  uint32_t max_group_count[3] = {65535, 65535, 65535};
  uint32_t max_shared_memory = 16384;
};

class Context {
public:
  static constexpr uint32_t kMaxDispatchesPerSubmit = 1000;
  static constexpr uint32_t kMaxBindings = 8;

  Context(Instance* inst, int index);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const DeviceInfo& info() const { return info_; }
  const Limits& limits() const { return limits_; }

  // Memory. alloc() throws ait::Error("out of device memory: needed X MiB, have Y MiB") when the
  // device heap cannot hold the buffer.
  std::shared_ptr<VkBuf> alloc(size_t n);
  void release(VkBuf& b);  // called by ~VkBuf
  void upload(VkBuf& dst, const void* src, size_t bytes, size_t dst_byte_off);
  void download(const VkBuf& src, void* dst, size_t bytes, size_t src_byte_off);
  void sync();

  // Pipelines, created on first use from the embedded SPIR-V module `shader`, keyed by the
  // module and the specialization constants (constant_id i = spec[i]).
  Pipeline& pipeline(const char* shader, uint32_t num_bindings, uint32_t push_size,
                     const std::vector<uint32_t>& spec = {});

  // Records one dispatch of `groups` workgroups (logical grid). Checks, naming `kernel` in the
  // ait::Error it throws: binding count and push-constant size match the pipeline and the
  // device; every range lies inside its buffer, is aligned and fits maxStorageBufferRange. Each
  // grid axis larger than maxComputeWorkGroupCount is split into several dispatches; `push`
  // must start with three uint32 (base_x, base_y, base_z) which are set per piece.
  void dispatch(const char* kernel, Pipeline& p, const std::vector<BindRange>& binds, const void* push,
                uint32_t push_size, uint64_t gx, uint64_t gy = 1, uint64_t gz = 1);

  // A binding for elements [elem_off, elem_off + elems) of a buffer of this context (the whole
  // buffer by default). Throws naming `kernel` when the buffer belongs to another backend, the
  // range is out of bounds, or it exceeds maxStorageBufferRange. An empty range binds a dummy.
  BindRange bind(const Buffer& b, const char* kernel, size_t elem_off = 0, size_t elems = SIZE_MAX);
  // A binding the shader ignores: the next of a ring of 256-byte slices, so that two dispatches
  // whose unused bindings the shader declares writable do not look like conflicting writes.
  BindRange dummy() { return {dummy_->buffer, dummy_->offset + 256 * (dummy_next_++ % kDummySlices), 256}; }
  const VkBuf& vkbuf(const Buffer& b, const char* kernel) const;

  // Programs (see the top of this file). begin_program() drops any previous program and syncs.
  // end_program() stops recording and runs the recorded work once; it returns whether the program
  // is kept for run_program(), which runs it again with new slot values (one per slot, in the
  // order program_slot() handed them out).
  static constexpr uint32_t kNoSlot = UINT32_MAX;
  static constexpr uint32_t kMaxSlots = 1024;
  void begin_program();
  bool recording_program() const { return recording_; }
  bool has_program() const { return has_program_; }
  // A slot holding `value` for the recording's next run; kNoSlot when not recording (the slot
  // table being full abandons the recording).
  uint32_t program_slot(uint32_t value);
  BindRange slots() const { return {slots_->buffer, slots_->offset, slots_->bytes}; }
  const std::vector<uint32_t>& slot_values() const { return slot_values_; }
  bool end_program();
  void run_program(const std::vector<uint32_t>& slot_values);
  void drop_program();  // during a recording: abandons it
  uint64_t program_runs() const { return program_runs_; }
  uint32_t program_barriers() const { return program_barriers_; }  // in the last recording

  // Largest element count one binding may span (a multiple of the offset alignment).
  size_t max_binding_elems() const;

private:
  struct Frame {
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    std::vector<VkDescriptorPool> pools;
    size_t pool_next = 0;
    bool pending = false;  // submitted, fence not yet waited on
    uint64_t serial = 0;
  };
  struct Deferred {
    uint64_t serial;
    VkBuffer buffer;
    VkDeviceMemory memory;
  };

  // One buffer range a dispatch recorded since the last barrier touches.
  struct Access {
    VkBuffer buffer;
    VkDeviceSize begin, end;
    bool write;
  };
  void emit_barrier(VkCommandBuffer c);

  void create_device();
  void choose_memory_types();
  uint32_t find_memory_type(uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags avoid) const;
  VkDeviceMemory allocate_memory(VkDeviceSize bytes, uint32_t type, bool count_heap);
  void create_buffer(VkDeviceSize bytes, VkBufferUsageFlags usage, VkBuffer* buf);
  VkBuffer buffer_over(VkDeviceMemory mem, VkDeviceSize bytes);
  Block* new_block(VkDeviceSize need);
  [[noreturn]] void throw_oom(VkDeviceSize need);
  void ensure_staging();

  VkCommandBuffer cmd();  // the recording command buffer (begins one when needed)
  void barrier_if_needed();
  VkDescriptorSet allocate_set(const Pipeline& p);
  void submit(bool wait);
  void wait_frame(Frame& f);
  void collect_deferred();
  void load_pipeline_cache();
  void free_empty_blocks();
  void abandon_program();
  void launch_program();
public:
  void save_pipeline_cache();
  // Profile of recorded programs (env AIT_VK_PROFILE=1): GPU time per dispatch, summed over
  // every run but the recording one, printed to stderr at exit.
  void print_profile();

private:
  void init_profiling();
  void collect_profile();

private:
  const InstanceFns& fi_;
  DeviceFns f_;
  DeviceInfo info_;
  Limits limits_;
  VkPhysicalDeviceProperties props_{};  // queried once in create_device
  uint32_t timestamp_bits_ = 0;         // timestampValidBits of the queue family
  VkPhysicalDevice phys_ = VK_NULL_HANDLE;
  VkDevice device_ = VK_NULL_HANDLE;
  VkQueue queue_ = VK_NULL_HANDLE;
  uint32_t queue_family_ = 0;
  VkPhysicalDeviceMemoryProperties mem_props_{};
  std::recursive_mutex mu_;

  // memory
  uint32_t device_type_ = 0, staging_type_ = 0;
  VkDeviceSize heap_size_ = 0, heap_used_ = 0;
  VkDeviceSize block_size_ = 0, alloc_align_ = 256;
  std::vector<std::unique_ptr<Block>> blocks_;
  static constexpr uint32_t kDummySlices = 64;
  std::shared_ptr<VkBuf> dummy_;  // bound where a shader's binding is unused or empty
  uint32_t dummy_next_ = 0;
  VkBuffer staging_ = VK_NULL_HANDLE;
  VkDeviceMemory staging_memory_ = VK_NULL_HANDLE;
  uint8_t* staging_ptr_ = nullptr;
  VkDeviceSize staging_size_ = 0, staging_used_ = 0;
  std::vector<Deferred> deferred_;

  // execution
  VkCommandPool cmd_pool_ = VK_NULL_HANDLE;
  std::vector<Frame> frames_;
  Frame* rec_ = nullptr;  // frame being recorded, or null
  size_t next_frame_ = 0;
  uint64_t serial_ = 0;            // serial of the last begun frame
  uint64_t completed_serial_ = 0;  // every frame up to this serial has finished
  uint32_t rec_dispatches_ = 0;
  bool need_barrier_ = false;         // the next command must wait for everything before it
  std::vector<Access> since_barrier_;  // what dispatches since the last barrier touch
  bool barrier_every_dispatch_ = false;  // env AIT_VK_BARRIERS=all

  // program
  Frame program_;            // its command buffer and descriptor pools (kept while it lives)
  bool recording_ = false;   // commands go into program_
  bool keepable_ = false;    // the recording may still be kept
  bool has_program_ = false;
  uint64_t program_id_ = 0;  // of the current or last recording
  uint64_t program_runs_ = 0;
  std::shared_ptr<VkBuf> slots_;
  std::vector<uint32_t> slot_values_;

  // pipelines
  VkPipelineCache pipeline_cache_ = VK_NULL_HANDLE;
  std::string pipeline_cache_path_;
  bool pipeline_cache_dirty_ = false;
  std::map<std::string, std::unique_ptr<Pipeline>> pipelines_;
  std::map<uint64_t, std::pair<VkDescriptorSetLayout, VkPipelineLayout>> layouts_;

  // profiling: a timestamp after every dispatch of a recorded program
  VkQueryPool query_pool_ = VK_NULL_HANDLE;
  uint32_t query_capacity_ = 0, queries_used_ = 0;
  uint32_t program_barriers_ = 0, program_dispatches_ = 0;  // in the current recording
  double tick_ns_ = 1.0;
  uint64_t timestamp_mask_ = ~0ull;
  std::vector<std::string> query_labels_;  // what ran between query i - 1 and query i
  bool profile_pending_ = false;           // a profiled run was submitted and not yet read
  uint64_t profiled_runs_ = 0;
  std::map<std::string, std::pair<double, uint64_t>> profile_;  // label -> (ms, dispatches)
};

}  // namespace vk
}  // namespace ait

#endif  // AIT_VULKAN

// The Vulkan implementation of the op table (kernels.h), kernel for kernel with the CPU
// backend. Each kernel records one or more compute dispatches (shaders/*.comp, embedded at
// build time) into the runtime's command stream; see vk_runtime.h for the execution model.
// Obtain one through select_device("vulkan") (device.h). Compiled only with AIT_VULKAN.
#pragma once
#ifdef AIT_VULKAN

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/kernels.h"

namespace ait {

namespace vk {
class Context;
}

class VulkanKernels final : public Kernels {
public:
  explicit VulkanKernels(vk::Context* ctx);
  DeviceKind kind() const override { return DeviceKind::Vulkan; }
  std::string name() const override;
  vk::Context& context() { return *ctx_; }
  const vk::Context& context() const { return *ctx_; }

  // The matmul tiles: one shader source (shaders/matmul.glsl) whose geometry comes from specialization
  // constants filled from this table. Tiles are named; tests, tools and the environment variable
  // AIT_VK_MATMUL_LARGE_TILE pick them by name. The shader needs thread_m and thread_n to be
  // multiples of 4 and tile_k one of 4, 8, 16, 32 (split-K pieces are a multiple of 32 long).
  struct MatmulTile {
    const char* name;
    uint32_t tile_m, tile_n;                                  // outputs per workgroup along M and N
    uint32_t tile_k;                                          // K step: the depth of one shared-memory stage
    uint32_t thread_m, thread_n;                              // outputs per thread along M and N
    uint32_t threads_n() const { return tile_n / thread_n; }  // threads along N
    uint32_t threads() const { return tile_m / thread_m * threads_n(); }
    // Two stages (double buffering) of A [tile_k, tile_m] and B [tile_k, tile_n] in fp32.
    uint32_t shared_bytes() const { return 2 * tile_k * (tile_m + tile_n) * 4; }
  };
  static const std::vector<MatmulTile>& matmul_tiles();
  // The tile called `name`; throws ait::Error listing the known names when there is none.
  static const MatmulTile& matmul_tile(const std::string& name);
  // Throws ait::Error naming the tile and both sizes when `tile` needs more shared memory than
  // `have` bytes (`device` names the device).
  static void require_shared_memory(const MatmulTile& tile, uint32_t have, const std::string& device);

  // For tests and benchmarks. The matmul tile by name ("" for the automatic choice, see
  // choose_matmul_tile()); split-K pieces: 0 automatic, 1 never, N > 1 at most that many (pieces
  // are a multiple of 32 long, and fewer are used where the partial products would not fit the
  // scratch cap).
  void set_matmul_tile(const std::string& name);
  void set_matmul_splits(int s) { matmul_splits_ = s; }
  // The tile matmul() uses for an M x N product of `batch` items (the set one, else automatic).
  const MatmulTile& choose_matmul_tile(uint64_t M, uint64_t N, uint64_t batch) const;

  BufferPtr alloc(size_t n) override;
  void upload(Buffer& dst, const void* src, size_t n, size_t dst_off = 0) override;
  void download(const Buffer& src, void* dst, size_t n, size_t src_off = 0) override;
  void sync() override;

  void fill(Buffer& y, size_t n, float v) override;
  void axpby(Buffer& y, const Buffer& x, size_t n, float a, float b) override;
  void binary(BinaryOp op, const Buffer& a, const Buffer& b, Buffer& y, const Strided& s) override;
  void gelu(const Buffer& x, Buffer& y, size_t n) override;
  void gelu_backward(const Buffer& x, const Buffer& dy, Buffer& dx, size_t n) override;
  void dropout(const Buffer& x, Buffer& y, Buffer& mask, size_t n, float p, uint32_t seed) override;

  void permute(const Buffer& x, Buffer& y, int rank, const int64_t* x_shape, const int* perm) override;
  void copy_blocks(const Buffer& src, size_t src_off, int64_t src_stride, Buffer& dst, size_t dst_off,
                   int64_t dst_stride, int64_t outer, int64_t inner, bool accumulate) override;

  void reduce_sum(const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner, float scale) override;
  void count_positive(const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner) override;

  void matmul(const Buffer& a, const Buffer& b, Buffer& c, const MatmulArgs& args) override;

  // ---- fp16 storage (the operands of mixed-precision matmuls; docs/gpu.md) ----
  // An fp16 tensor of n values lives in a buffer of (n + 1) / 2 elements, two values per element
  // (value 2i in the low 16 bits of element i). Offsets and counts below are in values.
  // Whether the device has 16-bit storage buffers (enabled at device creation): matmul_fp16
  // needs them; the conversions do not.
  bool has_fp16_storage() const;
  // y (fp16) = x (fp32) rounded to nearest, ties to even; overflow to inf, NaN kept, gradual
  // underflow (shaders/convert_f16.comp states every case). Values [x_off, x_off + n) of x go to
  // values [2 * y_word, 2 * y_word + n) of y.
  void to_fp16(const Buffer& x, Buffer& y, size_t n, size_t x_off = 0, size_t y_word = 0);
  // y (fp32) = x (fp16), exact. Values [2 * x_word, 2 * x_word + n) of x go to [y_off, y_off + n).
  void from_fp16(const Buffer& x, Buffer& y, size_t n, size_t x_word = 0, size_t y_off = 0);
  // matmul() with A and B fp16 (lda, ldb, stride_a, stride_b, off_a and off_b in fp16 values):
  // each value is widened to fp32 as it is loaded and the products are summed in fp32, so the
  // result is the fp32 product of the fp16 inputs up to fp32 summation order; C and the bias
  // are fp32. Throws ait::Error when !has_fp16_storage().
  void matmul_fp16(const Buffer& a, const Buffer& b, Buffer& c, const MatmulArgs& args);

  void layernorm(const Buffer& x, const Buffer& w, const Buffer& b, Buffer& y, Buffer& mean, Buffer& rstd, int64_t rows,
                 int64_t cols, float eps) override;
  void layernorm_backward(const Buffer& x, const Buffer& w, const Buffer& mean, const Buffer& rstd, const Buffer& dy,
                          Buffer& dx, Buffer& dw, Buffer& db, int64_t rows, int64_t cols) override;
  void softmax(const Buffer& x, Buffer& y, int64_t rows, int64_t cols, float scale) override;
  void softmax_backward(const Buffer& y, const Buffer& dy, Buffer& dx, int64_t rows, int64_t cols,
                        float scale) override;
  void topk_gate(const Buffer& x, Buffer& y, int64_t rows, int64_t cols, int64_t k, float scale) override;
  void cross_entropy(const Buffer& logits, const Buffer& labels, Buffer& loss, Buffer& probs, int64_t rows,
                     int64_t classes) override;
  void cross_entropy_backward(const Buffer& probs, const Buffer& labels, const Buffer& dloss, Buffer& dlogits,
                              int64_t rows, int64_t classes) override;
  void l2_normalize(const Buffer& x, Buffer& y, Buffer& norm, int64_t rows, int64_t cols) override;
  void l2_normalize_backward(const Buffer& y, const Buffer& norm, const Buffer& dy, Buffer& dx, int64_t rows,
                             int64_t cols) override;

  void adamw(Buffer& p, const Buffer& g, Buffer& m, Buffer& v, size_t n, const AdamWArgs& a) override;

  // For tests: segments run from the runtime's cache of recorded command buffers, and recorded.
  uint64_t replays() const;
  uint64_t recordings() const;
  void set_replay(bool on);  // see vk::Context::set_replay

private:
  void matmul_impl(const Buffer& a, const Buffer& b, Buffer& c, const MatmulArgs& args, bool f16);
  void convert_fp16(const char* kernel, uint32_t mode, const Buffer& x, Buffer& y, size_t n, size_t x_off,
                    size_t y_off);
  void reduce_impl(const char* kernel, const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner, float scale,
                   bool count);
  vk::Context* ctx_;
  const MatmulTile* forced_tile_ = nullptr;  // set_matmul_tile(); null: automatic
  const MatmulTile* large_tile_ = nullptr;   // the automatic choice for large products on a GPU
  int matmul_splits_ = 0;
};

}  // namespace ait

#endif  // AIT_VULKAN

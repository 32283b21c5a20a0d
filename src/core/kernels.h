// The op table: every kernel the autodiff ops (ops.cpp) are built from. The CPU backend
// (cpu_kernels.cpp) and the Vulkan backend (vk_kernels.cpp + shaders/) each implement all of
// it, kernel for kernel, and the tests check one against the other.
//
// Conventions. A Buffer holds `size` 4-byte elements (float, or int32 for labels). Every
// tensor is contiguous row-major. Offsets and counts are in elements. Row-wise kernels treat
// their input as [rows, cols]. Axis reductions treat it as [outer, n, inner] and reduce n.
// Kernels may run asynchronously (Vulkan queues them); download() waits for what it reads. How
// a backend batches, records or replays its work is its own affair: callers see eager kernels.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace ait {

enum class DeviceKind { CPU, Vulkan };

class Buffer {
public:
  explicit Buffer(size_t n) : size(n) {}
  virtual ~Buffer() = default;
  const size_t size;  // elements
};
using BufferPtr = std::shared_ptr<Buffer>;

constexpr int kMaxRank = 6;

// Strided N-d description used by the broadcasting and permute kernels.
struct Strided {
  int rank = 0;
  int64_t shape[kMaxRank] = {};     // output shape
  int64_t stride_a[kMaxRank] = {};  // element strides of input a (0 on broadcast axes)
  int64_t stride_b[kMaxRank] = {};  // element strides of input b (0 on broadcast axes)
};

enum class BinaryOp { Add, Sub, Mul, Div };

struct MatmulArgs {
  int64_t batch = 1, M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;             // A is [K,M] / B is [N,K] when transposed
  int64_t lda = 0, ldb = 0, ldc = 0;                 // leading dims (row strides) of A, B, C as stored
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;  // between batch items (0: shared operand)
  int64_t off_a = 0, off_b = 0, off_c = 0;
  float alpha = 1.0f, beta = 0.0f;  // C = alpha * op(A) op(B) + beta * C
  const Buffer* bias = nullptr;     // when set: then C[b, m, n] += bias[n] (a linear layer)
};

struct AdamWArgs {
  float lr, beta1, beta2, eps, weight_decay;
  float bias_correction1, bias_correction2;  // 1 - beta^t
};

class Kernels {
public:
  virtual ~Kernels() = default;
  virtual DeviceKind kind() const = 0;
  virtual std::string name() const = 0;

  // ---- memory ----
  virtual BufferPtr alloc(size_t n) = 0;  // contents undefined
  virtual void upload(Buffer& dst, const void* src, size_t n, size_t dst_off = 0) = 0;
  virtual void download(const Buffer& src, void* dst, size_t n, size_t src_off = 0) = 0;
  virtual void sync() {}  // wait for all recorded work

  // ---- elementwise ----
  // y[i] = v
  virtual void fill(Buffer& y, size_t n, float v) = 0;
  // y[i] = a * x[i] + b * y[i]   (b == 0 overwrites y, even if it held NaN)
  virtual void axpby(Buffer& y, const Buffer& x, size_t n, float a, float b) = 0;
  // y[idx] = a[idx·stride_a] op b[idx·stride_b] over s.shape (broadcasting)
  virtual void binary(BinaryOp op, const Buffer& a, const Buffer& b, Buffer& y, const Strided& s) = 0;
  // y = gelu(x) with the exact erf form
  virtual void gelu(const Buffer& x, Buffer& y, size_t n) = 0;
  // dx = dy * gelu'(x)
  virtual void gelu_backward(const Buffer& x, const Buffer& dy, Buffer& dx, size_t n) = 0;
  // y[i] = x[i] * mask[i]; mask[i] = (uniform(seed, i) >= p) / (1 - p), drawn from the portable
  // counter-based hash in rng.h so that both backends draw the same mask.
  virtual void dropout(const Buffer& x, Buffer& y, Buffer& mask, size_t n, float p, uint32_t seed) = 0;

  // ---- data movement ----
  // y = x permuted: y axis i is x axis perm[i].
  virtual void permute(const Buffer& x, Buffer& y, int rank, const int64_t* x_shape, const int* perm) = 0;
  // For o < outer: dst[dst_off + o·dst_stride + j] (+)= src[src_off + o·src_stride + j], j < inner.
  // Concat, slice and their gradients are this one copy.
  virtual void copy_blocks(const Buffer& src, size_t src_off, int64_t src_stride, Buffer& dst, size_t dst_off,
                           int64_t dst_stride, int64_t outer, int64_t inner, bool accumulate) = 0;

  // ---- reductions over the middle axis of [outer, n, inner] ----
  // y[o, i] = scale * Σ_j x[o, j, i]
  virtual void reduce_sum(const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner, float scale) = 0;
  // y[o, i] = #{ j : x[o, j, i] > 0 }  (as float; no gradient)
  virtual void count_positive(const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner) = 0;

  // ---- matmul ----
  virtual void matmul(const Buffer& a, const Buffer& b, Buffer& c, const MatmulArgs& args) = 0;

  // ---- row-wise ----
  // y = (x - mean) * rstd * w + b per row; saves mean[rows], rstd[rows]
  virtual void layernorm(const Buffer& x, const Buffer& w, const Buffer& b, Buffer& y, Buffer& mean, Buffer& rstd,
                         int64_t rows, int64_t cols, float eps) = 0;
  // dx = row gradient; dw, db accumulate (+=) over rows
  virtual void layernorm_backward(const Buffer& x, const Buffer& w, const Buffer& mean, const Buffer& rstd,
                                  const Buffer& dy, Buffer& dx, Buffer& dw, Buffer& db, int64_t rows, int64_t cols) = 0;
  // y = softmax(scale · x) per row
  virtual void softmax(const Buffer& x, Buffer& y, int64_t rows, int64_t cols, float scale) = 0;
  // dx = scale · y ⊙ (dy - Σ_row y ⊙ dy). Also the top-k gate's backward (y is 0 off the kept set).
  virtual void softmax_backward(const Buffer& y, const Buffer& dy, Buffer& dx, int64_t rows, int64_t cols,
                                float scale) = 0;
  // Top-k gate: per row keep the k' = min(k, cols) largest of scale·x (equal values: the lower
  // column wins), softmax over them, 0 elsewhere.
  virtual void topk_gate(const Buffer& x, Buffer& y, int64_t rows, int64_t cols, int64_t k, float scale) = 0;
  // loss[r] = logsumexp(logits[r]) - logits[r, label[r]]; probs = softmax(logits). labels: int32.
  virtual void cross_entropy(const Buffer& logits, const Buffer& labels, Buffer& loss, Buffer& probs, int64_t rows,
                             int64_t classes) = 0;
  // dlogits[r] = dloss[r] · (probs[r] - onehot(label[r]))
  virtual void cross_entropy_backward(const Buffer& probs, const Buffer& labels, const Buffer& dloss, Buffer& dlogits,
                                      int64_t rows, int64_t classes) = 0;
  // y = x / ‖x‖ per row; saves norm[rows]
  virtual void l2_normalize(const Buffer& x, Buffer& y, Buffer& norm, int64_t rows, int64_t cols) = 0;
  // dx = (dy - y (y·dy)) / norm
  virtual void l2_normalize_backward(const Buffer& y, const Buffer& norm, const Buffer& dy, Buffer& dx, int64_t rows,
                                     int64_t cols) = 0;

  // ---- optimizer ----
  // PyTorch AdamW: p *= 1 - lr·wd; m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²;
  // p -= (lr / bc1) · m / (sqrt(v) / sqrt(bc2) + eps)
  virtual void adamw(Buffer& p, const Buffer& g, Buffer& m, Buffer& v, size_t n, const AdamWArgs& a) = 0;
};

// The CPU backend (always present).
Kernels& cpu();

}  // namespace ait

// The Vulkan op table: argument checks, shape bookkeeping and dispatch geometry on the host;
// the arithmetic is in shaders/*.comp (one file per op family, forward and backward together).
#include "vulkan/vk_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include "core/rng.h"
#include "core/tensor.h"  // ait::Error
#include "vulkan/vk_kernel_util.h"
#include "vulkan/vk_runtime.h"

namespace ait {

using namespace vkk;

namespace vkk {
vk::BindRange span_bind(vk::Context& ctx, const Buffer& b, const char* kernel, uint64_t first, uint64_t count,
                        uint32_t* rel) {
  const uint64_t align = ctx.limits().storage_align / 4;  // storage_align is at least 4 bytes
  uint64_t start = first / align * align;
  *rel = static_cast<uint32_t>(first - start);
  return ctx.bind(b, kernel, static_cast<size_t>(start), static_cast<size_t>(first + count - start));
}
}  // namespace vkk

std::string VulkanKernels::name() const {
  const DeviceInfo& d = ctx_->info();
  return "vulkan:" + std::to_string(d.index) + " (" + d.name + ")";
}

// ---- memory ----

BufferPtr VulkanKernels::alloc(size_t n) { return ctx_->alloc(n); }

void VulkanKernels::upload(Buffer& dst, const void* src, size_t n, size_t dst_off) {
  auto& v = const_cast<vk::VkBuf&>(ctx_->vkbuf(dst, "upload"));
  if (dst_off > v.size || n > v.size - dst_off) bad("upload", "range past the end of the buffer");
  ctx_->upload(v, src, n * 4, dst_off * 4);
}

void VulkanKernels::download(const Buffer& src, void* dst, size_t n, size_t src_off) {
  const auto& v = ctx_->vkbuf(src, "download");
  if (src_off > v.size || n > v.size - src_off) bad("download", "range past the end of the buffer");
  ctx_->download(v, dst, n * 4, src_off * 4);
}

void VulkanKernels::sync() { ctx_->sync(); }

uint64_t VulkanKernels::replays() const { return ctx_->replays(); }
uint64_t VulkanKernels::recordings() const { return ctx_->recordings(); }
void VulkanKernels::set_replay(bool on) { ctx_->set_replay(on); }

// ---- elementwise (1-D; split where a range exceeds maxStorageBufferRange) ----

namespace {
// One op of elementwise.comp (AIT_ELEMENTWISE_*, modes.h) over n elements, in pieces a binding
// can hold; bindings x, y, z (null: the dummy), push constants a, b.
void elementwise(vk::Context& ctx, uint32_t op, const char* k, size_t n, float a, float b, const Buffer* x,
                 const Buffer* y, const Buffer* z) {
  struct Pc {
    PcBase base;
    uint32_t n;
    float a, b;
  };
  auto& p = ctx.pipeline("elementwise", 3, sizeof(Pc), {op});
  auto bind = [&](const Buffer* buf, size_t off, size_t cnt) {
    return buf ? ctx.bind(*buf, k, off, cnt) : ctx.dummy();
  };
  const size_t step = ctx.max_binding_elems();
  for (size_t off = 0; off < n; off += step) {
    size_t cnt = std::min(step, n - off);
    Pc pc{{}, static_cast<uint32_t>(cnt), a, b};
    ctx.dispatch(k, p, {bind(x, off, cnt), bind(y, off, cnt), bind(z, off, cnt)}, &pc, sizeof pc, groups_for(cnt, kWG));
  }
}
}  // namespace

void VulkanKernels::fill(Buffer& y, size_t n, float v) {
  need(y, n, "fill", "y");
  elementwise(*ctx_, AIT_ELEMENTWISE_FILL, "fill", n, v, 0.0f, nullptr, &y, nullptr);
}

void VulkanKernels::axpby(Buffer& y, const Buffer& x, size_t n, float a, float b) {
  need(y, n, "axpby", "y");
  need(x, n, "axpby", "x");
  elementwise(*ctx_, AIT_ELEMENTWISE_AXPBY, "axpby", n, a, b, &x, &y, nullptr);
}

void VulkanKernels::gelu(const Buffer& x, Buffer& y, size_t n) {
  need(x, n, "gelu", "x");
  need(y, n, "gelu", "y");
  elementwise(*ctx_, AIT_ELEMENTWISE_GELU, "gelu", n, 0.0f, 0.0f, &x, &y, nullptr);
}

void VulkanKernels::gelu_backward(const Buffer& x, const Buffer& dy, Buffer& dx, size_t n) {
  const char* k = "gelu_backward";
  need(x, n, k, "x");
  need(dy, n, k, "dy");
  need(dx, n, k, "dx");
  elementwise(*ctx_, AIT_ELEMENTWISE_GELU_BACKWARD, k, n, 0.0f, 0.0f, &x, &dy, &dx);
}

// ---- dropout and AdamW (their per-step values travel as per-run values, see vk_runtime.h) ----

namespace {
uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
}  // namespace

void VulkanKernels::dropout(const Buffer& x, Buffer& y, Buffer& mask, size_t n, float p, uint32_t seed) {
  const char* k = "dropout";
  need(x, n, k, "x");
  need(y, n, k, "y");
  need(mask, n, k, "mask");
  if (n > UINT32_MAX) bad(k, "more than 2^32 elements (the mask hash index is 32-bit)");
  struct Pc {
    PcBase base;
    uint32_t n, idx_base;
    float p, scale;
    uint32_t slot;  // of the seed's hash
  };
  auto& pl = ctx_->pipeline("dropout", 4, sizeof(Pc));
  // The same expression as the CPU backend: 1 / (1 - p) in fp32 (correctly rounded on the host).
  const float scale = 1.0f / (1.0f - p);
  const vk::Context::PerRun per_run{{hash32(seed)}, offsetof(Pc, slot)};
  const size_t step = ctx_->max_binding_elems();
  for (size_t off = 0; off < n; off += step) {
    size_t cnt = std::min(step, n - off);
    Pc pc{{}, static_cast<uint32_t>(cnt), static_cast<uint32_t>(off), p, scale, 0};
    ctx_->dispatch(
        k, pl, {ctx_->bind(x, k, off, cnt), ctx_->bind(y, k, off, cnt), ctx_->bind(mask, k, off, cnt), ctx_->slots()},
        &pc, sizeof pc, groups_for(cnt, kWG), 1, 1, &per_run);
  }
}

void VulkanKernels::adamw(Buffer& p, const Buffer& g, Buffer& m, Buffer& v, size_t n, const AdamWArgs& a) {
  const char* k = "adamw";
  need(p, n, k, "p");
  need(g, n, k, "g");
  need(m, n, k, "m");
  need(v, n, k, "v");
  struct Pc {
    PcBase base;
    uint32_t n;
    float beta1, beta2, c1, c2, eps;
    uint32_t slot;  // of decay, step and bc2_sqrt
  };
  auto& pl = ctx_->pipeline("adamw", 5, sizeof(Pc));
  // The step's constants, computed exactly as the CPU backend computes them; they change with
  // the learning rate and the step count.
  const float decay = 1.0f - a.lr * a.weight_decay, step_size = a.lr / a.bias_correction1;
  const float bc2_sqrt = std::sqrt(a.bias_correction2);
  const vk::Context::PerRun per_run{{bits(decay), bits(step_size), bits(bc2_sqrt)}, offsetof(Pc, slot)};
  const size_t step = ctx_->max_binding_elems();
  for (size_t off = 0; off < n; off += step) {
    size_t cnt = std::min(step, n - off);
    Pc pc{{}, static_cast<uint32_t>(cnt), a.beta1, a.beta2, 1.0f - a.beta1, 1.0f - a.beta2, a.eps, 0};
    ctx_->dispatch(k, pl,
                   {ctx_->bind(p, k, off, cnt), ctx_->bind(g, k, off, cnt), ctx_->bind(m, k, off, cnt),
                    ctx_->bind(v, k, off, cnt), ctx_->slots()},
                   &pc, sizeof pc, groups_for(cnt, kWG), 1, 1, &per_run);
  }
}

// ---- broadcasting binary ----

void VulkanKernels::binary(BinaryOp op, const Buffer& a, const Buffer& b, Buffer& y, const Strided& s) {
  const char* k = "binary";
  if (s.rank < 0 || s.rank > kMaxRank) bad(k, "rank " + std::to_string(s.rank) + " out of range");
  // Drop unit axes, then merge neighbours that are contiguous in both inputs.
  int64_t shape[kMaxRank], sa[kMaxRank], sb[kMaxRank];
  int r = 0;
  uint64_t total = 1, reach_a = 1, reach_b = 1;
  for (int d = 0; d < s.rank; ++d) {
    if (s.shape[d] < 0 || s.stride_a[d] < 0 || s.stride_b[d] < 0) bad(k, "negative shape or stride");
    total *= static_cast<uint64_t>(s.shape[d]);
    if (s.shape[d] == 1) continue;
    if (s.shape[d] > 0) {
      reach_a += static_cast<uint64_t>(s.shape[d] - 1) * static_cast<uint64_t>(s.stride_a[d]);
      reach_b += static_cast<uint64_t>(s.shape[d] - 1) * static_cast<uint64_t>(s.stride_b[d]);
    }
    if (r > 0 && sa[r - 1] == s.stride_a[d] * s.shape[d] && sb[r - 1] == s.stride_b[d] * s.shape[d]) {
      shape[r - 1] *= s.shape[d];
      sa[r - 1] = s.stride_a[d];
      sb[r - 1] = s.stride_b[d];
      continue;
    }
    shape[r] = s.shape[d];
    sa[r] = s.stride_a[d];
    sb[r] = s.stride_b[d];
    ++r;
  }
  if (total == 0) return;
  if (r == 0) {
    shape[0] = 1;
    sa[0] = sb[0] = 0;
    r = 1;
  }
  need(y, total, k, "y");
  need(a, reach_a, k, "a");
  need(b, reach_b, k, "b");
  struct Pc {
    PcBase base;
    uint32_t rank, total, shape[6], sa[6], sb[6];
  } pc{};
  pc.rank = static_cast<uint32_t>(r);
  pc.total = u32(static_cast<int64_t>(total), k, "element count");
  for (int d = 0; d < r; ++d) {
    pc.shape[d] = u32(shape[d], k, "shape");
    pc.sa[d] = u32(sa[d], k, "stride_a");
    pc.sb[d] = u32(sb[d], k, "stride_b");
  }
  auto& p = ctx_->pipeline("binary", 3, sizeof(Pc), {static_cast<uint32_t>(op)});
  ctx_->dispatch(k, p, {ctx_->bind(a, k, 0, reach_a), ctx_->bind(b, k, 0, reach_b), ctx_->bind(y, k, 0, total)}, &pc,
                 sizeof pc, groups_for(total, kWG));
}

// ---- data movement ----

void VulkanKernels::permute(const Buffer& x, Buffer& y, int rank, const int64_t* x_shape, const int* perm) {
  const char* k = "permute";
  if (rank < 0 || rank > kMaxRank) bad(k, "rank " + std::to_string(rank) + " out of range");
  int64_t xstride[kMaxRank];
  uint64_t total = 1;
  bool seen[kMaxRank] = {};
  for (int d = rank - 1; d >= 0; --d) {
    if (x_shape[d] < 0) bad(k, "negative shape");
    xstride[d] = static_cast<int64_t>(total);
    total *= static_cast<uint64_t>(x_shape[d]);
  }
  for (int i = 0; i < rank; ++i) {
    if (perm[i] < 0 || perm[i] >= rank || seen[perm[i]]) bad(k, "perm is not a permutation");
    seen[perm[i]] = true;
  }
  if (total == 0) return;
  need(x, total, k, "x");
  need(y, total, k, "y");
  int64_t shape[kMaxRank], stride[kMaxRank];
  int r = 0;
  for (int i = 0; i < rank; ++i) {
    int64_t sh = x_shape[perm[i]], st = xstride[perm[i]];
    if (sh == 1) continue;
    if (r > 0 && stride[r - 1] == st * sh) {
      shape[r - 1] *= sh;
      stride[r - 1] = st;
      continue;
    }
    shape[r] = sh;
    stride[r] = st;
    ++r;
  }
  if (r == 0) {
    shape[0] = 1;
    stride[0] = 1;
    r = 1;
  }
  struct Pc {
    PcBase base;
    uint32_t rank, total, shape[6], stride[6];
  } pc{};
  pc.rank = static_cast<uint32_t>(r);
  pc.total = u32(static_cast<int64_t>(total), k, "element count");
  for (int d = 0; d < r; ++d) {
    pc.shape[d] = u32(shape[d], k, "shape");
    pc.stride[d] = u32(stride[d], k, "stride");
  }
  // Four elements per thread when the innermost output axis is contiguous in x, a multiple of
  // 4 long, and every other stride keeps vec4 alignment.
  bool vec4 = stride[r - 1] == 1 && shape[r - 1] % 4 == 0;
  for (int d = 0; d + 1 < r; ++d) vec4 = vec4 && stride[d] % 4 == 0;
  auto& p = ctx_->pipeline("permute", 2, sizeof(Pc), {vec4 ? 1u : 0u});
  ctx_->dispatch(k, p, {ctx_->bind(x, k, 0, total), ctx_->bind(y, k, 0, total)}, &pc, sizeof pc,
                 groups_for(vec4 ? total / 4 : total, kWG));
}

void VulkanKernels::copy_blocks(const Buffer& src, size_t src_off, int64_t src_stride, Buffer& dst, size_t dst_off,
                                int64_t dst_stride, int64_t outer, int64_t inner, bool accumulate) {
  const char* k = "copy_blocks";
  if (outer < 0 || inner < 0 || src_stride < 0 || dst_stride < 0) bad(k, "negative count or stride");
  if (outer == 0 || inner == 0) return;
  const uint64_t rows_before_last = static_cast<uint64_t>(outer - 1), row = static_cast<uint64_t>(inner);
  uint64_t src_span = rows_before_last * static_cast<uint64_t>(src_stride) + row;
  uint64_t dst_span = rows_before_last * static_cast<uint64_t>(dst_stride) + row;
  need(src, src_off + src_span, k, "src");
  need(dst, dst_off + dst_span, k, "dst");
  struct Pc {
    PcBase base;
    uint32_t outer, inner, src_off, src_stride, dst_off, dst_stride;
  } pc{};
  pc.outer = u32(outer, k, "outer");
  pc.inner = u32(inner, k, "inner");
  u32(outer * inner, k, "outer * inner");
  pc.src_stride = u32(src_stride, k, "src_stride");
  pc.dst_stride = u32(dst_stride, k, "dst_stride");
  auto bs = span_bind(*ctx_, src, k, src_off, src_span, &pc.src_off);
  auto bd = span_bind(*ctx_, dst, k, dst_off, dst_span, &pc.dst_off);
  auto& p = ctx_->pipeline("copy_blocks", 2, sizeof(Pc), {accumulate ? 1u : 0u});
  ctx_->dispatch(k, p, {bs, bd}, &pc, sizeof pc, groups_for(static_cast<uint64_t>(outer * inner), kWG));
}

// ---- reductions ----

void VulkanKernels::reduce_impl(const char* k, const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner,
                                float scale, bool count) {
  if (outer < 0 || n < 0 || inner < 0) bad(k, "negative extent");
  if (outer == 0 || inner == 0) return;
  uint64_t out_elems = static_cast<uint64_t>(outer) * static_cast<uint64_t>(inner);
  need(y, out_elems, k, "y");
  if (n == 0) {
    fill(y, out_elems, 0.0f);
    return;
  }
  need(x, out_elems * static_cast<uint64_t>(n), k, "x");
  struct Pc {
    PcBase base;
    uint32_t outer, n, inner, chunk, nchunks;
    float scale;
  };
  const bool rows = inner == 1;
  const uint64_t chunk = rows ? 8192 : 512;  // elements of n per workgroup
  BufferPtr tmp_in, tmp_out;
  const Buffer* in = &x;
  uint64_t cur_n = static_cast<uint64_t>(n);
  bool first = true;
  for (;;) {
    uint64_t nchunks = groups_for(cur_n, chunk);
    bool last = nchunks == 1;
    Buffer* out = &y;
    if (!last) {
      tmp_out = ctx_->alloc(static_cast<size_t>(out_elems * nchunks));
      out = tmp_out.get();
    }
    Pc pc{{},
          u32(outer, k, "outer"),
          u32(static_cast<int64_t>(cur_n), k, "n"),
          u32(inner, k, "inner"),
          static_cast<uint32_t>(chunk),
          static_cast<uint32_t>(nchunks),
          last ? scale : 1.0f};
    const uint32_t mode = rows ? AIT_REDUCE_ROWS : AIT_REDUCE_COLUMNS;
    auto& p = ctx_->pipeline("reduce", 2, sizeof(Pc), {mode, (first && count) ? 1u : 0u});
    std::vector<vk::BindRange> binds = {ctx_->bind(*in, k, 0, static_cast<size_t>(out_elems * cur_n)),
                                        ctx_->bind(*out, k, 0, static_cast<size_t>(out_elems * nchunks))};
    if (rows) ctx_->dispatch(k, p, binds, &pc, sizeof pc, nchunks, static_cast<uint64_t>(outer));
    else
      ctx_->dispatch(k, p, binds, &pc, sizeof pc, groups_for(static_cast<uint64_t>(inner), 64), nchunks,
                     static_cast<uint64_t>(outer));
    if (last) break;
    // Freed buffers may be reused at once: barriers order the recorded dispatches.
    tmp_in = tmp_out;
    in = tmp_in.get();
    cur_n = nchunks;
    first = false;
  }
}

void VulkanKernels::reduce_sum(const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner, float scale) {
  reduce_impl("reduce_sum", x, y, outer, n, inner, scale, false);
}

void VulkanKernels::count_positive(const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner) {
  reduce_impl("count_positive", x, y, outer, n, inner, 1.0f, true);
}

// ---- row-wise ----

namespace {
struct PcRows {
  PcBase base;
  uint32_t rows, cols, lanes;
  float f;
};
struct PcRows2 {
  PcBase base;
  uint32_t rows, cols, lanes;
};
// Threads per row for the row-wise shaders: the power of two covering the row, at most a
// workgroup; a workgroup then takes kWG / lanes rows.
uint32_t lanes_for(int64_t cols) {
  uint32_t l = 1;
  while (l < kWG && static_cast<int64_t>(l) < cols) l <<= 1;
  return l;
}
uint64_t row_groups(int64_t rows, uint32_t lanes) { return groups_for(static_cast<uint64_t>(rows), kWG / lanes); }

// Checks a row-wise kernel's [rows, cols] extent and returns rows·cols, or 0 when there is
// nothing to do. Forward kernels that write per-row results treat zero columns as an error
// (there is no row to normalise); backward kernels have nothing to do.
uint64_t row_extent(const char* k, int64_t rows, int64_t cols, bool zero_cols_is_error) {
  if (rows < 0 || cols < 0) bad(k, "negative extent");
  if (rows == 0) return 0;
  if (cols == 0) {
    if (zero_cols_is_error) bad(k, "zero columns");
    return 0;
  }
  return static_cast<uint64_t>(rows) * static_cast<uint64_t>(cols);
}
}  // namespace

void VulkanKernels::layernorm(const Buffer& x, const Buffer& w, const Buffer& b, Buffer& y, Buffer& mean, Buffer& rstd,
                              int64_t rows, int64_t cols, float eps) {
  const char* k = "layernorm";
  const uint64_t n = row_extent(k, rows, cols, true);
  if (n == 0) return;
  need(x, n, k, "x");
  need(y, n, k, "y");
  need(w, static_cast<uint64_t>(cols), k, "w");
  need(b, static_cast<uint64_t>(cols), k, "b");
  need(mean, static_cast<uint64_t>(rows), k, "mean");
  need(rstd, static_cast<uint64_t>(rows), k, "rstd");
  PcRows pc{{}, u32(rows, k, "rows"), u32(cols, k, "cols"), lanes_for(cols), eps};
  auto& p = ctx_->pipeline("layernorm", 6, sizeof pc);
  ctx_->dispatch(k, p,
                 {ctx_->bind(x, k, 0, n), ctx_->bind(w, k, 0, cols), ctx_->bind(b, k, 0, cols), ctx_->bind(y, k, 0, n),
                  ctx_->bind(mean, k, 0, rows), ctx_->bind(rstd, k, 0, rows)},
                 &pc, sizeof pc, row_groups(rows, pc.lanes));
}

void VulkanKernels::layernorm_backward(const Buffer& x, const Buffer& w, const Buffer& mean, const Buffer& rstd,
                                       const Buffer& dy, Buffer& dx, Buffer& dw, Buffer& db, int64_t rows,
                                       int64_t cols) {
  const char* k = "layernorm_backward";
  const uint64_t n = row_extent(k, rows, cols, false);
  if (n == 0) return;
  need(x, n, k, "x");
  need(dy, n, k, "dy");
  need(dx, n, k, "dx");
  need(w, static_cast<uint64_t>(cols), k, "w");
  need(dw, static_cast<uint64_t>(cols), k, "dw");
  need(db, static_cast<uint64_t>(cols), k, "db");
  need(mean, static_cast<uint64_t>(rows), k, "mean");
  need(rstd, static_cast<uint64_t>(rows), k, "rstd");
  PcRows2 pc{{}, u32(rows, k, "rows"), u32(cols, k, "cols"), lanes_for(cols)};
  auto& p = ctx_->pipeline("layernorm_backward", 6, sizeof pc);
  ctx_->dispatch(k, p,
                 {ctx_->bind(x, k, 0, n), ctx_->bind(w, k, 0, cols), ctx_->bind(mean, k, 0, rows),
                  ctx_->bind(rstd, k, 0, rows), ctx_->bind(dy, k, 0, n), ctx_->bind(dx, k, 0, n)},
                 &pc, sizeof pc, row_groups(rows, pc.lanes));

  // dw, db: two-pass deterministic column reduction over row chunks.
  struct PcP {
    PcBase base;
    uint32_t rows, cols, chunk_rows, nchunks;  // one chunk: the shader adds into dw, db directly
  };
  const uint32_t chunk_rows = 128;
  const uint64_t nchunks = groups_for(static_cast<uint64_t>(rows), chunk_rows);
  const bool direct = nchunks == 1;
  BufferPtr tmp;
  vk::BindRange bt = ctx_->dummy();
  if (!direct) {
    tmp = ctx_->alloc(static_cast<size_t>(nchunks * 2 * static_cast<uint64_t>(cols)));
    bt = ctx_->bind(*tmp, k);
  }
  PcP pp{{}, pc.rows, pc.cols, chunk_rows, static_cast<uint32_t>(nchunks)};
  std::vector<vk::BindRange> binds = {ctx_->bind(x, k, 0, n),
                                      ctx_->bind(mean, k, 0, rows),
                                      ctx_->bind(rstd, k, 0, rows),
                                      ctx_->bind(dy, k, 0, n),
                                      ctx_->bind(dw, k, 0, cols),
                                      ctx_->bind(db, k, 0, cols),
                                      bt};
  auto& p0 = ctx_->pipeline("layernorm_backward_params", 7, sizeof pp, {AIT_LN_PARAMS_PARTIAL});
  ctx_->dispatch(k, p0, binds, &pp, sizeof pp, groups_for(static_cast<uint64_t>(cols), 64), nchunks);
  if (!direct) {
    auto& p1 = ctx_->pipeline("layernorm_backward_params", 7, sizeof pp, {AIT_LN_PARAMS_FINAL});
    ctx_->dispatch(k, p1, binds, &pp, sizeof pp, groups_for(static_cast<uint64_t>(cols), kWG));
  }
}

void VulkanKernels::softmax(const Buffer& x, Buffer& y, int64_t rows, int64_t cols, float scale) {
  const char* k = "softmax";
  const uint64_t n = row_extent(k, rows, cols, false);
  if (n == 0) return;
  need(x, n, k, "x");
  need(y, n, k, "y");
  PcRows pc{{}, u32(rows, k, "rows"), u32(cols, k, "cols"), lanes_for(cols), scale};
  auto& p = ctx_->pipeline("softmax", 3, sizeof pc, {AIT_MODE_FORWARD});
  ctx_->dispatch(k, p, {ctx_->bind(x, k, 0, n), ctx_->dummy(), ctx_->bind(y, k, 0, n)}, &pc, sizeof pc,
                 row_groups(rows, pc.lanes));
}

void VulkanKernels::softmax_backward(const Buffer& y, const Buffer& dy, Buffer& dx, int64_t rows, int64_t cols,
                                     float scale) {
  const char* k = "softmax_backward";
  const uint64_t n = row_extent(k, rows, cols, false);
  if (n == 0) return;
  need(y, n, k, "y");
  need(dy, n, k, "dy");
  need(dx, n, k, "dx");
  PcRows pc{{}, u32(rows, k, "rows"), u32(cols, k, "cols"), lanes_for(cols), scale};
  auto& p = ctx_->pipeline("softmax", 3, sizeof pc, {AIT_MODE_BACKWARD});
  ctx_->dispatch(k, p, {ctx_->bind(y, k, 0, n), ctx_->bind(dy, k, 0, n), ctx_->bind(dx, k, 0, n)}, &pc, sizeof pc,
                 row_groups(rows, pc.lanes));
}

void VulkanKernels::topk_gate(const Buffer& x, Buffer& y, int64_t rows, int64_t cols, int64_t kk, float scale) {
  const char* k = "topk_gate";
  const uint64_t n = row_extent(k, rows, cols, false);
  if (n == 0) return;
  need(x, n, k, "x");
  need(y, n, k, "y");
  struct Pc {
    PcBase base;
    uint32_t rows, cols, k;
    float scale;
  } pc{{}, u32(rows, k, "rows"), u32(cols, k, "cols"), static_cast<uint32_t>(std::clamp<int64_t>(kk, 0, cols)), scale};
  auto& p = ctx_->pipeline("topk_gate", 2, sizeof pc);
  ctx_->dispatch(k, p, {ctx_->bind(x, k, 0, n), ctx_->bind(y, k, 0, n)}, &pc, sizeof pc, static_cast<uint64_t>(rows));
}

void VulkanKernels::cross_entropy(const Buffer& logits, const Buffer& labels, Buffer& loss, Buffer& probs, int64_t rows,
                                  int64_t classes) {
  const char* k = "cross_entropy";
  const uint64_t n = row_extent(k, rows, classes, true);
  if (n == 0) return;
  need(logits, n, k, "logits");
  need(probs, n, k, "probs");
  need(labels, static_cast<uint64_t>(rows), k, "labels");
  need(loss, static_cast<uint64_t>(rows), k, "loss");
  PcRows2 pc{{}, u32(rows, k, "rows"), u32(classes, k, "classes"), lanes_for(classes)};
  auto& p = ctx_->pipeline("cross_entropy", 4, sizeof pc, {AIT_MODE_FORWARD});
  ctx_->dispatch(k, p,
                 {ctx_->bind(logits, k, 0, n), ctx_->bind(labels, k, 0, rows), ctx_->bind(loss, k, 0, rows),
                  ctx_->bind(probs, k, 0, n)},
                 &pc, sizeof pc, row_groups(rows, pc.lanes));
}

void VulkanKernels::cross_entropy_backward(const Buffer& probs, const Buffer& labels, const Buffer& dloss,
                                           Buffer& dlogits, int64_t rows, int64_t classes) {
  const char* k = "cross_entropy_backward";
  const uint64_t n = row_extent(k, rows, classes, false);
  if (n == 0) return;
  need(probs, n, k, "probs");
  need(dlogits, n, k, "dlogits");
  need(labels, static_cast<uint64_t>(rows), k, "labels");
  need(dloss, static_cast<uint64_t>(rows), k, "dloss");
  u32(static_cast<int64_t>(n), k, "rows * classes");
  PcRows2 pc{{}, u32(rows, k, "rows"), u32(classes, k, "classes"), 1};
  auto& p = ctx_->pipeline("cross_entropy", 4, sizeof pc, {AIT_MODE_BACKWARD});
  ctx_->dispatch(k, p,
                 {ctx_->bind(probs, k, 0, n), ctx_->bind(labels, k, 0, rows), ctx_->bind(dloss, k, 0, rows),
                  ctx_->bind(dlogits, k, 0, n)},
                 &pc, sizeof pc, groups_for(n, kWG));
}

void VulkanKernels::l2_normalize(const Buffer& x, Buffer& y, Buffer& norm, int64_t rows, int64_t cols) {
  const char* k = "l2_normalize";
  const uint64_t n = row_extent(k, rows, cols, true);
  if (n == 0) return;
  need(x, n, k, "x");
  need(y, n, k, "y");
  need(norm, static_cast<uint64_t>(rows), k, "norm");
  PcRows2 pc{{}, u32(rows, k, "rows"), u32(cols, k, "cols"), lanes_for(cols)};
  auto& p = ctx_->pipeline("l2_normalize", 4, sizeof pc, {AIT_MODE_FORWARD});
  ctx_->dispatch(k, p, {ctx_->bind(x, k, 0, n), ctx_->bind(norm, k, 0, rows), ctx_->bind(y, k, 0, n), ctx_->dummy()},
                 &pc, sizeof pc, row_groups(rows, pc.lanes));
}

void VulkanKernels::l2_normalize_backward(const Buffer& y, const Buffer& norm, const Buffer& dy, Buffer& dx,
                                          int64_t rows, int64_t cols) {
  const char* k = "l2_normalize_backward";
  const uint64_t n = row_extent(k, rows, cols, false);
  if (n == 0) return;
  need(y, n, k, "y");
  need(dy, n, k, "dy");
  need(dx, n, k, "dx");
  need(norm, static_cast<uint64_t>(rows), k, "norm");
  PcRows2 pc{{}, u32(rows, k, "rows"), u32(cols, k, "cols"), lanes_for(cols)};
  auto& p = ctx_->pipeline("l2_normalize", 4, sizeof pc, {AIT_MODE_BACKWARD});
  ctx_->dispatch(
      k, p, {ctx_->bind(y, k, 0, n), ctx_->bind(norm, k, 0, rows), ctx_->bind(dy, k, 0, n), ctx_->bind(dx, k, 0, n)},
      &pc, sizeof pc, row_groups(rows, pc.lanes));
}

}  // namespace ait

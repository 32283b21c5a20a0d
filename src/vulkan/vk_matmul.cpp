// The Vulkan matmul: the named tile table, the automatic tile and split-K choice, and the
// dispatches of shaders/matmul.comp or matmul_f16.comp (both built from matmul.glsl; fp32 or fp16
// A and B) and of matmul_reduce.comp for split-K.
#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "vulkan/vk_kernel_util.h"
#include "vulkan/vk_kernels.h"
#include "vulkan/vk_runtime.h"

namespace ait {

using namespace vkk;

// ---- matmul ----

// The tile table of shaders/matmul.glsl (both operand precisions). Shared memory = 2 (double
// buffer) * K step * (M + N) * 4. The names are the ones AIT_VK_MATMUL_LARGE_TILE, the tests and
// the tools use.
const std::vector<VulkanKernels::MatmulTile>& VulkanKernels::matmul_tiles() {
  static const std::vector<MatmulTile> tiles = {
      // name                 tile M  N    K step  per thread M x N
      {"matmul64", 64, 64, 16, 4, 4},            // 256 threads, 16 KiB
      {"matmul128", 128, 128, 8, 8, 8},          // 256 threads, 16 KiB
      {"matmul128x64", 128, 64, 8, 8, 4},        // 256 threads, 12 KiB
      {"matmul128x64t128", 128, 64, 16, 8, 8},   // 128 threads, 24 KiB
      {"matmul128x64t128k8", 128, 64, 8, 8, 8},  // 128 threads, 12 KiB (devices with 16 KiB)
      // Not chosen automatically; candidates for AIT_VK_MATMUL_LARGE_TILE on other GPUs. On the
      // H200, at each tile's best split, both were 0-10% slower than matmul128x64t128 at every
      // AiT-Small shape (and that tile with a K step of 32, in 48 KiB, 20-30% slower).
      {"matmul64x128t128", 64, 128, 16, 8, 8},  // 128 threads, 24 KiB
      {"matmul64x64t64", 64, 64, 16, 8, 8},     // 64 threads, 16 KiB
  };
  return tiles;
}

namespace {
// The tiles the automatic choice uses (VulkanKernels::choose_matmul_tile).
constexpr const char* kSmallTile = "matmul64";                  // small or thin products
constexpr const char* kCpuLargeTile = "matmul128";              // large products on a CPU-type device
constexpr const char* kGpuLargeTile = "matmul128x64t128";       // large products on a GPU
constexpr const char* kGpuLargeTile16K = "matmul128x64t128k8";  // the same where 16 KiB is all there is

const VulkanKernels::MatmulTile* find_matmul_tile(const std::string& name) {
  for (const auto& t : VulkanKernels::matmul_tiles())
    if (name == t.name) return &t;
  return nullptr;
}

std::string matmul_tile_names() {
  std::string s;
  for (const auto& t : VulkanKernels::matmul_tiles()) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}
}  // namespace

const VulkanKernels::MatmulTile& VulkanKernels::matmul_tile(const std::string& name) {
  const MatmulTile* t = find_matmul_tile(name);
  if (!t) throw Error("vulkan matmul: no tile named '" + name + "' (the tiles: " + matmul_tile_names() + ")");
  return *t;
}

void VulkanKernels::require_shared_memory(const MatmulTile& tile, uint32_t have, const std::string& device) {
  if (tile.shared_bytes() > have)
    throw Error(std::string("vulkan matmul: tile ") + tile.name + " needs " + std::to_string(tile.shared_bytes()) +
                " bytes of shared memory, " + device + " has " + std::to_string(have));
}

// (The constructor's only work is this choice, so it is defined here.)
VulkanKernels::VulkanKernels(vk::Context* ctx) : ctx_(ctx) {
  // The tile for large products on a GPU (see choose_matmul_tile()): the measured best where the
  // device has its shared memory, else its twin with half the K step, unless the environment
  // variable AIT_VK_MATMUL_LARGE_TILE names another tile of matmul_tiles() (for comparing whole
  // training steps).
  const MatmulTile& best = matmul_tile(kGpuLargeTile);
  large_tile_ = best.shared_bytes() <= ctx_->limits().max_shared_memory ? &best : &matmul_tile(kGpuLargeTile16K);
  if (const char* env = std::getenv("AIT_VK_MATMUL_LARGE_TILE"); env && *env) {
    large_tile_ = find_matmul_tile(env);
    if (!large_tile_)
      throw Error(std::string("AIT_VK_MATMUL_LARGE_TILE=") + env +
                  ": no such matmul tile (the tiles: " + matmul_tile_names() + ")");
  }
}

void VulkanKernels::set_matmul_tile(const std::string& name) {
  forced_tile_ = name.empty() ? nullptr : &matmul_tile(name);
}

// The automatic choice, measured on an NVIDIA H200 at the AiT-Small shapes
// (tools/ait-vk-matmul-bench.cpp, docs/gpu-h200.md): the 128 x 64 tile of 128 threads with 8 x 8
// outputs each (kGpuLargeTile) beats the 256-thread tiles at every shape, by 2% (mlp1) to 22% at
// each one's best split. It is the choice for products of at least 128 x 64 on a GPU: K step 16
// where the device offers the 24 KiB of shared memory, else K step 8 (kGpuLargeTile16K; see the
// constructor, which also reads AIT_VK_MATMUL_LARGE_TILE). A CPU-type device (lavapipe) runs the
// 256-thread 128 x 128 tile (kCpuLargeTile) faster, once it makes at least 64 workgroups. Other
// products take the 64 x 64 tile (kSmallTile), which leaves fewer workgroups idle. Any tile may
// then be split along K (split_k_pieces).
const VulkanKernels::MatmulTile& VulkanKernels::choose_matmul_tile(uint64_t M, uint64_t N, uint64_t batch) const {
  if (forced_tile_) return *forced_tile_;
  if (ctx_->info().type != "cpu" && M >= 128 && N >= 64) return *large_tile_;
  static const MatmulTile& cpu_large = matmul_tile(kCpuLargeTile);
  static const MatmulTile& small = matmul_tile(kSmallTile);
  const bool big = M >= cpu_large.tile_m && N >= cpu_large.tile_n &&
                   groups_for(M, cpu_large.tile_m) * groups_for(N, cpu_large.tile_n) * batch >= 64;
  return big ? cpu_large : small;
}

namespace {
// Push constants of matmul.glsl and matmul_reduce.comp.
struct MatmulPc {
  PcBase base;
  uint32_t M, N, K, lda, ldb, ldc, stride_a, stride_b, stride_c, off_a, off_b, off_c;
  float alpha, beta;
  uint32_t k_len, splits, split_stride_c;
};
struct MatmulReducePc {
  PcBase base;
  uint32_t M, N, batch, splits, ldc, stride_c, off_c;
  float alpha, beta;
};

// The elements an operand [batch][rows, cols] with leading dimension ld reaches from its offset.
uint64_t operand_span(uint64_t batch, uint64_t stride, uint64_t rows, uint64_t ld, uint64_t cols) {
  if (rows == 0 || cols == 0) return 0;
  return (batch - 1) * stride + (rows - 1) * ld + cols;
}

// The operands' reach in elements and the column counts of A and B as stored.
struct MatmulExtents {
  uint64_t span_a, span_b, span_c, a_cols, b_cols;
};

// Buffer elements (4 bytes) that hold `values` operand values: two per element for fp16.
uint64_t operand_elems(uint64_t values, bool f16) { return f16 ? (values + 1) / 2 : values; }

// Checks the arguments of a non-empty product against each other and the buffers (A and B hold
// fp16 pairs with `f16`).
MatmulExtents check_matmul(const Buffer& a, const Buffer& b, const Buffer& c, const MatmulArgs& g, bool f16,
                           const char* k) {
  const uint64_t B = static_cast<uint64_t>(g.batch), M = static_cast<uint64_t>(g.M), N = static_cast<uint64_t>(g.N),
                 K = static_cast<uint64_t>(g.K);
  const uint64_t a_rows = g.trans_a ? K : M, a_cols = g.trans_a ? M : K;
  const uint64_t b_rows = g.trans_b ? N : K, b_cols = g.trans_b ? K : N;
  // (A leading dimension only matters when there is more than one row.)
  if (K > 0 && a_rows > 1 && static_cast<uint64_t>(g.lda) < a_cols) bad(k, "lda smaller than the row length of A");
  if (K > 0 && b_rows > 1 && static_cast<uint64_t>(g.ldb) < b_cols) bad(k, "ldb smaller than the row length of B");
  if (M > 1 && static_cast<uint64_t>(g.ldc) < N) bad(k, "ldc smaller than N");
  MatmulExtents e{operand_span(B, static_cast<uint64_t>(g.stride_a), a_rows, static_cast<uint64_t>(g.lda), a_cols),
                  operand_span(B, static_cast<uint64_t>(g.stride_b), b_rows, static_cast<uint64_t>(g.ldb), b_cols),
                  operand_span(B, static_cast<uint64_t>(g.stride_c), M, static_cast<uint64_t>(g.ldc), N), a_cols,
                  b_cols};
  need(a, operand_elems(static_cast<uint64_t>(g.off_a) + e.span_a, f16), k, "A");
  need(b, operand_elems(static_cast<uint64_t>(g.off_b) + e.span_b, f16), k, "B");
  need(c, static_cast<uint64_t>(g.off_c) + e.span_c, k, "C");
  if (g.bias) need(*g.bias, N, k, "bias");
  return e;
}

// The push constants without split-K; the offsets are filled in when the operands are bound.
MatmulPc matmul_push(const MatmulArgs& g, const char* k) {
  MatmulPc pc{};
  pc.M = u32(g.M, k, "M");
  pc.N = u32(g.N, k, "N");
  pc.K = u32(g.K, k, "K");
  pc.lda = u32(g.lda, k, "lda");
  pc.ldb = u32(g.ldb, k, "ldb");
  pc.ldc = u32(g.ldc, k, "ldc");
  pc.stride_a = u32(g.stride_a, k, "stride_a");
  pc.stride_b = u32(g.stride_b, k, "stride_b");
  pc.stride_c = u32(g.stride_c, k, "stride_c");
  pc.alpha = g.alpha;
  pc.beta = g.beta;
  pc.k_len = pc.K;
  pc.splits = 1;
  pc.split_stride_c = 0;
  return pc;
}

// vec4 loads need every row start of the operand 16-byte aligned inside the binding and the
// contiguous dimension a multiple of 4 (a vec4 never straddles the edge).
bool vec4_loads_ok(uint32_t off, uint64_t ld, uint64_t stride, uint64_t contiguous, uint64_t batch) {
  return off % 4 == 0 && ld % 4 == 0 && (batch == 1 || stride % 4 == 0) && contiguous % 4 == 0;
}

// The bound operands of one product and the flags of its pipeline.
struct MatmulOperands {
  vk::BindRange a, b, c, bias;
  bool vec_a = false, vec_b = false;
  bool f16 = false;  // A and B are fp16 (matmul_f16.comp)
};

// Binds operand values [first, first + count) (fp16 ones with `f16`, two per buffer element);
// *rel receives first's index, in values, inside the binding.
vk::BindRange operand_bind(vk::Context& ctx, const Buffer& buf, bool f16, const char* k, uint64_t first, uint64_t count,
                           uint32_t* rel) {
  if (count == 0) return ctx.dummy();
  if (!f16) return span_bind(ctx, buf, k, first, count, rel);
  const uint64_t first_elem = first / 2, end_elem = (first + count + 1) / 2;
  uint32_t rel_elems = 0;
  vk::BindRange r = span_bind(ctx, buf, k, first_elem, end_elem - first_elem, &rel_elems);
  *rel = rel_elems * 2 + static_cast<uint32_t>(first % 2);
  return r;
}

// Split-K: how many pieces of K (each k_len long, set in pc) the product runs in; 1 for none.
// `requested`: 0 automatic, else at most that many. The partial products [pieces, batch, M, N]
// must fit the scratch cap (elements).
uint64_t split_k_pieces(uint64_t requested, uint64_t tiles, uint64_t B, uint64_t M, uint64_t N, uint64_t K,
                        uint64_t scratch_cap, MatmulPc& pc) {
  uint64_t splits = requested;
  if (splits == 0) {
    splits = 1;
    // Split-K when the output has too few tiles to fill a GPU but K is long (weight gradients:
    // small M x N, K = batch x tokens): about 640 workgroups (a few per compute unit on a large
    // GPU) with K pieces of at least 256. On the H200 with 128 x 64 tiles and K = 4096 this picks
    // 3 splits for 216 and 288 tiles (measured best: 3 and 4, the latter 3% faster) and 9 for 72
    // (best measured: 8); 384 tiles run fastest unsplit.
    if (tiles < 384 && K >= 1024) splits = std::min<uint64_t>({groups_for(640, tiles), K / 256, 64});
  }
  while (splits > 1 && splits * B * M * N > scratch_cap) splits /= 2;
  if (K == 0 || splits <= 1) return 1;
  // Pieces a multiple of 32 long (of every tile's K step, so only the last piece has a partial
  // step); this may leave fewer pieces than asked for.
  const uint64_t k_len = (groups_for(K, splits) + 31) / 32 * 32;
  pc.k_len = static_cast<uint32_t>(k_len);
  return groups_for(K, k_len);
}

vk::Pipeline& matmul_pipeline(vk::Context& ctx, const VulkanKernels::MatmulTile& t, const MatmulArgs& g,
                              const MatmulOperands& ops, bool bias) {
  std::vector<uint32_t> spec(AIT_MATMUL_SPEC_COUNT);
  spec[AIT_MATMUL_SPEC_TRANS_A] = g.trans_a ? 1u : 0u;
  spec[AIT_MATMUL_SPEC_TRANS_B] = g.trans_b ? 1u : 0u;
  spec[AIT_MATMUL_SPEC_VEC_A] = ops.vec_a ? 1u : 0u;
  spec[AIT_MATMUL_SPEC_VEC_B] = ops.vec_b ? 1u : 0u;
  spec[AIT_MATMUL_SPEC_HAS_BIAS] = bias ? 1u : 0u;
  spec[AIT_MATMUL_SPEC_TILE_M] = t.tile_m;
  spec[AIT_MATMUL_SPEC_TILE_N] = t.tile_n;
  spec[AIT_MATMUL_SPEC_TILE_K] = t.tile_k;
  spec[AIT_MATMUL_SPEC_THREADS] = t.threads();
  spec[AIT_MATMUL_SPEC_THREADS_N] = t.threads_n();
  return ctx.pipeline(ops.f16 ? "matmul_f16" : "matmul", 4, sizeof(MatmulPc), spec);
}

// Split-K: partial products into scratch [splits, batch, M, N] (alpha 1, beta 0), then
// matmul_reduce.comp adds them in a fixed order (deterministic) and applies alpha, beta and bias.
void dispatch_split_k(vk::Context& ctx, const VulkanKernels::MatmulTile& t, const MatmulArgs& g,
                      const MatmulOperands& ops, const MatmulPc& pc, uint64_t splits, const char* k) {
  const uint64_t B = static_cast<uint64_t>(g.batch), mn = static_cast<uint64_t>(g.M) * static_cast<uint64_t>(g.N);
  BufferPtr scratch = ctx.alloc(static_cast<size_t>(splits * B * mn));
  MatmulPc part = pc;
  part.ldc = pc.N;
  part.stride_c = u32(static_cast<int64_t>(mn), k, "M * N");
  part.off_c = 0;
  part.alpha = 1.0f;
  part.beta = 0.0f;
  part.splits = static_cast<uint32_t>(splits);
  part.split_stride_c = u32(static_cast<int64_t>(B * mn), k, "batch * M * N");
  ctx.dispatch(k, matmul_pipeline(ctx, t, g, ops, false), {ops.a, ops.b, ctx.bind(*scratch, k), ctx.dummy()}, &part,
               sizeof part, groups_for(pc.N, t.tile_n), groups_for(pc.M, t.tile_m), B * splits);
  MatmulReducePc pr{
      {},       pc.M,     pc.N,   static_cast<uint32_t>(B), static_cast<uint32_t>(splits), pc.ldc, pc.stride_c,
      pc.off_c, pc.alpha, pc.beta};
  auto& reduce = ctx.pipeline("matmul_reduce", 3, sizeof pr, {g.bias ? 1u : 0u});
  ctx.dispatch(k, reduce, {ctx.bind(*scratch, k), ops.c, ops.bias}, &pr, sizeof pr, groups_for(B * mn, kWG));
}
}  // namespace

void VulkanKernels::matmul(const Buffer& a, const Buffer& b, Buffer& c, const MatmulArgs& g) {
  matmul_impl(a, b, c, g, false);
}

void VulkanKernels::matmul_fp16(const Buffer& a, const Buffer& b, Buffer& c, const MatmulArgs& g) {
  if (!ctx_->storage_16bit())
    bad("matmul_fp16", ctx_->info().name + " does not offer 16-bit storage buffers (storageBuffer16BitAccess)");
  matmul_impl(a, b, c, g, true);
}

void VulkanKernels::matmul_impl(const Buffer& a, const Buffer& b, Buffer& c, const MatmulArgs& g, bool f16) {
  const char* k = f16 ? "matmul_fp16" : "matmul";
  if (g.batch < 0 || g.M < 0 || g.N < 0 || g.K < 0) bad(k, "negative dimension");
  if (g.lda < 0 || g.ldb < 0 || g.ldc < 0 || g.stride_a < 0 || g.stride_b < 0 || g.stride_c < 0 || g.off_a < 0 ||
      g.off_b < 0 || g.off_c < 0)
    bad(k, "negative stride or offset");
  if (g.batch == 0 || g.M == 0 || g.N == 0) return;
  const MatmulExtents e = check_matmul(a, b, c, g, f16, k);
  MatmulPc pc = matmul_push(g, k);
  const uint64_t B = static_cast<uint64_t>(g.batch), M = pc.M, N = pc.N;
  MatmulOperands ops;
  ops.f16 = f16;
  ops.a = operand_bind(*ctx_, a, f16, k, static_cast<uint64_t>(g.off_a), e.span_a, &pc.off_a);
  ops.b = operand_bind(*ctx_, b, f16, k, static_cast<uint64_t>(g.off_b), e.span_b, &pc.off_b);
  ops.c = span_bind(*ctx_, c, k, static_cast<uint64_t>(g.off_c), e.span_c, &pc.off_c);
  ops.bias = g.bias ? ctx_->bind(*g.bias, k, 0, N) : ctx_->dummy();
  ops.vec_a = e.span_a && vec4_loads_ok(pc.off_a, pc.lda, pc.stride_a, e.a_cols, B);
  ops.vec_b = e.span_b && vec4_loads_ok(pc.off_b, pc.ldb, pc.stride_b, e.b_cols, B);

  const MatmulTile& tile = choose_matmul_tile(M, N, B);
  require_shared_memory(tile, ctx_->limits().max_shared_memory, ctx_->info().name);
  const uint64_t tiles = groups_for(M, tile.tile_m) * groups_for(N, tile.tile_n) * B;
  const uint64_t scratch_cap = std::min<uint64_t>(uint64_t(64) << 20, ctx_->max_binding_elems());  // elements
  const uint64_t requested = matmul_splits_ > 0 ? static_cast<uint64_t>(matmul_splits_) : 0;
  const uint64_t splits = split_k_pieces(requested, tiles, B, M, N, pc.K, scratch_cap, pc);
  if (splits > 1) {
    dispatch_split_k(*ctx_, tile, g, ops, pc, splits, k);
    return;
  }
  ctx_->dispatch(k, matmul_pipeline(*ctx_, tile, g, ops, g.bias != nullptr), {ops.a, ops.b, ops.c, ops.bias}, &pc,
                 sizeof pc, groups_for(N, tile.tile_n), groups_for(M, tile.tile_m), B);
}

}  // namespace ait

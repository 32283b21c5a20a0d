// The CPU backend of the op table (kernels.h). Loops are split statically over rows or
// elements with parallel_for; threads only decide who computes which outputs. Every output
// element (a row's statistics, a column's sum over rows) is computed by one task, in an order
// that depends on the sizes alone, and this file is compiled without floating-point contraction
// (CMakeLists.txt; fused multiply-adds only where written, madd below), so an element rounds the
// same in a loop's vector body and in its scalar remainder wherever the chunk boundaries fall. Results are therefore
// the same bits for any thread count (docs/spec.md §10; tests/test_threads.cpp).
#include <algorithm>
#include <cmath>
#include <cstring>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <numeric>

#include "core/kernels.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "cpu/gemm.h"
#include "cpu/threadpool.h"

namespace ait {

namespace {

// Tensor storage comes from malloc. glibc would hand every block over 128 KiB to mmap and give
// it back on free, so each training step would fault in its activations afresh (about a
// tenth of a step). Keeping large blocks in the heap lets freed memory be reused for any size
// in the next step, with no more peak memory than the live tensors need.
void keep_large_blocks_in_heap() {
#ifdef __GLIBC__
  static bool once = [] {
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)once;
#endif
}

class CpuBuffer final : public Buffer {
public:
  explicit CpuBuffer(size_t n)
      : Buffer(n), data(n ? static_cast<float*>(::operator new[](n * 4, std::align_val_t(64))) : nullptr) {}
  ~CpuBuffer() override {
    if (data) ::operator delete[](data, std::align_val_t(64));
  }
  float* data;
};

inline float* P(Buffer& b) { return static_cast<CpuBuffer&>(b).data; }
inline const float* P(const Buffer& b) { return static_cast<const CpuBuffer&>(b).data; }
inline const int32_t* I(const Buffer& b) {
  return reinterpret_cast<const int32_t*>(static_cast<const CpuBuffer&>(b).data);
}

// Grain sizes: below these a loop stays on one thread (waking a worker costs more).
constexpr int64_t kElemGrain = 1 << 15;
inline int64_t row_grain(int64_t cols) { return std::max<int64_t>(1, kElemGrain / std::max<int64_t>(cols, 1)); }

// Row reductions with 16 fixed partial sums: the compiler vectorises them (a plain float sum
// loop it may not reorder), and the summation order is still fixed, so results stay exact
// functions of the input.
constexpr int kLanes = 16;
template <class F>
inline float lane_sum(int64_t n, F term) {
  float acc[kLanes] = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] += term(j + l);
  float s = 0;
  for (int l = 0; l < kLanes; ++l) s += acc[l];
  for (; j < n; ++j) s += term(j);
  return s;
}
inline float row_max(const float* x, int64_t n, float scale) {
  float acc[kLanes];
  for (float& a : acc) a = -INFINITY;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes)
    for (int l = 0; l < kLanes; ++l) acc[l] = std::max(acc[l], scale * x[j + l]);
  float m = -INFINITY;
  for (float a : acc) m = std::max(m, a);
  for (; j < n; ++j) m = std::max(m, scale * x[j]);
  return m;
}

// a*b + c as one fused operation where the build targets hardware FMA. This file is compiled
// without contraction (CMakeLists.txt), so the fusion is spelled out: the vector body and the
// scalar remainder of a loop then both use it, and the polynomials below keep the FMA's speed.
inline float madd(float a, float b, float c) {
#ifdef __FMA__
  return __builtin_fmaf(a, b, c);
#else
  return a * b + c;
#endif
}

// exp and erf written so that loops over them vectorise (libm's calls do not). exp: Cody-Waite
// range reduction and a degree-6 polynomial (Cephes' expf coefficients), within 2 ulp for
// x in [-87, 88], clamped outside. erf: the Chebyshev erfc fit of Numerical Recipes (fractional
// error below 1.2e-7), via that exp.
inline float exp_fast(float x) {
  // The integer part is taken by truncating a positive number (no floor call, which the
  // compiler will not vectorise under strict IEEE flags); NaN is carried through by a select.
  float xc = x == x ? std::min(std::max(x, -87.0f), 88.0f) : 0.0f;
  int32_t ni = static_cast<int32_t>(madd(xc, 1.44269504088896341f, 128.5f)) - 128;
  float n = static_cast<float>(ni);
  float r = madd(n, 2.12194440e-4f, madd(n, -0.693359375f, xc));
  float p = 1.9875691500e-4f;
  p = madd(p, r, 1.3981999507e-3f);
  p = madd(p, r, 8.3334519073e-3f);
  p = madd(p, r, 4.1665795894e-2f);
  p = madd(p, r, 1.6666665459e-1f);
  p = madd(p, r, 5.0000001201e-1f);
  p = madd(p * r, r, r) + 1.0f;
  int32_t bits = (ni + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return x == x ? p * scale : x;
}
inline float erf_fast(float x) {
  float z = std::fabs(x);
  float t = 1.0f / madd(0.5f, z, 1.0f);
  // The erfc fit's polynomial in t, Horner steps written out (a loop here stops vectorisation).
  float poly = madd(0.17087277f, t, -0.82215223f);
  poly = madd(poly, t, 1.48851587f);
  poly = madd(poly, t, -1.13520398f);
  poly = madd(poly, t, 0.27886807f);
  poly = madd(poly, t, -0.18628806f);
  poly = madd(poly, t, 0.09678418f);
  poly = madd(poly, t, 0.37409196f);
  poly = madd(poly, t, 1.00002368f);
  poly = madd(poly, t, -1.26551223f);
  float r = madd(-t, exp_fast(madd(-z, z, poly)), 1.0f);  // 1 - erfc
  return x < 0 ? -r : r;
}

class CpuKernels final : public Kernels {
public:
  DeviceKind kind() const override { return DeviceKind::CPU; }
  std::string name() const override { return "cpu (" + std::to_string(num_threads()) + " threads)"; }

  BufferPtr alloc(size_t n) override {
    keep_large_blocks_in_heap();
    return std::make_shared<CpuBuffer>(n);
  }
  void upload(Buffer& dst, const void* src, size_t n, size_t off) override {
    if (n) std::memcpy(P(dst) + off, src, n * 4);
  }
  void download(const Buffer& src, void* dst, size_t n, size_t off) override {
    if (n) std::memcpy(dst, P(src) + off, n * 4);
  }

  void fill(Buffer& y, size_t n, float v) override {
    float* py = P(y);
    parallel_for(n, kElemGrain, [&](int64_t b, int64_t e) { std::fill(py + b, py + e, v); });
  }
  void axpby(Buffer& y, const Buffer& x, size_t n, float a, float b) override {
    float* py = P(y);
    const float* px = P(x);
    parallel_for(n, kElemGrain, [&](int64_t s, int64_t e) {
      if (b == 0.0f)
        for (int64_t i = s; i < e; ++i) py[i] = a * px[i];
      else
        for (int64_t i = s; i < e; ++i) py[i] = a * px[i] + b * py[i];
    });
  }

  void binary(BinaryOp op, const Buffer& a, const Buffer& b, Buffer& y, const Strided& s) override {
    const float* pa = P(a);
    const float* pb = P(b);
    float* py = P(y);
    int r = s.rank;
    int64_t inner = r ? s.shape[r - 1] : 1;
    int64_t rows = 1;
    for (int i = 0; i + 1 < r; ++i) rows *= s.shape[i];
    int64_t sa = r ? s.stride_a[r - 1] : 0, sb = r ? s.stride_b[r - 1] : 0;
    parallel_for(rows, row_grain(inner), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        int64_t oa = 0, ob = 0, rem = row;
        for (int i = r - 2; i >= 0; --i) {
          int64_t idx = rem % s.shape[i];
          rem /= s.shape[i];
          oa += idx * s.stride_a[i];
          ob += idx * s.stride_b[i];
        }
        const float* ra = pa + oa;
        const float* rb = pb + ob;
        float* ry = py + row * inner;
        switch (op) {
          case BinaryOp::Add:
            for (int64_t j = 0; j < inner; ++j) ry[j] = ra[j * sa] + rb[j * sb];
            break;
          case BinaryOp::Sub:
            for (int64_t j = 0; j < inner; ++j) ry[j] = ra[j * sa] - rb[j * sb];
            break;
          case BinaryOp::Mul:
            for (int64_t j = 0; j < inner; ++j) ry[j] = ra[j * sa] * rb[j * sb];
            break;
          case BinaryOp::Div:
            for (int64_t j = 0; j < inner; ++j) ry[j] = ra[j * sa] / rb[j * sb];
            break;
        }
      }
    });
  }

  void gelu(const Buffer& x, Buffer& y, size_t n) override {
    const float* px = P(x);
    float* py = P(y);
    parallel_for(n, kElemGrain / 8, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) py[i] = 0.5f * px[i] * (1.0f + erf_fast(px[i] * 0.70710678118654752f));
    });
  }
  void gelu_backward(const Buffer& x, const Buffer& dy, Buffer& dx, size_t n) override {
    const float* px = P(x);
    const float* pd = P(dy);
    float* po = P(dx);
    parallel_for(n, kElemGrain / 8, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        float v = px[i];
        float cdf = 0.5f * (1.0f + erf_fast(v * 0.70710678118654752f));
        float pdf = 0.39894228040143268f * exp_fast(-0.5f * v * v);
        po[i] = pd[i] * madd(v, pdf, cdf);
      }
    });
  }
  void dropout(const Buffer& x, Buffer& y, Buffer& mask, size_t n, float p, uint32_t seed) override {
    const float* px = P(x);
    float* py = P(y);
    float* pm = P(mask);
    float keep = 1.0f / (1.0f - p);
    parallel_for(n, kElemGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        pm[i] = hash_uniform(seed, static_cast<uint32_t>(i)) >= p ? keep : 0.0f;
        py[i] = px[i] * pm[i];
      }
    });
  }

  void permute(const Buffer& x, Buffer& y, int rank, const int64_t* x_shape, const int* perm) override {
    int64_t x_stride[kMaxRank], y_shape[kMaxRank], src_stride[kMaxRank];
    int64_t acc = 1;
    for (int i = rank - 1; i >= 0; --i) {
      x_stride[i] = acc;
      acc *= x_shape[i];
    }
    for (int i = 0; i < rank; ++i) {
      y_shape[i] = x_shape[perm[i]];
      src_stride[i] = x_stride[perm[i]];
    }
    const float* px = P(x);
    float* py = P(y);
    int64_t inner = rank ? y_shape[rank - 1] : 1, rows = 1;
    for (int i = 0; i + 1 < rank; ++i) rows *= y_shape[i];
    int64_t sj = rank ? src_stride[rank - 1] : 0;
    parallel_for(rows, row_grain(inner), [&](int64_t r0, int64_t r1) {
      for (int64_t row = r0; row < r1; ++row) {
        int64_t off = 0, rem = row;
        for (int i = rank - 2; i >= 0; --i) {
          off += (rem % y_shape[i]) * src_stride[i];
          rem /= y_shape[i];
        }
        float* ry = py + row * inner;
        const float* rx = px + off;
        if (sj == 1) std::memcpy(ry, rx, inner * 4);
        else
          for (int64_t j = 0; j < inner; ++j) ry[j] = rx[j * sj];
      }
    });
  }

  void copy_blocks(const Buffer& src, size_t src_off, int64_t src_stride, Buffer& dst, size_t dst_off,
                   int64_t dst_stride, int64_t outer, int64_t inner, bool accumulate) override {
    const float* ps = P(src) + src_off;
    float* pd = P(dst) + dst_off;
    parallel_for(outer, row_grain(inner), [&](int64_t r0, int64_t r1) {
      for (int64_t o = r0; o < r1; ++o) {
        const float* s = ps + o * src_stride;
        float* d = pd + o * dst_stride;
        if (accumulate)
          for (int64_t j = 0; j < inner; ++j) d[j] += s[j];
        else std::memcpy(d, s, inner * 4);
      }
    });
  }

  void reduce_sum(const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner, float scale) override {
    const float* px = P(x);
    float* py = P(y);
    if (inner == 1) {
      parallel_for(outer, row_grain(n), [&](int64_t r0, int64_t r1) {
        for (int64_t o = r0; o < r1; ++o) {
          const float* r = px + o * n;
          py[o] = scale * lane_sum(n, [&](int64_t j) { return r[j]; });
        }
      });
      return;
    }
    // Sum rows of [n, inner] per outer index; threads split the inner columns.
    for (int64_t o = 0; o < outer; ++o) {
      const float* base = px + o * n * inner;
      float* out = py + o * inner;
      parallel_for(inner, std::max<int64_t>(16, kElemGrain / std::max<int64_t>(n, 1)), [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c) out[c] = 0.0f;
        for (int64_t j = 0; j < n; ++j) {
          const float* r = base + j * inner;
          for (int64_t c = c0; c < c1; ++c) out[c] += r[c];
        }
        for (int64_t c = c0; c < c1; ++c) out[c] *= scale;
      });
    }
  }
  void count_positive(const Buffer& x, Buffer& y, int64_t outer, int64_t n, int64_t inner) override {
    const float* px = P(x);
    float* py = P(y);
    parallel_for(outer * inner, row_grain(n), [&](int64_t s, int64_t e) {
      for (int64_t t = s; t < e; ++t) {
        int64_t o = t / inner, i = t % inner;
        int64_t c = 0;
        for (int64_t j = 0; j < n; ++j) c += px[(o * n + j) * inner + i] > 0.0f;
        py[t] = static_cast<float>(c);
      }
    });
  }

  void matmul(const Buffer& a, const Buffer& b, Buffer& c, const MatmulArgs& m) override {
    const float* pa = P(a) + m.off_a;
    const float* pb = P(b) + m.off_b;
    float* pc = P(c) + m.off_c;
    auto one = [&](int64_t i) {
      sgemm(m.trans_a, m.trans_b, m.M, m.N, m.K, m.alpha, pa + i * m.stride_a, m.lda, pb + i * m.stride_b, m.ldb,
            m.beta, pc + i * m.stride_c, m.ldc);
    };
    // Many small products (attention heads) go one per task; big ones thread inside sgemm.
    // sgemm's result does not depend on threading, so both paths give the same bits.
    if (m.batch > 1 && m.M * m.N * m.K < (1 << 21))
      parallel_for(m.batch, 1, [&](int64_t s, int64_t e) {
        for (int64_t i = s; i < e; ++i) one(i);
      });
    else
      for (int64_t i = 0; i < m.batch; ++i) one(i);
    if (m.bias) {
      const float* pbias = P(*m.bias);
      parallel_for(m.batch * m.M, row_grain(m.N), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
          float* row = pc + (r / m.M) * m.stride_c + (r % m.M) * m.ldc;
          for (int64_t j = 0; j < m.N; ++j) row[j] += pbias[j];
        }
      });
    }
  }

  void layernorm(const Buffer& x, const Buffer& w, const Buffer& b, Buffer& y, Buffer& mean, Buffer& rstd, int64_t rows,
                 int64_t cols, float eps) override {
    const float* px = P(x);
    const float* pw = P(w);
    const float* pb = P(b);
    float* py = P(y);
    float* pm = P(mean);
    float* pr = P(rstd);
    parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = px + r * cols;
        // Sum deviations from the first element: a constant row (a blank patch) then has its
        // mean exactly and variance exactly 0, as PyTorch's Welford update gives; a plain sum
        // would leave rounding noise that rstd = 1/sqrt(eps) amplifies ~300-fold.
        const float shift = xr[0];
        float mu = shift + lane_sum(cols, [&](int64_t j) { return xr[j] - shift; }) / cols;
        float v = lane_sum(cols, [&](int64_t j) { return (xr[j] - mu) * (xr[j] - mu); });
        float rs = 1.0f / std::sqrt(v / cols + eps);
        float* yr = py + r * cols;
        for (int64_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mu) * rs * pw[j] + pb[j];
        pm[r] = mu;
        pr[r] = rs;
      }
    });
  }
  void layernorm_backward(const Buffer& x, const Buffer& w, const Buffer& mean, const Buffer& rstd, const Buffer& dy,
                          Buffer& dx, Buffer& dw, Buffer& db, int64_t rows, int64_t cols) override {
    const float* px = P(x);
    const float* pw = P(w);
    const float* pm = P(mean);
    const float* pr = P(rstd);
    const float* pd = P(dy);
    float* pdx = P(dx);
    float* pdw = P(dw);
    float* pdb = P(db);
    parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = px + r * cols;
        const float* dr = pd + r * cols;
        float mu = pm[r], rs = pr[r];
        // Σ dŷ and Σ dŷ·x̂ with dŷ = dy·w
        float s1 = lane_sum(cols, [&](int64_t j) { return dr[j] * pw[j]; }) / cols;
        float s2 = lane_sum(cols, [&](int64_t j) { return dr[j] * pw[j] * (xr[j] - mu) * rs; }) / cols;
        float* o = pdx + r * cols;
        for (int64_t j = 0; j < cols; ++j) o[j] = rs * (dr[j] * pw[j] - s1 - (xr[j] - mu) * rs * s2);
      }
    });
    // Parameter gradients: columns split across threads, rows summed in order.
    parallel_for(cols, 64, [&](int64_t c0, int64_t c1) {
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = px + r * cols;
        const float* dr = pd + r * cols;
        float mu = pm[r], rs = pr[r];
        for (int64_t c = c0; c < c1; ++c) {
          pdw[c] += dr[c] * (xr[c] - mu) * rs;
          pdb[c] += dr[c];
        }
      }
    });
  }

  void softmax(const Buffer& x, Buffer& y, int64_t rows, int64_t cols, float scale) override {
    const float* px = P(x);
    float* py = P(y);
    parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) softmax_row(px + r * cols, py + r * cols, cols, scale);
    });
  }
  void softmax_backward(const Buffer& y, const Buffer& dy, Buffer& dx, int64_t rows, int64_t cols,
                        float scale) override {
    const float* py = P(y);
    const float* pd = P(dy);
    float* po = P(dx);
    parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* yr = py + r * cols;
        const float* dr = pd + r * cols;
        float dot = lane_sum(cols, [&](int64_t j) { return yr[j] * dr[j]; });
        float* o = po + r * cols;
        for (int64_t j = 0; j < cols; ++j) o[j] = scale * yr[j] * (dr[j] - dot);
      }
    });
  }
  void topk_gate(const Buffer& x, Buffer& y, int64_t rows, int64_t cols, int64_t k, float scale) override {
    const float* px = P(x);
    float* py = P(y);
    int64_t kk = std::min(k, cols);
    parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
      std::vector<int32_t> idx(cols);
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = px + r * cols;
        float* yr = py + r * cols;
        std::fill(yr, yr + cols, 0.0f);
        if (kk <= 0) continue;
        std::iota(idx.begin(), idx.end(), 0);
        // Larger value first; on equal values the lower column first (the spec's tie rule).
        auto before = [&](int32_t a, int32_t b) {
          float va = scale * xr[a], vb = scale * xr[b];
          return va > vb || (va == vb && a < b);
        };
        if (kk < cols) std::nth_element(idx.begin(), idx.begin() + (kk - 1), idx.end(), before);
        float mx = -INFINITY;
        for (int64_t i = 0; i < kk; ++i) mx = std::max(mx, scale * xr[idx[i]]);
        for (int64_t i = 0; i < kk; ++i) yr[idx[i]] = std::exp(scale * xr[idx[i]] - mx);
        // Normalise by a sum in column order (idx's order is up to nth_element), so the result
        // is a fixed function of the kept set.
        float s = 0;
        for (int64_t j = 0; j < cols; ++j) s += yr[j];
        float inv = 1.0f / s;
        for (int64_t j = 0; j < cols; ++j) yr[j] *= inv;
      }
    });
  }
  void cross_entropy(const Buffer& logits, const Buffer& labels, Buffer& loss, Buffer& probs, int64_t rows,
                     int64_t classes) override {
    const float* pl = P(logits);
    const int32_t* lab = I(labels);
    float* po = P(loss);
    float* pp = P(probs);
    for (int64_t r = 0; r < rows; ++r)
      if (lab[r] < 0 || lab[r] >= classes)
        throw Error("cross_entropy: label " + std::to_string(lab[r]) + " at row " + std::to_string(r) +
                    " is outside [0, " + std::to_string(classes) + ")");
    for (int64_t r = 0; r < rows; ++r) {
      const float* lr = pl + r * classes;
      float mx = -INFINITY;
      for (int64_t j = 0; j < classes; ++j) mx = std::max(mx, lr[j]);
      float s = 0;
      for (int64_t j = 0; j < classes; ++j) s += std::exp(lr[j] - mx);
      float lse = mx + std::log(s);
      po[r] = lse - lr[lab[r]];
      for (int64_t j = 0; j < classes; ++j) pp[r * classes + j] = std::exp(lr[j] - lse);
    }
  }
  void cross_entropy_backward(const Buffer& probs, const Buffer& labels, const Buffer& dloss, Buffer& dlogits,
                              int64_t rows, int64_t classes) override {
    const float* pp = P(probs);
    const int32_t* lab = I(labels);
    const float* pd = P(dloss);
    float* po = P(dlogits);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < classes; ++j)
        po[r * classes + j] = pd[r] * (pp[r * classes + j] - (j == lab[r] ? 1.0f : 0.0f));
  }
  void l2_normalize(const Buffer& x, Buffer& y, Buffer& norm, int64_t rows, int64_t cols) override {
    const float* px = P(x);
    float* py = P(y);
    float* pn = P(norm);
    parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* xr = px + r * cols;
        float s = lane_sum(cols, [&](int64_t j) { return xr[j] * xr[j]; });
        float nrm = std::max(std::sqrt(s), 1e-12f);
        pn[r] = nrm;
        for (int64_t j = 0; j < cols; ++j) py[r * cols + j] = xr[j] / nrm;
      }
    });
  }
  void l2_normalize_backward(const Buffer& y, const Buffer& norm, const Buffer& dy, Buffer& dx, int64_t rows,
                             int64_t cols) override {
    const float* py = P(y);
    const float* pn = P(norm);
    const float* pd = P(dy);
    float* po = P(dx);
    parallel_for(rows, row_grain(cols), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* yr = py + r * cols;
        const float* dr = pd + r * cols;
        float dot = lane_sum(cols, [&](int64_t j) { return yr[j] * dr[j]; });
        for (int64_t j = 0; j < cols; ++j) po[r * cols + j] = (dr[j] - yr[j] * dot) / pn[r];
      }
    });
  }

  void adamw(Buffer& p, const Buffer& g, Buffer& m, Buffer& v, size_t n, const AdamWArgs& a) override {
    float* pp = P(p);
    const float* pg = P(g);
    float* pm = P(m);
    float* pv = P(v);
    float decay = 1.0f - a.lr * a.weight_decay;
    float step_size = a.lr / a.bias_correction1;
    float bc2_sqrt = std::sqrt(a.bias_correction2);
    parallel_for(n, kElemGrain, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) {
        pp[i] *= decay;
        pm[i] = a.beta1 * pm[i] + (1.0f - a.beta1) * pg[i];
        pv[i] = a.beta2 * pv[i] + (1.0f - a.beta2) * pg[i] * pg[i];
        // Same operation order as torch.optim.AdamW.
        float denom = std::sqrt(pv[i]) / bc2_sqrt + a.eps;
        pp[i] -= step_size * pm[i] / denom;
      }
    });
  }

private:
  static void softmax_row(const float* x, float* y, int64_t n, float scale) {
    float mx = row_max(x, n, scale);
    for (int64_t j = 0; j < n; ++j) y[j] = exp_fast(madd(scale, x[j], -mx));
    float s = lane_sum(n, [&](int64_t j) { return y[j]; });
    float inv = 1.0f / s;
    for (int64_t j = 0; j < n; ++j) y[j] *= inv;
  }
};

}  // namespace

Kernels& cpu() {
  static CpuKernels k;
  return k;
}

}  // namespace ait

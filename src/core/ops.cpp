// Differentiable ops: each op's forward and backward side by side, both in terms of the op
// table (kernels.h). Backward closures run with gradients off and may use the ops themselves.
#include "core/ops.h"

#include <algorithm>
#include <numeric>

namespace ait {

namespace {

std::string shapes(const Tensor& a, const Tensor& b) { return shape_str(a.shape()) + " and " + shape_str(b.shape()); }

void same_device(const char* op, const Tensor& a, const Tensor& b) {
  if (&a.dev() != &b.dev())
    throw Error(std::string(op) + ": operands on different devices (" + a.dev().name() + ", " + b.dev().name() + ")");
}

int norm_axis(const char* op, const Tensor& x, int axis) {
  int r = x.rank();
  int a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r)
    throw Error(std::string(op) + ": axis " + std::to_string(axis) + " out of range for shape " + shape_str(x.shape()));
  return a;
}

// [outer, n, inner] view of x around `axis`.
void split3(const Shape& s, int axis, int64_t& outer, int64_t& n, int64_t& inner) {
  outer = 1;
  inner = 1;
  for (int i = 0; i < axis; ++i) outer *= s[i];
  n = s[axis];
  for (size_t i = axis + 1; i < s.size(); ++i) inner *= s[i];
}

Tensor like(const Shape& s, const Tensor& t) { return Tensor::empty(s, &t.dev()); }

// Row-wise ops need at least one axis.
void need_rank(const char* op, const Tensor& x, int r) {
  if (x.rank() < r)
    throw Error(std::string(op) + ": needs a tensor of rank >= " + std::to_string(r) + ", got " + shape_str(x.shape()));
}

// NumPy broadcasting of a and b; fills strides (0 on broadcast axes).
Strided broadcast(const char* op, const Shape& a, const Shape& b, Shape& out) {
  int r = static_cast<int>(std::max(a.size(), b.size()));
  if (r > kMaxRank) throw Error(std::string(op) + ": rank above " + std::to_string(kMaxRank));
  Strided s;
  s.rank = r;
  out.assign(r, 1);
  int64_t sa = 1, sb = 1;
  for (int i = r - 1; i >= 0; --i) {
    int ia = i - (r - static_cast<int>(a.size())), ib = i - (r - static_cast<int>(b.size()));
    int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      throw Error(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) + " do not broadcast");
    out[i] = std::max(da, db);
    if (da == 0 || db == 0) out[i] = 0;
    s.shape[i] = out[i];
    s.stride_a[i] = da == 1 ? 0 : sa;
    s.stride_b[i] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
  }
  return s;
}

// Sums g over the axes along which `target` was broadcast, giving target's shape.
Tensor reduce_to(const Tensor& g, const Shape& target) {
  if (g.shape() == target) return g;
  Tensor cur = g;
  int lead = g.rank() - static_cast<int>(target.size());
  for (int i = 0; i < g.rank(); ++i) {
    int ti = i - lead;
    if (ti < 0 || (target[ti] == 1 && g.shape()[i] != 1)) cur = sum(cur, i, true);
  }
  return reshape(cur, target);
}

// g broadcast up to `shape` (inverse of reduce_to), as one binary kernel with a zero.
Tensor broadcast_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  Shape out;
  Strided s = broadcast("broadcast_to", g.shape(), shape, out);
  if (out != shape) throw Error("broadcast_to: " + shape_str(g.shape()) + " does not broadcast to " + shape_str(shape));
  for (int i = 0; i < s.rank; ++i) s.stride_b[i] = 0;  // b is a single zero
  Tensor zero = Tensor::zeros({1}, &g.dev());
  Tensor y = like(out, g);
  if (y.numel()) g.dev().binary(BinaryOp::Add, g.buf(), zero.buf(), y.buf(), s);
  return y;
}

Tensor binary_forward(BinaryOp op, const char* name, const Tensor& a, const Tensor& b) {
  same_device(name, a, b);
  Shape out;
  Strided s = broadcast(name, a.shape(), b.shape(), out);
  Tensor y = like(out, a);
  if (y.numel()) a.dev().binary(op, a.buf(), b.buf(), y.buf(), s);
  return y;
}

}  // namespace

// ---------------------------------------------------------------- elementwise

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Add, "add", a, b);
  if (Node* n = attach_node(y, "add", {a, b}))
    n->backward = [ra = grad_ref(a), rb = grad_ref(b), sa = a.shape(), sb = b.shape()](const Tensor& g) {
      if (ra) accumulate_grad(ra, reduce_to(g, sa));
      if (rb) accumulate_grad(rb, reduce_to(g, sb));
    };
  return y;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Sub, "sub", a, b);
  if (Node* n = attach_node(y, "sub", {a, b}))
    n->backward = [ra = grad_ref(a), rb = grad_ref(b), sa = a.shape(), sb = b.shape()](const Tensor& g) {
      if (ra) accumulate_grad(ra, reduce_to(g, sa));
      if (rb) accumulate_grad(rb, scale(reduce_to(g, sb), -1.0f));
    };
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Mul, "mul", a, b);
  if (Node* n = attach_node(y, "mul", {a, b})) {
    GradRef ra = grad_ref(a), rb = grad_ref(b);
    Tensor ad = rb ? a.detach() : Tensor(), bd = ra ? b.detach() : Tensor();  // only what is needed
    n->backward = [ra, rb, ad, bd, sa = a.shape(), sb = b.shape()](const Tensor& g) {
      if (ra) accumulate_grad(ra, reduce_to(mul(g, bd), sa));
      if (rb) accumulate_grad(rb, reduce_to(mul(g, ad), sb));
    };
  }
  return y;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = binary_forward(BinaryOp::Div, "div", a, b);
  if (Node* n = attach_node(y, "div", {a, b})) {
    Tensor bd = b.detach(), yd = y.detach();
    n->backward = [ra = grad_ref(a), rb = grad_ref(b), sa = a.shape(), bd, yd](const Tensor& g) {
      Tensor ga = div(g, bd);  // d(a/b)/da = 1/b;  d(a/b)/db = -(a/b)/b
      if (ra) accumulate_grad(ra, reduce_to(ga, sa));
      if (rb) accumulate_grad(rb, reduce_to(scale(mul(ga, yd), -1.0f), bd.shape()));
    };
  }
  return y;
}

Tensor axpby(float a, const Tensor& x, float b, const Tensor& z) {
  same_device("axpby", x, z);
  if (x.shape() != z.shape()) throw Error("axpby: shapes " + shapes(x, z) + " differ");
  Tensor y = like(x.shape(), x);
  x.dev().axpby(y.buf(), z.buf(), y.numel(), b, 0.0f);
  x.dev().axpby(y.buf(), x.buf(), y.numel(), a, 1.0f);
  if (Node* n = attach_node(y, "axpby", {x, z}))
    n->backward = [a, b, rx = grad_ref(x), rz = grad_ref(z)](const Tensor& g) {
      if (rx) accumulate_grad(rx, scale(g, a));
      if (rz) accumulate_grad(rz, scale(g, b));
    };
  return y;
}

Tensor scale(const Tensor& x, float s) {
  Tensor y = like(x.shape(), x);
  x.dev().axpby(y.buf(), x.buf(), y.numel(), s, 0.0f);
  if (Node* n = attach_node(y, "scale", {x}))
    n->backward = [rx = grad_ref(x), s](const Tensor& g) { accumulate_grad(rx, scale(g, s)); };
  return y;
}

Tensor gelu(const Tensor& x) {
  Tensor y = like(x.shape(), x);
  x.dev().gelu(x.buf(), y.buf(), y.numel());
  if (Node* n = attach_node(y, "gelu", {x})) {
    Tensor xd = x.detach();
    n->backward = [rx = grad_ref(x), xd](const Tensor& g) {
      Tensor dx = like(xd.shape(), xd);
      xd.dev().gelu_backward(xd.buf(), g.buf(), dx.buf(), dx.numel());
      accumulate_grad(rx, dx);
    };
  }
  return y;
}

Tensor dropout(const Tensor& x, float p, uint32_t seed) {
  if (p < 0.0f || p >= 1.0f) throw Error("dropout: probability " + std::to_string(p) + " outside [0, 1)");
  if (p == 0.0f) return x;
  Tensor y = like(x.shape(), x), mask = like(x.shape(), x);
  x.dev().dropout(x.buf(), y.buf(), mask.buf(), y.numel(), p, seed);
  if (Node* n = attach_node(y, "dropout", {x}))
    n->backward = [rx = grad_ref(x), mask](const Tensor& g) { accumulate_grad(rx, mul(g, mask)); };
  return y;
}

// ---------------------------------------------------------------- reductions

Tensor sum(const Tensor& x, int axis, bool keepdim) {
  int a = norm_axis("sum", x, axis);
  int64_t outer, n, inner;
  split3(x.shape(), a, outer, n, inner);
  Shape out = x.shape();
  out[a] = 1;
  Tensor y = like(out, x);
  if (y.numel()) x.dev().reduce_sum(x.buf(), y.buf(), outer, n, inner, 1.0f);
  if (Node* nd = attach_node(y, "sum", {x}))
    nd->backward = [rx = grad_ref(x), sx = x.shape()](const Tensor& g) { accumulate_grad(rx, broadcast_to(g, sx)); };
  if (!keepdim) {
    out.erase(out.begin() + a);
    y = reshape(y, out);
  }
  return y;
}

Tensor mean(const Tensor& x, int axis, bool keepdim) {
  int64_t n = x.dim(axis);
  return scale(sum(x, axis, keepdim), n ? 1.0f / static_cast<float>(n) : 0.0f);
}

Tensor sum_all(const Tensor& x) { return reshape(sum(reshape(x, {x.numel()}), 0), {}); }
Tensor mean_all(const Tensor& x) { return reshape(mean(reshape(x, {x.numel()}), 0), {}); }

Tensor variance(const Tensor& x, int axis, bool keepdim) {
  int a = norm_axis("variance", x, axis);
  int64_t n = x.dim(a);
  if (n <= 1) {
    Shape out = x.shape();
    if (keepdim) out[a] = 1;
    else out.erase(out.begin() + a);
    return Tensor::zeros(out, &x.dev());
  }
  Tensor d = sub(x, mean(x, a, true));
  return scale(sum(mul(d, d), a, keepdim), 1.0f / static_cast<float>(n - 1));
}

Tensor count_positive(const Tensor& x, int axis, bool keepdim) {
  int a = norm_axis("count_positive", x, axis);
  int64_t outer, n, inner;
  split3(x.shape(), a, outer, n, inner);
  Shape out = x.shape();
  if (keepdim) out[a] = 1;
  else out.erase(out.begin() + a);
  Tensor y = like(out, x);
  if (y.numel()) x.dev().count_positive(x.buf(), y.buf(), outer, n, inner);
  return y;  // a count has no gradient
}

// ---------------------------------------------------------------- shape

Tensor reshape(const Tensor& x, const Shape& shape) {
  Shape s = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == -1) {
      if (infer >= 0) throw Error("reshape: more than one -1 in " + shape_str(shape));
      infer = static_cast<int>(i);
    } else {
      if (s[i] < 0) throw Error("reshape: invalid shape " + shape_str(shape));
      known *= s[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known)
      throw Error("reshape: cannot reshape " + shape_str(x.shape()) + " to " + shape_str(shape));
    s[infer] = x.numel() / known;
  }
  if (numel(s) != x.numel()) throw Error("reshape: cannot reshape " + shape_str(x.shape()) + " to " + shape_str(shape));
  Tensor y = x.detach();  // contiguous: a reshape shares the storage
  y.impl()->shape = s;
  y.impl()->name.clear();
  if (Node* n = attach_node(y, "reshape", {x}))
    n->backward = [rx = grad_ref(x), sx = x.shape()](const Tensor& g) { accumulate_grad(rx, reshape(g, sx)); };
  return y;
}

Tensor permute(const Tensor& x, const std::vector<int>& perm) {
  int r = x.rank();
  if (static_cast<int>(perm.size()) != r || r > kMaxRank)
    throw Error("permute: " + std::to_string(perm.size()) + " axes for shape " + shape_str(x.shape()));
  std::vector<int> inv(r, -1);
  for (int i = 0; i < r; ++i) {
    if (perm[i] < 0 || perm[i] >= r || inv[perm[i]] != -1)
      throw Error("permute: invalid permutation for shape " + shape_str(x.shape()));
    inv[perm[i]] = i;
  }
  Shape out(r);
  for (int i = 0; i < r; ++i) out[i] = x.shape()[perm[i]];
  Tensor y = like(out, x);
  if (y.numel()) x.dev().permute(x.buf(), y.buf(), r, x.shape().data(), perm.data());
  if (Node* n = attach_node(y, "permute", {x}))
    n->backward = [rx = grad_ref(x), inv](const Tensor& g) { accumulate_grad(rx, permute(g, inv)); };
  return y;
}

Tensor transpose(const Tensor& x, int a, int b) {
  int ia = norm_axis("transpose", x, a), ib = norm_axis("transpose", x, b);
  std::vector<int> perm(x.rank());
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[ia], perm[ib]);
  return permute(x, perm);
}

Tensor concat(const std::vector<Tensor>& xs, int axis) {
  if (xs.empty()) throw Error("concat: no tensors");
  int a = norm_axis("concat", xs[0], axis);
  Shape out = xs[0].shape();
  out[a] = 0;
  for (const Tensor& t : xs) {
    same_device("concat", xs[0], t);
    bool ok = t.rank() == xs[0].rank();
    for (int i = 0; ok && i < t.rank(); ++i) ok = i == a || t.shape()[i] == xs[0].shape()[i];
    if (!ok) throw Error("concat: shapes " + shapes(xs[0], t) + " differ outside axis " + std::to_string(axis));
    out[a] += t.shape()[a];
  }
  Tensor y = like(out, xs[0]);
  int64_t outer, n, inner;
  split3(out, a, outer, n, inner);
  int64_t at = 0;
  for (const Tensor& t : xs) {
    int64_t w = t.shape()[a] * inner;
    if (outer && w) xs[0].dev().copy_blocks(t.buf(), 0, w, y.buf(), at, n * inner, outer, w, false);
    at += w;
  }
  if (Node* nd = attach_node(y, "concat", xs)) {
    std::vector<std::pair<GradRef, int64_t>> parts;  // each input's slot and width along the axis
    for (const Tensor& t : xs) parts.push_back({grad_ref(t), t.shape()[a]});
    nd->backward = [parts, a](const Tensor& g) {
      int64_t start = 0;
      for (auto& [r, width] : parts) {
        if (r) accumulate_grad(r, slice(g, a, start, width));
        start += width;
      }
    };
  }
  return y;
}

Tensor slice(const Tensor& x, int axis, int64_t start, int64_t length) {
  int a = norm_axis("slice", x, axis);
  if (start < 0 || length < 0 || start + length > x.shape()[a])
    throw Error("slice: [" + std::to_string(start) + ", " + std::to_string(start + length) + ") outside axis " +
                std::to_string(axis) + " of shape " + shape_str(x.shape()));
  Shape out = x.shape();
  out[a] = length;
  Tensor y = like(out, x);
  int64_t outer, n, inner;
  split3(x.shape(), a, outer, n, inner);
  if (outer && length && inner)
    x.dev().copy_blocks(x.buf(), start * inner, n * inner, y.buf(), 0, length * inner, outer, length * inner, false);
  if (Node* nd = attach_node(y, "slice", {x}))
    nd->backward = [rx = grad_ref(x), sx = x.shape(), dev = &x.dev(), start, length, outer, n, inner](const Tensor& g) {
      if (!rx) return;
      // Several slices of one tensor (q, k, v of qkv): the first makes the full-size gradient,
      // the others add into their block of it in place.
      if (Tensor* acc = exclusive_grad(rx)) {
        if (outer && length && inner)
          dev->copy_blocks(g.buf(), 0, length * inner, acc->buf(), start * inner, n * inner, outer, length * inner,
                           true);
        return;
      }
      Tensor dx = Tensor::zeros(sx, dev);
      if (outer && length && inner)
        dev->copy_blocks(g.buf(), 0, length * inner, dx.buf(), start * inner, n * inner, outer, length * inner, false);
      accumulate_grad(rx, dx);  // once dx goes out of scope, the slot holds the only reference
    };
  return y;
}

// ---------------------------------------------------------------- matmul

namespace {

// matmul(), plus linear()'s bias [N] when defined: added to every row by the matmul kernel
// (MatmulArgs::bias) rather than by a separate add op.
Tensor matmul_bias(const Tensor& a, const Tensor& b, bool ta, bool tb, const Tensor& bias) {
  const char* op = bias.defined() ? "linear" : "matmul";
  same_device(op, a, b);
  if (bias.defined()) same_device(op, a, bias);
  auto bad = [&](const std::string& why) {
    return Error("matmul: " + why + " (shapes " + shapes(a, b) + (ta ? ", a transposed" : "") +
                 (tb ? ", b transposed" : "") + ")");
  };
  if (a.rank() < 2 || a.rank() > 3 || b.rank() < 2 || b.rank() > 3) throw bad("operands must have rank 2 or 3");
  // A rank-3 a without transpose against a shared b is one 2-D product over all rows.
  if (a.rank() == 3 && b.rank() == 2 && !ta) {
    Tensor y2 = matmul_bias(reshape(a, {a.dim(0) * a.dim(1), a.dim(2)}), b, false, tb, bias);
    return reshape(y2, {a.dim(0), a.dim(1), y2.dim(1)});
  }
  int64_t batch = std::max(a.rank() == 3 ? a.dim(0) : 1, b.rank() == 3 ? b.dim(0) : 1);
  if (a.rank() == 3 && b.rank() == 3 && a.dim(0) != b.dim(0)) throw bad("batch sizes differ");
  int64_t ar = a.dim(-2), ac = a.dim(-1), br = b.dim(-2), bc = b.dim(-1);
  int64_t M = ta ? ac : ar, K = ta ? ar : ac, Kb = tb ? bc : br, N = tb ? br : bc;
  if (K != Kb) throw bad("inner dimensions " + std::to_string(K) + " and " + std::to_string(Kb) + " differ");
  Shape out = (a.rank() == 3 || b.rank() == 3) ? Shape{batch, M, N} : Shape{M, N};
  Tensor y;
  if (K == 0) {
    NoGradScope values_only;  // the node below gives the bias its gradient
    y = bias.defined() ? broadcast_to(bias.detach(), out) : Tensor::zeros(out, &a.dev());
  } else {
    y = like(out, a);
    MatmulArgs m;
    m.batch = batch;
    m.M = M;
    m.N = N;
    m.K = K;
    m.trans_a = ta;
    m.trans_b = tb;
    m.lda = ac;
    m.ldb = bc;
    m.ldc = N;
    m.stride_a = a.rank() == 3 ? ar * ac : 0;
    m.stride_b = b.rank() == 3 ? br * bc : 0;
    m.stride_c = M * N;
    m.bias = bias.defined() ? &bias.buf() : nullptr;
    if (y.numel()) a.dev().matmul(a.buf(), b.buf(), y.buf(), m);
  }
  if (Node* n = bias.defined() ? attach_node(y, op, {a, b, bias}) : attach_node(y, op, {a, b})) {
    // Each gradient needs only the other operand's values: keep just those.
    GradRef ra = grad_ref(a), rb = grad_ref(b), rbias = bias.defined() ? grad_ref(bias) : nullptr;
    Tensor ad = rb ? a.detach() : Tensor(), bd = ra ? b.detach() : Tensor();
    int rank_a = a.rank(), rank_b = b.rank();
    n->backward = [ra, rb, rbias, ad, bd, ta, tb, rank_a, rank_b, N](const Tensor& g) {
      // C = op(A)·op(B):  d op(A) = dC·op(B)ᵀ,  d op(B) = op(A)ᵀ·dC; undo the op on the way back.
      auto fit = [](const Tensor& grad, int target_rank) {
        return grad.rank() > target_rank ? sum(grad, 0) : grad;  // shared operand: sum over the batch
      };
      if (ra) {
        Tensor da = ta ? matmul(bd, g, tb, true) : matmul(g, bd, false, !tb);
        accumulate_grad(ra, fit(da, rank_a));
      }
      if (rb) {
        Tensor db;
        if (rank_a == 3 && rank_b == 2 && !ta) {  // fold the batch into the contraction
          Tensor a2 = reshape(ad, {ad.dim(0) * ad.dim(1), ad.dim(2)});
          Tensor g2 = reshape(g, {g.dim(0) * g.dim(1), g.dim(2)});
          db = tb ? matmul(g2, a2, true, false) : matmul(a2, g2, true, false);
        } else {
          db = tb ? matmul(g, ad, true, ta) : matmul(ad, g, !ta, false);
        }
        accumulate_grad(rb, fit(db, rank_b));
      }
      if (rbias) accumulate_grad(rbias, reduce_to(g, {N}));  // sum over every row
    };
  }
  return y;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) { return matmul_bias(a, b, ta, tb, Tensor()); }

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  if (w.rank() != 2 || x.rank() < 1 || x.dim(-1) != w.dim(1))
    throw Error("linear: input " + shape_str(x.shape()) + " does not fit weight " + shape_str(w.shape()) +
                (w.name().empty() ? "" : " '" + w.name() + "'") + " ([out, in])");
  if (bias.defined() && (bias.rank() != 1 || bias.dim(0) != w.dim(0)))
    throw Error("linear: bias " + shape_str(bias.shape()) + " does not fit weight " + shape_str(w.shape()));
  Shape out = x.shape();
  out.back() = w.dim(0);
  const int64_t rows = numel(Shape(x.shape().begin(), x.shape().end() - 1));  // not numel / in: in may be 0
  return reshape(matmul_bias(reshape(x, {rows, w.dim(1)}), w, false, true, bias), out);
}

// ---------------------------------------------------------------- row-wise

Tensor layernorm(const Tensor& x, const Tensor& w, const Tensor& b, float eps) {
  need_rank("layernorm", x, 1);
  int64_t cols = x.dim(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  if (w.shape() != Shape{cols} || b.shape() != Shape{cols})
    throw Error("layernorm: weight " + shape_str(w.shape()) + " / bias " + shape_str(b.shape()) + " do not fit input " +
                shape_str(x.shape()));
  same_device("layernorm", x, w);
  Tensor y = like(x.shape(), x), mu = like({rows}, x), rstd = like({rows}, x);
  if (y.numel()) x.dev().layernorm(x.buf(), w.buf(), b.buf(), y.buf(), mu.buf(), rstd.buf(), rows, cols, eps);
  if (Node* n = attach_node(y, "layernorm", {x, w, b})) {
    Tensor xd = x.detach(), wd = w.detach();
    n->backward = [rx = grad_ref(x), rw = grad_ref(w), rb = grad_ref(b), xd, wd, mu, rstd, rows,
                   cols](const Tensor& g) {
      Tensor dx = like(xd.shape(), xd), dw = Tensor::zeros({cols}, &xd.dev()), db = Tensor::zeros({cols}, &xd.dev());
      if (rows && cols)
        xd.dev().layernorm_backward(xd.buf(), wd.buf(), mu.buf(), rstd.buf(), g.buf(), dx.buf(), dw.buf(), db.buf(),
                                    rows, cols);
      accumulate_grad(rx, dx);
      accumulate_grad(rw, dw);
      accumulate_grad(rb, db);
    };
  }
  return y;
}

// Softmax and the top-k gate share their backward: dx = s·y ⊙ (dy − Σ y ⊙ dy). Off the gate's
// kept set y is 0, so the same formula routes no gradient there.
static void attach_softmax_backward(Tensor& y, const Tensor& x, const char* op, int64_t rows, int64_t cols, float s) {
  if (Node* n = attach_node(y, op, {x})) {
    Tensor yd = y.detach();
    n->backward = [rx = grad_ref(x), yd, rows, cols, s](const Tensor& g) {
      Tensor dx = like(yd.shape(), yd);
      if (dx.numel()) yd.dev().softmax_backward(yd.buf(), g.buf(), dx.buf(), rows, cols, s);
      accumulate_grad(rx, dx);
    };
  }
}

Tensor softmax(const Tensor& x, float s) {
  need_rank("softmax", x, 1);
  int64_t cols = x.dim(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  Tensor y = like(x.shape(), x);
  if (y.numel()) x.dev().softmax(x.buf(), y.buf(), rows, cols, s);
  attach_softmax_backward(y, x, "softmax", rows, cols, s);
  return y;
}

Tensor topk_gate(const Tensor& x, int64_t k, float s) {
  need_rank("topk_gate", x, 1);
  if (k < 1) throw Error("topk_gate: k = " + std::to_string(k) + " must be at least 1");
  int64_t cols = x.dim(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  Tensor y = like(x.shape(), x);
  if (y.numel()) x.dev().topk_gate(x.buf(), y.buf(), rows, cols, k, s);
  attach_softmax_backward(y, x, "topk_gate", rows, cols, s);
  return y;
}

Tensor l2_normalize(const Tensor& x) {
  need_rank("l2_normalize", x, 1);
  int64_t cols = x.dim(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  Tensor y = like(x.shape(), x), norm = like({rows}, x);
  if (y.numel()) x.dev().l2_normalize(x.buf(), y.buf(), norm.buf(), rows, cols);
  if (Node* n = attach_node(y, "l2_normalize", {x})) {
    Tensor yd = y.detach();
    n->backward = [rx = grad_ref(x), yd, norm, rows, cols](const Tensor& g) {
      Tensor dx = like(yd.shape(), yd);
      if (dx.numel()) yd.dev().l2_normalize_backward(yd.buf(), norm.buf(), g.buf(), dx.buf(), rows, cols);
      accumulate_grad(rx, dx);
    };
  }
  return y;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels) {
  if (logits.rank() != 2 || labels.rank() != 1 || labels.dim(0) != logits.dim(0))
    throw Error("cross_entropy: logits " + shape_str(logits.shape()) + " and labels " + shape_str(labels.shape()) +
                " must be [N, C] and [N]");
  same_device("cross_entropy", logits, labels);
  int64_t rows = logits.dim(0), classes = logits.dim(1);
  if (rows == 0) throw Error("cross_entropy: empty batch");
  Tensor loss_rows = like({rows}, logits), probs = like(logits.shape(), logits);
  logits.dev().cross_entropy(logits.buf(), labels.buf(), loss_rows.buf(), probs.buf(), rows, classes);
  Tensor loss = mean_all(loss_rows);  // built without a graph below: the fused backward is exact
  Tensor y = loss.detach();
  if (Node* n = attach_node(y, "cross_entropy", {logits})) {
    Tensor ld = labels.detach();
    n->backward = [rl = grad_ref(logits), probs, ld, rows, classes](const Tensor& g) {
      Tensor dl = scale(broadcast_to(reshape(g, {1}), {rows}), 1.0f / static_cast<float>(rows));
      Tensor dx = like(probs.shape(), probs);
      probs.dev().cross_entropy_backward(probs.buf(), ld.buf(), dl.buf(), dx.buf(), rows, classes);
      accumulate_grad(rl, dx);
    };
  }
  return y;
}

}  // namespace ait

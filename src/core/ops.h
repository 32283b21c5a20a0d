// Differentiable ops. Each is defined in ops.cpp with its forward and its backward side by
// side, both written in terms of the op table (kernels.h), so they run on any backend.
// Shapes are checked up front: a mismatch throws ait::Error naming the op and the shapes.
#pragma once
#include "core/tensor.h"

namespace ait {

// Elementwise with NumPy-style broadcasting (up to kMaxRank axes).
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor scale(const Tensor& x, float s);
// y = a·x + b·z (same shapes): EMA updates and other fused blends.
Tensor axpby(float a, const Tensor& x, float b, const Tensor& z);
Tensor gelu(const Tensor& x);
// Training: zero each element with probability p and scale the rest by 1/(1-p), mask drawn
// from hash_uniform(seed, i). Identity when p == 0.
Tensor dropout(const Tensor& x, float p, uint32_t seed);

// Reductions over one axis (negative axes count from the end).
Tensor sum(const Tensor& x, int axis, bool keepdim = false);
Tensor mean(const Tensor& x, int axis, bool keepdim = false);
Tensor sum_all(const Tensor& x);                                         // shape []
Tensor mean_all(const Tensor& x);                                        // shape []
Tensor variance(const Tensor& x, int axis, bool keepdim = false);        // unbiased (n-1); 0 when n == 1
Tensor count_positive(const Tensor& x, int axis, bool keepdim = false);  // no gradient

// Shape.
Tensor reshape(const Tensor& x, const Shape& shape);  // one axis may be -1
Tensor permute(const Tensor& x, const std::vector<int>& perm);
Tensor transpose(const Tensor& x, int a, int b);
Tensor concat(const std::vector<Tensor>& xs, int axis);
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t length);

// Matmul. a [.., M, K] (or [.., K, M] with trans_a), b [.., K, N] (or [.., N, K] with trans_b).
// Rank 2 or 3 each; a rank-3 operand against a rank-2 one shares the rank-2 operand over the batch.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x [.., in] · wᵀ + bias, w stored [out, in] as PyTorch stores it; bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias);

// Row-wise over the last axis.
Tensor layernorm(const Tensor& x, const Tensor& w, const Tensor& b, float eps);
Tensor softmax(const Tensor& x, float scale = 1.0f);  // softmax(scale · x)
// The spec's top-k gate: keep the k largest of scale·x per row (lower index wins ties),
// softmax over them, zero elsewhere; the gradient flows through the kept entries only.
Tensor topk_gate(const Tensor& x, int64_t k, float scale = 1.0f);
Tensor l2_normalize(const Tensor& x);  // x / ‖x‖ per row
// Fused log-softmax + negative log-likelihood, mean over rows. logits [N, C], labels int32 [N].
// Labels must lie in [0, C): data readers check them where they enter (the CPU kernel also
// throws; a device backend cannot report it without a wait, and gives NaN).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels);

}  // namespace ait

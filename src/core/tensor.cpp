#include "core/tensor.h"

#include <cstring>
#include <unordered_set>

#include "core/ops.h"

namespace ait {

int64_t numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw Error("invalid shape " + shape_str(s) + ": negative dimension");
    n *= d;
  }
  return n;
}

// ---- factories ----
Tensor Tensor::empty(const Shape& shape, Kernels* dev) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->dev = dev ? dev : &cpu();
  impl->data = impl->dev->alloc(static_cast<size_t>(ait::numel(shape)));
  return Tensor(impl);
}
Tensor Tensor::zeros(const Shape& shape, Kernels* dev) { return full(shape, 0.0f, dev); }
Tensor Tensor::full(const Shape& shape, float value, Kernels* dev) {
  Tensor t = empty(shape, dev);
  t.dev().fill(t.buf(), t.numel(), value);
  return t;
}
namespace {
template <class T>
Tensor from_values(const char* fn, const Shape& shape, const std::vector<T>& values, Kernels* dev) {
  static_assert(sizeof(T) == 4, "buffers hold 4-byte elements");
  if (static_cast<int64_t>(values.size()) != ait::numel(shape))
    throw Error(std::string(fn) + ": " + std::to_string(values.size()) + " values for shape " + shape_str(shape));
  Tensor t = Tensor::empty(shape, dev);
  t.dev().upload(t.buf(), values.data(), values.size());
  return t;
}
}  // namespace
Tensor Tensor::from(const Shape& shape, const std::vector<float>& values, Kernels* dev) {
  return from_values("Tensor::from", shape, values, dev);
}
Tensor Tensor::from_int(const Shape& shape, const std::vector<int32_t>& values, Kernels* dev) {
  return from_values("Tensor::from_int", shape, values, dev);
}

// ---- accessors ----
static TensorImpl& need(const std::shared_ptr<TensorImpl>& p) {
  if (!p) throw Error("use of an undefined tensor");
  return *p;
}
const Shape& Tensor::shape() const { return need(impl_).shape; }
int64_t Tensor::dim(int axis) const {
  int r = rank();
  int a = axis < 0 ? axis + r : axis;
  if (a < 0 || a >= r) throw Error("axis " + std::to_string(axis) + " out of range for shape " + shape_str(shape()));
  return shape()[a];
}
int64_t Tensor::numel() const { return ait::numel(shape()); }
Kernels& Tensor::dev() const { return *need(impl_).dev; }
Buffer& Tensor::buf() const { return *need(impl_).data; }
const BufferPtr& Tensor::buffer_ptr() const { return need(impl_).data; }
bool Tensor::unshared() const { return impl_.use_count() == 1 && need(impl_).data.use_count() == 1; }

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(static_cast<size_t>(numel()));
  if (!v.empty()) dev().download(buf(), v.data(), v.size());
  return v;
}
std::vector<int32_t> Tensor::to_int_vector() const {
  std::vector<int32_t> v(static_cast<size_t>(numel()));
  if (!v.empty()) dev().download(buf(), v.data(), v.size());
  return v;
}
float Tensor::item() const {
  if (numel() != 1) throw Error("item() on a tensor of shape " + shape_str(shape()));
  float v;
  dev().download(buf(), &v, 1);
  return v;
}
void Tensor::copy_from(const std::vector<float>& values) {
  if (static_cast<int64_t>(values.size()) != numel())
    throw Error("copy_from: " + std::to_string(values.size()) + " values into tensor '" + name() + "' of shape " +
                shape_str(shape()));
  dev().upload(buf(), values.data(), values.size());
}
void Tensor::assign(const Tensor& src) {
  if (src.shape() != shape())
    throw Error("assign: a tensor of shape " + shape_str(src.shape()) + " into tensor '" + name() + "' of shape " +
                shape_str(shape()));
  if (&src.dev() != &dev()) throw Error("assign: tensors on different devices (" + name() + ")");
  if (numel() > 0) dev().copy_blocks(src.buf(), 0, 0, buf(), 0, 0, 1, numel(), false);
}
Tensor Tensor::to(Kernels& target) const {
  if (&target == &dev()) return detach();
  std::vector<float> v = to_vector();
  Tensor t = Tensor::empty(shape(), &target);
  if (!v.empty()) target.upload(t.buf(), v.data(), v.size());
  t.impl()->name = name();
  return t;
}

// ---- autodiff ----
namespace {
AutogradMeta& meta_of(TensorImpl& t) {
  if (!t.meta) {
    t.meta = std::make_shared<AutogradMeta>();
    t.meta->shape = t.shape;
    t.meta->dev = t.dev;
    t.meta->name = t.name;
  }
  return *t.meta;
}
}  // namespace

bool Tensor::requires_grad() const {
  const TensorImpl& t = need(impl_);
  return t.meta && t.meta->requires_grad;
}
Tensor& Tensor::set_requires_grad(bool on) {
  TensorImpl& t = need(impl_);
  if (on || t.meta) meta_of(t).requires_grad = on;
  return *this;
}
Tensor Tensor::grad() const {
  const TensorImpl& t = need(impl_);
  return t.meta ? t.meta->grad : Tensor();
}
void Tensor::zero_grad() {
  TensorImpl& t = need(impl_);
  if (t.meta) t.meta->grad = Tensor();
}
const std::string& Tensor::name() const { return need(impl_).name; }
Tensor& Tensor::set_name(const std::string& n) {
  TensorImpl& t = need(impl_);
  t.name = n;
  if (t.meta) t.meta->name = n;
  return *this;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape();
  impl->dev = &dev();
  impl->data = buffer_ptr();
  impl->name = name();
  return Tensor(impl);
}

GradRef grad_ref(const Tensor& t) {
  const TensorImpl& ti = *t.impl();
  return ti.meta && ti.meta->requires_grad ? ti.meta : nullptr;
}

void accumulate_grad(const GradRef& r, const Tensor& g) {
  if (!r) return;
  AutogradMeta& m = *r;
  if (g.shape() != m.shape)
    throw Error("gradient of shape " + shape_str(g.shape()) + " for tensor " + shape_str(m.shape) +
                (m.name.empty() ? "" : " '" + m.name + "'"));
  if (!m.grad.defined()) {
    // Gradients are never modified in place by ops, so the first contribution can be shared;
    // a second one then goes into a fresh buffer.
    m.grad = g.detach();
    return;
  }
  NoGradScope no_grad;
  m.grad = add(m.grad, g);
}

// Derived from ownership, not tracked: a grad() caller shares the handle; the tensor a first
// contribution came from, or a detach / reshape of the gradient, shares the buffer.
Tensor* exclusive_grad(const GradRef& r) { return r && r->grad.defined() && r->grad.unshared() ? &r->grad : nullptr; }

namespace {
thread_local bool t_grad_enabled = true;
}
bool grad_enabled() { return t_grad_enabled; }
NoGradScope::NoGradScope() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradScope::~NoGradScope() { t_grad_enabled = prev_; }

Node* attach_node(Tensor& out, const char* op, const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return nullptr;
  bool any = false;
  for (const Tensor& t : inputs) any = any || t.requires_grad();
  if (!any) return nullptr;
  auto node = std::make_shared<Node>();
  node->op = op;
  for (const Tensor& t : inputs)
    if (GradRef r = grad_ref(t)) node->inputs.push_back(r);
  AutogradMeta& m = meta_of(*out.impl());
  m.requires_grad = true;
  m.node = node;
  return node.get();
}

void Tensor::backward() const {
  if (numel() != 1)
    throw Error("backward() without a seed needs a one-element tensor, got shape " + shape_str(shape()));
  backward(Tensor::full(shape(), 1.0f, &dev()));
}

void Tensor::backward(const Tensor& seed) const {
  TensorImpl& root = need(impl_);
  if (!root.meta || !root.meta->node)
    throw Error("backward(): tensor" + (root.name.empty() ? std::string() : " '" + root.name + "'") + " of shape " +
                shape_str(root.shape) + " has no graph (made without gradients, or a leaf)");
  if (seed.shape() != root.shape)
    throw Error("backward(): seed shape " + shape_str(seed.shape()) + " differs from tensor " + shape_str(root.shape));
  // Reverse topological order by iterative DFS over the graph's nodes. `order` holds strong
  // references: freeing a node below may drop the last other owner of its inputs.
  std::vector<GradRef> order;
  std::unordered_set<AutogradMeta*> seen;
  std::vector<std::pair<GradRef, size_t>> stack{{root.meta, 0}};
  seen.insert(root.meta.get());
  while (!stack.empty()) {
    auto& [t, i] = stack.back();
    if (t->node && i < t->node->inputs.size()) {
      const GradRef& in = t->node->inputs[i++];
      if (in->node && seen.insert(in.get()).second) stack.push_back({in, 0});
      continue;
    }
    order.push_back(t);
    stack.pop_back();
  }
  NoGradScope no_grad;  // backward closures use ops; they must not record a graph of their own
  accumulate_grad(root.meta, seed);
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    AutogradMeta* t = it->get();
    std::shared_ptr<Node> node = std::move(t->node);
    Tensor g = std::move(t->grad);
    // Free the graph and intermediate gradients as we go: peak memory stays at one step's worth.
    t->grad = Tensor();
    if (g.defined()) node->backward(g);
    it->reset();
  }
}

}  // namespace ait

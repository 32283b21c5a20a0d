// Tensor and reverse-mode autodiff. A Tensor is a cheap handle to shared state: a shape, a
// contiguous float32 buffer on one backend (Kernels), and, when it was made by an op while
// gradients are on, the graph node that knows how to push its gradient to the op's inputs.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/kernels.h"

namespace ait {

struct Node;
struct TensorImpl;
struct AutogradMeta;

class Tensor {
public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Factories. `dev` defaults to the CPU backend.
  static Tensor empty(const Shape& shape, Kernels* dev = nullptr);
  static Tensor zeros(const Shape& shape, Kernels* dev = nullptr);
  static Tensor full(const Shape& shape, float value, Kernels* dev = nullptr);
  static Tensor from(const Shape& shape, const std::vector<float>& values, Kernels* dev = nullptr);
  // int32 data (labels) stored bit-for-bit in the 4-byte buffer.
  static Tensor from_int(const Shape& shape, const std::vector<int32_t>& values, Kernels* dev = nullptr);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int64_t dim(int axis) const;  // negative axes count from the end
  int rank() const { return static_cast<int>(shape().size()); }
  int64_t numel() const;
  Kernels& dev() const;
  Buffer& buf() const;
  const BufferPtr& buffer_ptr() const;
  bool unshared() const;  // no other handle holds this tensor or its storage

  // Host copies (wait for the device when needed).
  std::vector<float> to_vector() const;
  std::vector<int32_t> to_int_vector() const;
  float item() const;                                // one-element tensors
  void copy_from(const std::vector<float>& values);  // same numel
  void assign(const Tensor& src);                    // this ← src's values on the device (same shape; no graph)
  Tensor to(Kernels& dev) const;                     // copy to another backend (no graph)

  // Autodiff.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on = true);
  Tensor grad() const;  // undefined until backward() reached this tensor
  void zero_grad();
  void backward() const;  // seed 1 for a one-element tensor
  void backward(const Tensor& seed) const;
  Tensor detach() const;  // same storage, no graph (the spec's stopgrad)

  const std::string& name() const;
  Tensor& set_name(const std::string& n);

  TensorImpl* impl() const { return impl_.get(); }
  std::shared_ptr<TensorImpl> impl_ptr() const { return impl_; }

private:
  std::shared_ptr<TensorImpl> impl_;
};

// The autodiff side of a tensor: what the graph needs, without the data. Graph nodes hold
// their inputs' AutogradMeta, not the tensors, so an intermediate whose values no backward
// step needs (an add's inputs, a permute's input, ...) is freed as soon as the forward pass
// drops it; the values a backward step does need are captured by that step explicitly.
struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> node;  // null for leaves and for tensors made without gradients
  Shape shape;
  Kernels* dev = nullptr;
  std::string name;
};
using GradRef = std::shared_ptr<AutogradMeta>;

struct Node {
  std::string op;
  std::vector<GradRef> inputs;
  // Receives the output's gradient; adds each input's gradient with accumulate_grad().
  std::function<void(const Tensor& grad_out)> backward;
};

struct TensorImpl {
  Shape shape;
  Kernels* dev = nullptr;
  BufferPtr data;
  GradRef meta;  // null until the tensor needs a gradient or joins a graph
  std::string name;
};

// The gradient slot of t when t needs a gradient, else null (backward steps skip null slots).
GradRef grad_ref(const Tensor& t);
// Adds g into the slot's gradient (allocating it on first use). No-op for a null slot.
void accumulate_grad(const GradRef& r, const Tensor& g);
// The slot's gradient when a backward step may add into it in place (it exists and nothing
// else holds it or its buffer), else null.
Tensor* exclusive_grad(const GradRef& r);
inline void accumulate_grad(const Tensor& t, const Tensor& g) { accumulate_grad(grad_ref(t), g); }

// Gradient mode: when off (NoGradScope), ops record no graph.
bool grad_enabled();
class NoGradScope {
public:
  NoGradScope();
  ~NoGradScope();
  NoGradScope(const NoGradScope&) = delete;
  NoGradScope& operator=(const NoGradScope&) = delete;

private:
  bool prev_;
};

// Makes `out` a graph node over `inputs` when gradients are on and any input needs one.
// Returns the node when one was attached (the op then fills node->backward), else null.
Node* attach_node(Tensor& out, const char* op, const std::vector<Tensor>& inputs);

}  // namespace ait

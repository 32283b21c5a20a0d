// libFuzzer target: AiT::load on an arbitrary file (the checkpoint reader of docs/spec.md §6).
// Properties: never crash and only ait::Error escapes; memory stays bounded by the file (a model
// is built only after its config and tensor table have been checked against the bytes present);
// a model that loads holds exactly the values its file stored and runs a forward pass.
// Seeds: tests/golden/*.ckpt.safetensors (tools/fuzz/build.sh copies them into the corpus).
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "core/ops.h"
#include "io/safetensors.h"
#include "memfile.h"
#include "model/model.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  setenv("AIT_THREADS", "1", 1);  // one thread: reproducible and cheap per input
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static ait_fuzz::MemFile file("checkpoint");
  file.set(data, size);
  try {
    ait::AiT model = ait::AiT::load(file.path, ait::cpu());
    const ait::Config& c = model.config();
    int64_t stored = model.parameter_count();
    for (const ait::Tensor& g : model.memory()) stored += g.numel();
    if (stored != c.stored_values() || uint64_t(stored) * 4 > size) abort();
    const ait::SafeTensors st = ait::parse_safetensors(data, size, "fuzz");
    for (auto& [name, t] : model.params())
      if (t.to_vector() != st.get(name).f32()) {
        bool nan_only = true;  // NaN != NaN: compare bit patterns instead
        std::vector<float> a = t.to_vector(), b = st.get(name).f32();
        for (size_t i = 0; i < a.size(); ++i) nan_only &= a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i]));
        if (!nan_only) abort();
      }
    ait::NoGradScope no_grad;
    ait::Tensor images = ait::Tensor::zeros({1, c.channels, c.image_height, c.image_width}, &ait::cpu());
    ait::Tensor questions = c.question_dim ? ait::Tensor::zeros({1, c.question_dim}, &ait::cpu()) : ait::Tensor();
    ait::ForwardResult r = model.forward(images, questions, {}, /*write=*/true, /*training=*/false, 0);
    if (r.logits.shape() != ait::Shape{1, c.num_classes}) abort();
  } catch (const ait::Error&) {
  }
  return 0;
}

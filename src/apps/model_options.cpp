#include "apps/model_options.h"

#include <cstdio>

#include "model/options.h"
#include "vulkan/device.h"

namespace ait {

cli::Option device_option() { return {"device", "D", "cpu | vulkan | vulkan:N | auto (default auto)"}; }

cli::Option memory_eval_option() {
  return {"memory-eval", "frozen|update",
          "frozen (default): the checkpoint's memory; update: each batch writes and commits it"};
}

cli::Option precision_option() {
  return {"precision", "fp32|mixed",
          "fp32 (default, the reference) | mixed: fp16/bf16 matmuls on tensor units where the device has them, "
          "else fp32 with a notice (docs/gpu.md)"};
}

Kernels& device_from(const cli::Args& a) {
  std::string note;
  Kernels* k = select_device(a.get("device", "auto"), &note);
  if (!note.empty()) std::fprintf(stderr, "%s: %s\n", a.command().name.c_str(), note.c_str());
  return *k;
}

MemoryEval memory_eval_from(const cli::Args& a) {
  return a.choice("memory-eval", {"frozen", "update"}, "frozen") == "update" ? MemoryEval::Update : MemoryEval::Frozen;
}

Precision precision_from(const cli::Args& a, Kernels& device) {
  Precision requested = Precision::Fp32;
  try {
    requested = parse_precision(a.get("precision", "fp32"));
  } catch (const OptionError& e) {
    a.fail(e.what());
  }
  std::string note;
  const Precision p = resolve_precision(device, requested, &note);
  if (!note.empty()) std::fprintf(stderr, "%s: %s\n", a.command().name.c_str(), note.c_str());
  return p;
}

}  // namespace ait

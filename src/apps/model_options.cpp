#include "apps/model_options.h"

#include <cstdio>

#include "vulkan/device.h"

namespace ait {

cli::Option device_option() { return {"device", "D", "cpu | vulkan | vulkan:N | auto (default auto)"}; }

cli::Option memory_eval_option() {
  return {"memory-eval", "frozen|update",
          "frozen (default): the checkpoint's memory; update: each batch writes and commits it"};
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

}  // namespace ait

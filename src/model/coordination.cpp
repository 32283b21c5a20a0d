// arch=coordination: the shared-workspace Coordination model (spec §2). Not part of this
// build yet: Config::validate() refuses arch=coordination while coordination_available() is
// false, so the two entry points below are never reached from a valid config.
#include "model/arch.h"

namespace ait {

bool coordination_available() { return false; }

TensorTable coordination_tensors(const Config&) {
  throw Error("config key 'arch': 'coordination' is not built into this version");
}

Tensor coordination_forward(const AiT&, Tensor, const Pass&, ForwardResult&, Tensor&) {
  throw Error("config key 'arch': 'coordination' is not built into this version");
}

}  // namespace ait

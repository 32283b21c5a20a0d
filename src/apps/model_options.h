// Options that the model-running commands (ait train / eval / predict / dump / viz and
// ait-clevr-report) share: the device and the memory mode of evaluation.
#pragma once
#include "apps/cli.h"
#include "core/kernels.h"
#include "model/model.h"

namespace ait {

cli::Option device_option();       // --device cpu|vulkan|vulkan:N|auto
cli::Option memory_eval_option();  // --memory-eval frozen|update
// The device that --device names (default auto); a note about the choice goes to stderr.
Kernels& device_from(const cli::Args& a);
MemoryEval memory_eval_from(const cli::Args& a);

}  // namespace ait

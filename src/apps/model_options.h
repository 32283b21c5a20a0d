// Options that the model-running commands (ait train / eval / predict / dump / viz and
// ait-clevr-report) share: the device and the memory mode of evaluation.
#pragma once
#include "apps/cli.h"
#include "core/kernels.h"
#include "model/model.h"
#include "vulkan/device.h"

namespace ait {

cli::Option device_option();       // --device cpu|vulkan|vulkan:N|auto
cli::Option memory_eval_option();  // --memory-eval frozen|update
cli::Option precision_option();    // --precision fp32|mixed
// The device that --device names (default auto); a note about the choice goes to stderr.
Kernels& device_from(const cli::Args& a);
MemoryEval memory_eval_from(const cli::Args& a);
// The precision a run on `device` computes at for --precision (default fp32); when that is not
// the one asked for, one line saying why goes to stderr (resolve_precision in vulkan/device.h).
Precision precision_from(const cli::Args& a, Kernels& device);

}  // namespace ait

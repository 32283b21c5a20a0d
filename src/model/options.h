// Checks of the values a run is given before it starts: the training options (the limits below,
// docs/spec.md §1), and whether a batch fits in memory by an estimate of what a forward pass
// keeps. validate_train_options itself is declared in model/train.h, next to TrainOptions.
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"
#include "model/model.h"
#include "vulkan/device.h"

namespace ait {

// A bad option value. Library callers get it like any Error; the command lines report it as a
// usage error (status 2).
struct OptionError : Error {
  using Error::Error;
};

// Ranges of the training options (inclusive). Each keeps the step counts and index products of
// a run inside 64 bits.
struct TrainLimits {
  static constexpr int64_t kMaxEpochs = 1000000;
  static constexpr int64_t kMaxBatchSize = int64_t(1) << 24;
  static constexpr int64_t kMaxSteps = int64_t(1) << 40;  // --warmup, --log-every, --limit
  static constexpr double kMaxWeightDecay = 100;
};

// The value of a --precision option ("fp32" or "mixed"; see Precision in vulkan/device.h); an
// OptionError naming `option` and the accepted values otherwise.
Precision parse_precision(const std::string& text, const std::string& option = "--precision");

// The machine's physical memory, the default budget of check_batch_fits.
uint64_t physical_memory_bytes();
// Estimated bytes one more image adds to a forward pass of a valid config: the activations a
// training step keeps for its backward pass and their gradients (training), or the activations
// alone (inference).
uint64_t activation_bytes_per_image(const Config& c, bool training);
// Refuses a batch of min(batch, rows) images whose estimated memory (the activations plus the
// parameters, with gradients and AdamW moments when training) exceeds `budget` bytes (0: the
// physical memory). The OptionError names `option` and the largest batch that fits.
void check_batch_fits(const Config& c, int64_t batch, int64_t rows, bool training, const std::string& option,
                      uint64_t budget = 0);

}  // namespace ait

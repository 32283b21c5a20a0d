// Training, evaluation and the cross-check dump: AdamW and its schedule (spec §4), batches
// from a dataset file, the epoch loop with checkpoints, resume, metrics and progress.
#pragma once
#include <algorithm>
#include <string>
#include <vector>

#include "core/rng.h"
#include "io/dataset.h"
#include "model/model.h"

namespace ait {

// PyTorch's AdamW (spec §4). Parameters that received no gradient are left untouched.
class AdamW {
public:
  AdamW(AiT& model, float weight_decay, float beta1 = 0.9f, float beta2 = 0.999f, float eps = 1e-8f);
  void step(float lr);
  void zero_grad();
  int64_t steps() const { return t_; }
  // Moments and step count, for train_state.safetensors.
  void save_state(SafeTensors& st) const;
  void load_state(const SafeTensors& st);

private:
  AiT& model_;
  float wd_, b1_, b2_, eps_;
  int64_t t_ = 0;
  std::vector<Tensor> m_, v_;
};

// Linear warmup from 1e-5 over `warmup` steps, then cosine to 1e-6 at `total` steps; the
// cosine is over the absolute step (spec §4; how the authors' per-epoch schedule differs: §11).
float learning_rate(int64_t step, int64_t total, int64_t warmup, float base_lr);

struct Batch {
  Tensor images, questions, labels;
  int64_t size = 0;
};
// Normalised images (per-channel mean/std from the dataset), optional augmentation (random crop
// with 4-pixel zero padding and horizontal flip).
// `model`, when given, supplies the training data's normalisation (AiT::data_mean/data_std).
Batch make_batch(const Dataset& ds, const std::vector<int64_t>& indices, Kernels& dev, bool augment, Rng* rng,
                 const AiT* model = nullptr);

// The predicted class of row `row` of row-major logits [B, classes] (first maximum on ties).
inline int64_t predicted_class(const std::vector<float>& logits, int64_t row, int64_t classes) {
  auto first = logits.begin() + row * classes;
  return std::max_element(first, first + classes) - first;
}

struct EvalResult {
  int64_t n = 0, correct = 0;
  double ce = 0;                   // mean cross-entropy
  std::vector<int64_t> confusion;  // [true class][predicted class]
  double accuracy() const { return n ? double(correct) / n : 0.0; }
};
EvalResult evaluate(AiT& model, const Dataset& ds, int64_t batch_size, MemoryEval mode, bool progress = false);

struct TrainOptions {
  std::string data, val, model = "tiny", config_json, out, resume, device = "auto";
  std::vector<std::string> overrides;  // key=value
  int64_t epochs = 1, batch_size = 64, warmup = -1, seed = 0, log_every = 50;
  int64_t limit_train = 0;        // use only the first N training images (0: all)
  int64_t stop_after_epochs = 0;  // stop (as if interrupted) after this many epochs (0: run all)
  float lr = 1e-3f, weight_decay = 0.01f;
  bool augment = false;
  MemoryEval memory_eval = MemoryEval::Frozen;
};
// Checks every option against its range (model/options.h), a resumed run against the --model,
// --config and --set that would change its config, and the batch against the memory budget
// (0: the physical memory), before a run reads data or writes anything; throws OptionError
// naming the option (src/model/options.cpp). train() calls it first.
void validate_train_options(const TrainOptions& opt, uint64_t memory_budget = 0);
// Returns the best validation accuracy.
double train(const TrainOptions& opt, Kernels& dev);

struct DumpOptions {
  std::string checkpoint, batch, out;
  int64_t train_steps = 0;
  float lr = 1e-4f, weight_decay = 0.01f;
};
void dump(const DumpOptions& opt, Kernels& dev);

}  // namespace ait

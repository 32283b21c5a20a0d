#include "model/train.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/ops.h"
#include "io/inflate.h"
#include "io/safetensors.h"
#include "model/run_dir.h"

namespace ait {

// ------------------------------------------------------------------ optimizer

AdamW::AdamW(AiT& model, float weight_decay, float beta1, float beta2, float eps)
    : model_(model), wd_(weight_decay), b1_(beta1), b2_(beta2), eps_(eps) {
  for (auto& [name, p] : model_.params()) {
    m_.push_back(Tensor::zeros(p.shape(), &p.dev()));
    v_.push_back(Tensor::zeros(p.shape(), &p.dev()));
  }
}

void AdamW::step(float lr) {
  ++t_;
  const float t = static_cast<float>(t_);
  const AdamWArgs a{lr, b1_, b2_, eps_, wd_, 1.0f - std::pow(b1_, t), 1.0f - std::pow(b2_, t)};
  auto& ps = model_.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    Tensor& p = ps[i].second;
    Tensor g = p.grad();
    if (!g.defined()) continue;  // as torch.optim.AdamW: no gradient, no update, no decay
    p.dev().adamw(p.buf(), g.buf(), m_[i].buf(), v_[i].buf(), p.numel(), a);
  }
}

void AdamW::zero_grad() {
  for (auto& [name, p] : model_.params()) p.zero_grad();
}

void AdamW::save_state(SafeTensors& st) const {
  auto& ps = model_.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    st.add("adam.m." + ps[i].first, StTensor::from_f32(m_[i].shape(), m_[i].to_vector()));
    st.add("adam.v." + ps[i].first, StTensor::from_f32(v_[i].shape(), v_[i].to_vector()));
  }
  st.add("adam.step", StTensor::from_i64({}, {t_}));
}

void AdamW::load_state(const SafeTensors& st) {
  auto& ps = model_.params();
  for (size_t i = 0; i < ps.size(); ++i) {
    for (auto [prefix, dst] : {std::pair<const char*, Tensor*>{"adam.m.", &m_[i]}, {"adam.v.", &v_[i]}}) {
      const StTensor& s = st.get(prefix + ps[i].first);
      if (s.shape != dst->shape())
        throw Error(st.source + ": tensor '" + prefix + ps[i].first + "' has the wrong shape");
      dst->copy_from(s.f32());
    }
  }
  t_ = st.get("adam.step").i64().at(0);
}

float learning_rate(int64_t step, int64_t total, int64_t warmup, float base_lr) {
  const float warm_init = 1e-5f, lr_min = 1e-6f;
  if (step < warmup) return warm_init + (base_lr - warm_init) * static_cast<float>(step) / static_cast<float>(warmup);
  double t = total > 0 ? std::min(1.0, double(step) / double(total)) : 1.0;
  return static_cast<float>(lr_min + 0.5 * (base_lr - lr_min) * (1.0 + std::cos(M_PI * t)));
}

// ------------------------------------------------------------------ data

namespace {

// A batch's values on the host, before the upload.
struct HostBatch {
  std::vector<float> images, questions;
  std::vector<int32_t> labels;
};

HostBatch host_batch(const Dataset& ds, const std::vector<int64_t>& idx, bool augment, Rng* rng, const AiT* model) {
  const bool own = model && !model->data_mean.empty();
  const std::vector<float>& means = own ? model->data_mean : ds.mean;
  const std::vector<float>& stds = own ? model->data_std : ds.std;
  const int64_t B = static_cast<int64_t>(idx.size()), C = ds.channels, H = ds.height, W = ds.width, HW = H * W;
  HostBatch out;
  out.images.resize(B * C * HW);
  out.labels.resize(B);
  for (int64_t b = 0; b < B; ++b) {
    const uint8_t* src = ds.row_image(idx[b]);
    int dy = 0, dx = 0;
    bool flip = false;
    if (augment) {
      dy = static_cast<int>(rng->below(9)) - 4;
      dx = static_cast<int>(rng->below(9)) - 4;
      flip = rng->below(2);
    }
    for (int64_t c = 0; c < C; ++c) {
      float mean = means[c], inv_std = 1.0f / stds[c];
      float* dst = out.images.data() + (b * C + c) * HW;
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          int64_t sy = y + dy, sx = (flip ? W - 1 - x : x) + dx;
          float pix = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? src[c * HW + sy * W + sx] / 255.0f : 0.0f;
          dst[y * W + x] = (pix - mean) * inv_std;
        }
    }
    out.labels[b] = ds.labels[idx[b]];
    if (ds.question_dim)
      out.questions.insert(out.questions.end(), ds.questions.begin() + idx[b] * ds.question_dim,
                           ds.questions.begin() + (idx[b] + 1) * ds.question_dim);
  }
  return out;
}

}  // namespace

Batch make_batch(const Dataset& ds, const std::vector<int64_t>& idx, Kernels& dev, bool augment, Rng* rng,
                 const AiT* model) {
  HostBatch h = host_batch(ds, idx, augment, rng, model);
  Batch out;
  out.size = static_cast<int64_t>(idx.size());
  out.images = Tensor::from({out.size, ds.channels, ds.height, ds.width}, h.images, &dev);
  out.labels = Tensor::from_int({out.size}, h.labels, &dev);
  if (ds.question_dim) out.questions = Tensor::from({out.size, ds.question_dim}, h.questions, &dev);
  return out;
}

namespace {

// Several tensors read with one device wait: flattened and joined on the device first.
std::vector<float> read_together(const std::vector<Tensor>& ts) {
  NoGradScope no_grad;
  std::vector<Tensor> flat;
  for (const Tensor& t : ts) flat.push_back(reshape(t, {t.numel()}));
  return concat(flat, 0).to_vector();
}

void check_fits(const AiT& model, const Dataset& ds, const std::string& what) {
  const Config& c = model.config();
  if (ds.channels != c.channels || ds.height != c.image_height || ds.width != c.image_width)
    throw Error(what + ": images are " + std::to_string(ds.channels) + "x" + std::to_string(ds.height) + "x" +
                std::to_string(ds.width) + " but the model expects " + std::to_string(c.channels) + "x" +
                std::to_string(c.image_height) + "x" + std::to_string(c.image_width));
  if (ds.question_dim != c.question_dim)
    throw Error(what + ": questions have " + std::to_string(ds.question_dim) + " features, the model expects " +
                std::to_string(c.question_dim));
  for (size_t i = 0; i < ds.labels.size(); ++i)
    if (ds.labels[i] < 0 || ds.labels[i] >= c.num_classes)
      throw Error(what + ": label " + std::to_string(ds.labels[i]) + " of image " + std::to_string(i) +
                  " is outside the model's " + std::to_string(c.num_classes) + " classes");
}

// What messages about a dataset name: its file, else (made in memory) its description.
std::string name_of(const Dataset& ds) {
  if (!ds.path.empty()) return ds.path;
  return ds.source.empty() ? "evaluation data" : "evaluation data (" + ds.source + ")";
}

std::string fmt_time(double s) {
  char buf[32];
  int t = static_cast<int>(s + 0.5);
  std::snprintf(buf, sizeof buf, "%d:%02d", t / 60, t % 60);
  return buf;
}

// One line that rewrites itself on a terminal, plain periodic lines otherwise.
class Progress {
public:
  Progress() : tty_(isatty(fileno(stderr))) {}
  void update(const std::string& line, bool force) {
    if (tty_) {
      std::fprintf(stderr, "\r%-110s", line.c_str());
      std::fflush(stderr);
    } else if (force) {
      std::fprintf(stderr, "%s\n", line.c_str());
    }
  }
  void done() {
    if (tty_) std::fprintf(stderr, "\n");
  }
  bool tty() const { return tty_; }

private:
  bool tty_;
};

}  // namespace

EvalResult evaluate(AiT& model, const Dataset& ds, int64_t batch_size, MemoryEval mode, bool progress) {
  check_fits(model, ds, name_of(ds));
  NoGradScope no_grad;
  EvalResult r;
  const int64_t C = model.config().num_classes;
  r.confusion.assign(C * C, 0);
  Progress bar;
  for (int64_t start = 0; start < ds.n; start += batch_size) {
    std::vector<int64_t> idx(std::min(batch_size, ds.n - start));
    std::iota(idx.begin(), idx.end(), start);
    Batch b = make_batch(ds, idx, model.device(), false, nullptr, &model);
    bool write = mode == MemoryEval::Update;
    ForwardResult f = model.forward(b.images, b.questions, b.labels, write, false, 0);
    if (write) model.commit_memory(f);
    std::vector<float> logits = read_together({f.ce, f.logits});
    r.ce += double(logits[0]) * b.size;
    logits.erase(logits.begin());
    for (int64_t i = 0; i < b.size; ++i) {
      int64_t pred = predicted_class(logits, i, C);
      int32_t truth = ds.labels[idx[i]];
      r.correct += pred == truth;
      r.confusion[truth * C + pred]++;
    }
    r.n += b.size;
    if (progress) bar.update("eval " + std::to_string(r.n) + "/" + std::to_string(ds.n), false);
  }
  if (progress) bar.done();
  r.ce /= std::max<int64_t>(r.n, 1);
  return r;
}

// ------------------------------------------------------------------ training

namespace {

Dataset load_training_data(const TrainOptions& opt) {
  Dataset ds = load_dataset(opt.data);
  if (opt.limit_train > 0) keep_first_rows(ds, opt.limit_train);
  return ds;
}

// The run's configuration: the resumed checkpoint's, or the preset with the dataset's geometry,
// then the JSON file's keys and the --set overrides.
Config run_config(const TrainOptions& opt, const Dataset& train_ds, const CommittedRun& resumed) {
  if (!opt.resume.empty()) return AiT::read_config(resumed.model);
  Config cfg = Config::preset(opt.model);
  cfg.channels = train_ds.channels;
  cfg.image_height = train_ds.height;
  cfg.image_width = train_ds.width;
  cfg.question_dim = train_ds.question_dim;
  cfg.num_classes = static_cast<int64_t>(train_ds.classes.size());
  if (!opt.config_json.empty()) {
    std::vector<uint8_t> text = read_file(opt.config_json);
    cfg.update(Json::parse(std::string(text.begin(), text.end()), opt.config_json), opt.config_json);
  }
  for (const std::string& kv : opt.overrides) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos) throw Error("--set " + kv + ": expected key=value");
    cfg.set(kv.substr(0, eq), kv.substr(eq + 1));
  }
  cfg.validate();
  return cfg;
}

struct Schedule {
  int64_t steps_per_epoch, total_steps, warmup;
};
Schedule schedule_of(const TrainOptions& opt, int64_t n) {
  Schedule s;
  s.steps_per_epoch = (n + opt.batch_size - 1) / opt.batch_size;
  s.total_steps = s.steps_per_epoch * opt.epochs;
  s.warmup = opt.warmup >= 0 ? opt.warmup : std::min<int64_t>(s.total_steps / 20, 500);
  return s;
}

// The shuffled image order of an epoch, from a stream fixed by (seed, epoch): a resumed run sees
// exactly the batches a straight run would.
std::vector<int64_t> epoch_order(int64_t n, int64_t seed, int64_t epoch) {
  Rng rng(static_cast<uint64_t>(seed) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(epoch) + 1);
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.below(i + 1)]);
  return order;
}

// Running means of an epoch's training steps.
struct EpochTotals {
  double loss = 0, ce = 0, balance = 0;
  int64_t seen = 0, correct = 0;
  Json json(const char* kind, int64_t epoch) const {
    Json j = Json::object();
    j.set("kind", kind);
    j.set("epoch", epoch);
    j.set("loss", loss / seen);
    j.set("ce", ce / seen);
    j.set("balance", balance / seen);
    j.set("accuracy", double(correct) / seen);
    return j;
  }
};

// One optimizer step on a batch: forward with memory write and write dropout, backward, AdamW,
// memory update. Adds the batch's loss terms and correct predictions to `totals`.
void train_step(AiT& model, AdamW& adam, const Batch& b, const Dataset& ds, const std::vector<int64_t>& idx, float lr,
                uint32_t dropout_seed, int64_t step, EpochTotals& totals) {
  ForwardResult f = model.forward(b.images, b.questions, b.labels, true, true, dropout_seed);
  f.loss.backward();
  adam.step(lr);
  adam.zero_grad();
  model.commit_memory(f);
  // The log line's values in one read: one device wait per step.
  std::vector<float> values = read_together({f.loss, f.ce, f.balance, f.logits});
  if (!std::isfinite(values[0]))
    throw Error("training diverged: loss is " + std::to_string(values[0]) + " at step " + std::to_string(step) +
                "; try a lower --lr");
  std::vector<float> logits(values.begin() + 3, values.end());
  const int64_t C = model.config().num_classes;
  for (int64_t i = 0; i < b.size; ++i) totals.correct += predicted_class(logits, i, C) == ds.labels[idx[i]];
  totals.loss += double(values[0]) * b.size, totals.ce += double(values[1]) * b.size;
  totals.balance += double(values[2]) * b.size;
  totals.seen += b.size;
}

// train_state.safetensors (spec §8): the optimizer state and where the run stands.
SafeTensors train_state_of(const AdamW& adam, int64_t epoch, int64_t seed, double best) {
  SafeTensors st;
  adam.save_state(st);
  st.add("epoch", StTensor::from_i64({}, {epoch}));
  st.add("seed", StTensor::from_i64({}, {seed}));
  st.add("best_accuracy", StTensor::from_f32({}, {static_cast<float>(best)}));
  st.metadata["format"] = "ait-train-state";
  st.metadata["note"] = "AdamW moments and step; the data position is the epoch (shuffles derive from seed and epoch)";
  return st;
}

// Where a resumed run left off: its optimizer state, the next epoch and the best accuracy.
void resume_from(const TrainOptions& opt, const CommittedRun& run, AdamW& adam, int64_t* start_epoch, double* best) {
  SafeTensors st = read_safetensors(run.train_state);
  adam.load_state(st);
  *start_epoch = st.get("epoch").i64().at(0);
  *best = st.get("best_accuracy").f32().at(0);
  if (*start_epoch != run.epoch)
    throw Error(run.train_state + ": records epoch " + std::to_string(*start_epoch) +
                ", but its checkpoint is of epoch " + std::to_string(run.epoch));
  if (st.get("seed").i64().at(0) != opt.seed)
    throw Error("--resume " + opt.resume + ": the run used --seed " + std::to_string(st.get("seed").i64().at(0)) +
                ", not " + std::to_string(opt.seed));
}

// The progress line of step s of an epoch, and its metrics line when it is due.
struct StepLog {
  StepLog(const TrainOptions& o, const Schedule& s) : opt(o), sched(s) {}
  const TrainOptions& opt;
  const Schedule& sched;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  int64_t images = 0;
  Progress bar;

  void after(int64_t epoch, int64_t s, int64_t step, float lr, int64_t batch, const EpochTotals& t, RunDir& dir) {
    images += batch;
    double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    double ips = images / std::max(elapsed, 1e-9);
    double eta = double(sched.total_steps - step - 1) * opt.batch_size / std::max(ips, 1e-9);
    bool log_now = (s + 1) % opt.log_every == 0 || s + 1 == sched.steps_per_epoch;
    char line[256];
    std::snprintf(line, sizeof line,
                  "epoch %lld/%lld step %lld/%lld loss %.4f (ce %.4f bal %.4f) acc %.3f lr %.2e %.0f img/s ETA %s",
                  static_cast<long long>(epoch + 1), static_cast<long long>(opt.epochs), static_cast<long long>(s + 1),
                  static_cast<long long>(sched.steps_per_epoch), t.loss / t.seen, t.ce / t.seen, t.balance / t.seen,
                  double(t.correct) / t.seen, lr, ips, fmt_time(eta).c_str());
    bar.update(line, log_now);
    if (!log_now) return;
    Json j = t.json("step", epoch + 1);
    j.set("step", step + 1);
    j.set("lr", double(lr));
    j.set("images_per_s", ips);
    dir.log(j);
  }
};

}  // namespace

double train(const TrainOptions& opt, Kernels& dev) {
  validate_train_options(opt);
  Dataset train_ds = load_training_data(opt);
  Dataset val_ds = load_dataset(opt.val.empty() ? opt.data : opt.val);
  if (opt.batch_size < 1) throw Error("--batch-size must be at least 1");
  if (opt.epochs < 1) throw Error("--epochs must be at least 1");
  if (opt.out.empty()) throw Error("--out DIR is required");
  RunDir dir(opt.out);  // locked from here on; the committed files change only at the next commit
  const CommittedRun resumed = opt.resume.empty() ? CommittedRun{} : read_committed_run(opt.resume);
  const Config cfg = run_config(opt, train_ds, resumed);
  AiT model = opt.resume.empty() ? AiT(cfg, dev, static_cast<uint64_t>(opt.seed)) : AiT::load(resumed.model, dev);
  if (model.data_mean.empty()) model.data_mean = train_ds.mean, model.data_std = train_ds.std;
  check_fits(model, train_ds, opt.data);
  check_fits(model, val_ds, opt.val.empty() ? opt.data : opt.val);
  AdamW adam(model, opt.weight_decay);
  const Schedule sched = schedule_of(opt, train_ds.n);
  int64_t start_epoch = 0;
  double best = -1;
  if (!opt.resume.empty()) {
    resume_from(opt, resumed, adam, &start_epoch, &best);
    dir.continue_from(resumed);
  }
  for (const std::string& name : dir.removed())
    std::fprintf(stderr, "ait train: removed %s/%s, left by a run that was stopped\n", opt.out.c_str(), name.c_str());
  std::fprintf(stderr, "ait train: %s, %lld parameters, %lld train / %lld val images, %lld steps/epoch, device %s\n",
               opt.resume.empty() ? opt.model.c_str() : ("the run in " + opt.resume).c_str(),
               static_cast<long long>(model.parameter_count()), static_cast<long long>(train_ds.n),
               static_cast<long long>(val_ds.n), static_cast<long long>(sched.steps_per_epoch), dev.name().c_str());

  StepLog log{opt, sched};
  for (int64_t epoch = start_epoch; epoch < opt.epochs; ++epoch) {
    const std::vector<int64_t> order = epoch_order(train_ds.n, opt.seed, epoch);
    Rng aug_rng(hash32(static_cast<uint32_t>(opt.seed)) ^ (static_cast<uint64_t>(epoch) << 32));
    EpochTotals totals;
    auto t_epoch = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < sched.steps_per_epoch; ++s) {
      const int64_t step = epoch * sched.steps_per_epoch + s;
      std::vector<int64_t> idx(order.begin() + s * opt.batch_size,
                               order.begin() + std::min(train_ds.n, (s + 1) * opt.batch_size));
      const float lr = learning_rate(step, sched.total_steps, sched.warmup, opt.lr);
      const uint32_t dropout_seed = hash32(static_cast<uint32_t>(opt.seed) * 7919u + static_cast<uint32_t>(step));
      Batch b = make_batch(train_ds, idx, dev, opt.augment, &aug_rng, &model);
      train_step(model, adam, b, train_ds, idx, lr, dropout_seed, step, totals);
      log.after(epoch, s, step, lr, b.size, totals, dir);
    }
    log.bar.done();
    double epoch_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_epoch).count();
    EvalResult ev = evaluate(model, val_ds, std::max<int64_t>(opt.batch_size, 256), opt.memory_eval, log.bar.tty());
    std::fprintf(stderr, "epoch %lld: train loss %.4f acc %.4f | val ce %.4f acc %.4f | %.1f s, %.0f img/s\n",
                 static_cast<long long>(epoch + 1), totals.loss / totals.seen, double(totals.correct) / totals.seen,
                 ev.ce, ev.accuracy(), epoch_s, totals.seen / epoch_s);
    Json j = totals.json("epoch", epoch + 1);
    j.set("val_ce", ev.ce);
    j.set("val_accuracy", ev.accuracy());
    j.set("images_per_s", totals.seen / epoch_s);
    j.set("seconds", epoch_s);
    dir.log(j);
    const double accuracy = static_cast<float>(ev.accuracy());  // as train_state keeps it: resumed runs compare alike
    const bool improved = accuracy > best;
    if (improved) best = accuracy;
    dir.commit(epoch + 1, model, improved, train_state_of(adam, epoch + 1, opt.seed, best));
    if (opt.stop_after_epochs > 0 && epoch + 1 - start_epoch >= opt.stop_after_epochs) break;
  }
  return best;
}

// ------------------------------------------------------------------ cross-check dump (spec §7)

void dump(const DumpOptions& opt, Kernels& dev) {
  AiT model = AiT::load(opt.checkpoint, dev);
  const Config& c = model.config();
  SafeTensors in = read_safetensors(opt.batch);
  const StTensor& img = in.get("images");
  if (img.dtype != "F32" || img.shape.size() != 4 || img.shape[1] != c.channels || img.shape[2] != c.image_height ||
      img.shape[3] != c.image_width)
    throw Error(opt.batch + ": tensor 'images' is " + img.dtype + " " + shape_str(img.shape) + ", expected F32 [B, " +
                std::to_string(c.channels) + ", " + std::to_string(c.image_height) + ", " +
                std::to_string(c.image_width) + "]");
  const int64_t B = img.shape[0];
  std::vector<int32_t> labels = in.get("labels").i32();
  if (static_cast<int64_t>(labels.size()) != B)
    throw Error(opt.batch + ": tensor 'labels' must hold " + std::to_string(B) + " labels");
  for (int64_t i = 0; i < B; ++i)
    if (labels[i] < 0 || labels[i] >= c.num_classes)
      throw Error(opt.batch + ": tensor 'labels': label " + std::to_string(labels[i]) + " at " + std::to_string(i) +
                  " is outside [0, " + std::to_string(c.num_classes) + ")");
  std::vector<float> pixels = img.f32();
  for (float v : pixels)
    if (!std::isfinite(v)) throw Error(opt.batch + ": tensor 'images' holds NaN or inf");
  Tensor images = Tensor::from(img.shape, pixels, &dev), lab = Tensor::from_int({B}, labels, &dev), questions;
  if (c.question_dim > 0) {
    const StTensor& q = in.get("questions");
    if (q.shape != Shape{B, c.question_dim}) throw Error(opt.batch + ": tensor 'questions' must be [B, question_dim]");
    questions = Tensor::from(q.shape, q.f32(), &dev);
  }

  SafeTensors out;
  out.metadata["format"] = "ait-dump";
  out.metadata["checkpoint"] = opt.checkpoint;
  auto put = [&](const std::string& name, const Tensor& t) {
    out.add(name, StTensor::from_f32(t.shape(), t.to_vector()));
  };
  {
    NoGradScope ng;  // eval pass from the checkpoint's weights and memory, before any write
    put("eval.logits", model.forward(images, questions, lab, false, false, 0).logits);
  }
  AdamW adam(model, opt.weight_decay);
  std::vector<Tensor> step_losses;  // read together at the end: no device wait per step
  const int64_t passes = std::max<int64_t>(1, opt.train_steps);
  for (int64_t s = 0; s < passes; ++s) {
    ForwardResult f = model.forward(images, questions, lab, true, false, 0);  // training pass, write dropout off
    f.loss.backward();
    if (s == 0) {
      put("logits", f.logits);
      put("loss", f.loss);
      put("loss.ce", f.ce);
      put("loss.balance", f.balance);
      for (auto& [name, p] : model.params())
        put("grad." + name, p.grad().defined() ? p.grad() : Tensor::zeros(p.shape(), &dev));
      for (size_t i = 0; i < f.new_memory.size(); ++i) put("memory." + std::to_string(i), f.new_memory[i]);
    }
    if (opt.train_steps > 0) {
      step_losses.push_back(f.loss.detach());
      adam.step(opt.lr);
    }
    adam.zero_grad();
    model.commit_memory(f);
  }
  if (opt.train_steps > 0) {
    out.add("step_losses", StTensor::from_f32({opt.train_steps}, read_together(step_losses)));
    for (auto& [name, p] : model.params()) put("param." + name, p);
    for (size_t i = 0; i < model.memory().size(); ++i) put("memory.final." + std::to_string(i), model.memory()[i]);
  }
  write_safetensors(opt.out, out);
}

}  // namespace ait

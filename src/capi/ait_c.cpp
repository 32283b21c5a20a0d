// The C interface (include/ait.h) over the model layer. Every entry point runs its body inside
// guarded(), which turns each C++ exception into a status and this thread's error message, so
// nothing is thrown across the C boundary.
#include "ait.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/image.h"
#include "io/inflate.h"
#include "io/json.h"
#include "model/model.h"
#include "model/options.h"
#include "model/train.h"
#include "vulkan/device.h"

struct ait_model {
  ait::AiT model;
  ait::MemoryEval memory = ait::MemoryEval::Frozen;
};

namespace {

thread_local std::string t_last_error;

// One forward pass at a time, process-wide: all handles share the CPU thread pool and the
// per-device Vulkan contexts.
std::mutex g_forward_mu;

// An error that already knows its status (bad arguments, versions, devices, shapes).
struct StatusError : ait::Error {
  StatusError(ait_status s, const std::string& message) : ait::Error(message), status(s) {}
  ait_status status;
};

[[noreturn]] void fail(ait_status s, const std::string& message) { throw StatusError(s, message); }

template <class Body>
ait_status guarded(const char* function, Body body) {
  try {
    body();
    return AIT_OK;
  } catch (const StatusError& e) {
    t_last_error = std::string(function) + ": " + e.what();
    return e.status;
  } catch (const ait::OptionError& e) {  // check_batch_fits: the batch does not fit in memory
    t_last_error = std::string(function) + ": " + e.what();
    return AIT_ERROR_MEMORY;
  } catch (const ait::Error& e) {
    t_last_error = std::string(function) + ": " + e.what();
    return AIT_ERROR_FILE;
  } catch (const std::bad_alloc&) {
    t_last_error = std::string(function) + ": out of memory";
    return AIT_ERROR_MEMORY;
  } catch (const std::exception& e) {
    t_last_error = std::string(function) + ": internal error: " + e.what();
    return AIT_ERROR_INTERNAL;
  } catch (...) {
    t_last_error = std::string(function) + ": internal error (unknown exception)";
    return AIT_ERROR_INTERNAL;
  }
}

void require(bool ok, const std::string& message) {
  if (!ok) fail(AIT_ERROR_ARGUMENT, message);
}

// The checkpoint's __metadata__ "version" when the file's header says it is an AiT checkpoint
// and can be read cheaply; "" otherwise (AiT::load then reports what is wrong with the file).
std::string checkpoint_version(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  unsigned char len_bytes[8];
  if (!in.read(reinterpret_cast<char*>(len_bytes), 8)) return "";
  uint64_t len = 0;
  for (int i = 7; i >= 0; --i) len = len << 8 | len_bytes[i];
  if (len == 0 || len > (uint64_t(1) << 26)) return "";
  std::string header(size_t(len), '\0');
  if (!in.read(&header[0], std::streamsize(len))) return "";
  try {
    const ait::Json j = ait::Json::parse(header, path);
    const ait::Json* meta = j.is_object() ? j.find("__metadata__") : nullptr;
    if (!meta || !meta->is_object()) return "";
    const ait::Json *format = meta->find("format"), *version = meta->find("version");
    if (!format || !version || !format->is_string() || !version->is_string() || format->as_string() != "ait") return "";
    return version->as_string();
  } catch (const ait::Error&) {
    return "";
  }
}

void check_version(const std::string& path) {
  const std::string v = checkpoint_version(path);
  if (v.empty() || v == "1") return;
  const bool newer = v.find_first_not_of("0123456789") == std::string::npos && v.size() < 10 && std::stoi(v) > 1;
  if (newer)
    fail(AIT_ERROR_VERSION,
         path + ": checkpoint format version " + v + " is newer than this library reads (1); use a newer libait");
}

ait::Kernels& open_device(const std::string& spec) {
  try {
    return *ait::select_device(spec);
  } catch (const ait::Error& e) {
    fail(AIT_ERROR_DEVICE, std::string("device '") + spec + "': " + e.what());
  }
}

// The batch as a dataset in memory, so that make_batch normalises it exactly as training,
// eval and `ait predict` do. Its own mean 0 / std 1 apply only when the checkpoint has none.
ait::Dataset as_dataset(const ait::Config& c, int batch, const uint8_t* images, const float* questions) {
  ait::Dataset ds;
  ds.n = batch, ds.channels = c.channels, ds.height = c.image_height, ds.width = c.image_width;
  ds.question_dim = c.question_dim;
  ds.images.assign(images, images + size_t(batch) * size_t(c.channels * c.image_height * c.image_width));
  ds.labels.assign(size_t(batch), 0);
  if (c.question_dim) ds.questions.assign(questions, questions + size_t(batch) * size_t(c.question_dim));
  ds.mean.assign(size_t(c.channels), 0.0f);
  ds.std.assign(size_t(c.channels), 1.0f);
  return ds;
}

void check_predict_arguments(const ait_model* m, int batch, const uint8_t* images, size_t images_size,
                             const float* questions, size_t questions_size, const float* logits, size_t logits_size,
                             const int* classes, size_t classes_size) {
  require(m != nullptr, "model is NULL");
  const ait::Config& c = m->model.config();
  require(
      batch >= 1 && batch <= ait::TrainLimits::kMaxBatchSize,
      "batch " + std::to_string(batch) + " is outside [1, " + std::to_string(ait::TrainLimits::kMaxBatchSize) + "]");
  const size_t B = size_t(batch), per_image = size_t(c.channels * c.image_height * c.image_width);
  require(images != nullptr, "images is NULL");
  require(images_size == B * per_image, "images_size is " + std::to_string(images_size) +
                                            ", expected batch*C*H*W = " + std::to_string(B * per_image));
  const size_t q = size_t(c.question_dim);
  if (q == 0) {
    require(questions == nullptr && questions_size == 0, "questions given, but the model takes none (pass NULL, 0)");
  } else {
    require(questions != nullptr, "questions is NULL, but the model takes " + std::to_string(q) + " per image");
    require(questions_size == B * q, "questions_size is " + std::to_string(questions_size) +
                                         ", expected batch*question_dim = " + std::to_string(B * q));
    for (size_t i = 0; i < B * q; ++i)
      require(std::isfinite(questions[i]), "questions[" + std::to_string(i) + "] is not finite");
  }
  require(logits || classes, "logits and classes are both NULL: nothing to return");
  const size_t K = size_t(c.num_classes);
  require(logits ? logits_size == B * K : logits_size == 0,
          "logits_size is " + std::to_string(logits_size) + ", expected " + (logits ? std::to_string(B * K) : "0") +
              (logits ? " (batch*num_classes)" : " (logits is NULL)"));
  require(classes ? classes_size == B : classes_size == 0, "classes_size is " + std::to_string(classes_size) +
                                                               ", expected " + (classes ? std::to_string(B) : "0") +
                                                               (classes ? " (batch)" : " (classes is NULL)"));
  ait::check_batch_fits(c, batch, batch, false, "batch");
}

// HWC pixels of a decoded image into CHW, grey repeated into every channel.
void to_chw(const ait::Image& im, int channels, uint8_t* chw) {
  const size_t plane = size_t(im.height) * size_t(im.width);
  for (int c = 0; c < channels; ++c)
    for (size_t p = 0; p < plane; ++p)
      chw[size_t(c) * plane + p] = im.pixels[p * size_t(im.channels) + size_t(im.channels == 1 ? 0 : c)];
}

// PNG by its signature, whatever the file is called; anything else goes to the PNM decoder.
bool is_png(const std::vector<uint8_t>& bytes) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return bytes.size() >= 8 && std::equal(kSignature, kSignature + 8, bytes.begin());
}

}  // namespace

extern "C" {

const char* ait_version(void) { return AIT_VERSION_STRING; }

const char* ait_last_error(void) { return t_last_error.c_str(); }

ait_status ait_open(const char* checkpoint, const char* device, ait_model** model) {
  if (model) *model = nullptr;
  return guarded("ait_open", [&] {
    require(model != nullptr, "model (the handle's address) is NULL");
    require(checkpoint != nullptr, "checkpoint is NULL");
    require(device != nullptr, "device is NULL (use \"cpu\", \"vulkan\", \"vulkan:N\" or \"auto\")");
    check_version(checkpoint);
    ait::Kernels& dev = open_device(device);
    *model = new ait_model{ait::AiT::load(checkpoint, dev)};
  });
}

void ait_close(ait_model* model) {
  if (!model) return;
  std::lock_guard<std::mutex> lock(g_forward_mu);  // its tensors may live on a shared device
  delete model;
}

ait_status ait_get_config(const ait_model* model, ait_config* config) {
  return guarded("ait_get_config", [&] {
    require(model != nullptr, "model is NULL");
    require(config != nullptr, "config is NULL");
    const ait::Config& c = model->model.config();
    config->channels = int(c.channels), config->height = int(c.image_height), config->width = int(c.image_width);
    config->question_dim = int(c.question_dim), config->num_classes = int(c.num_classes);
    config->has_normalisation = model->model.data_mean.empty() ? 0 : 1;
  });
}

ait_status ait_set_memory_mode(ait_model* model, ait_memory_mode mode) {
  return guarded("ait_set_memory_mode", [&] {
    require(model != nullptr, "model is NULL");
    require(mode == AIT_MEMORY_FROZEN || mode == AIT_MEMORY_UPDATE,
            "mode " + std::to_string(int(mode)) + " is neither AIT_MEMORY_FROZEN nor AIT_MEMORY_UPDATE");
    model->memory = mode == AIT_MEMORY_UPDATE ? ait::MemoryEval::Update : ait::MemoryEval::Frozen;
  });
}

ait_status ait_predict(ait_model* model, int batch, const uint8_t* images, size_t images_size, const float* questions,
                       size_t questions_size, float* logits, size_t logits_size, int* classes, size_t classes_size) {
  return guarded("ait_predict", [&] {
    check_predict_arguments(model, batch, images, images_size, questions, questions_size, logits, logits_size, classes,
                            classes_size);
    ait::AiT& m = model->model;
    const ait::Dataset ds = as_dataset(m.config(), batch, images, questions);
    std::vector<int64_t> rows(static_cast<size_t>(batch));
    for (int i = 0; i < batch; ++i) rows[size_t(i)] = i;
    std::lock_guard<std::mutex> lock(g_forward_mu);
    ait::NoGradScope no_grad;
    const ait::Batch b = ait::make_batch(ds, rows, m.device(), false, nullptr, &m);
    const bool write = model->memory == ait::MemoryEval::Update;
    const ait::ForwardResult f = m.forward(b.images, b.questions, {}, write, false, 0);
    if (write) m.commit_memory(f);
    const std::vector<float> out = f.logits.to_vector();
    const int64_t K = m.config().num_classes;
    if (logits) std::copy(out.begin(), out.end(), logits);
    if (classes)
      for (int i = 0; i < batch; ++i) classes[i] = int(ait::predicted_class(out, i, K));
  });
}

ait_status ait_read_image(const char* path, int channels, int height, int width, uint8_t* chw, size_t chw_size) {
  return guarded("ait_read_image", [&] {
    require(path != nullptr, "path is NULL");
    require(chw != nullptr, "chw is NULL");
    require(channels == 1 || channels == 3, "channels " + std::to_string(channels) + " is neither 1 nor 3");
    require(height >= 1 && width >= 1, "height and width must be at least 1");
    require(chw_size == size_t(channels) * size_t(height) * size_t(width),
            "chw_size is " + std::to_string(chw_size) + ", expected channels*height*width = " +
                std::to_string(size_t(channels) * size_t(height) * size_t(width)));
    const std::vector<uint8_t> bytes = ait::read_file(path);
    const ait::Image im = is_png(bytes) ? ait::decode_png(bytes, path) : ait::decode_pnm(bytes, path);
    if (im.height != height || im.width != width || (im.channels == 3 && channels == 1))
      fail(AIT_ERROR_SHAPE, std::string(path) + ": image is " + std::to_string(im.channels) + "x" +
                                std::to_string(im.height) + "x" + std::to_string(im.width) + " (CxHxW), expected " +
                                std::to_string(channels) + "x" + std::to_string(height) + "x" + std::to_string(width));
    to_chw(im, channels, chw);
  });
}

}  // extern "C"

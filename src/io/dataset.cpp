#include "io/dataset.h"

#include <cmath>

#include "io/idx.h"
#include "io/json.h"

namespace ait {

namespace {

// a * b for non-negative values, or -1 on overflow.
int64_t mul_checked(int64_t a, int64_t b) {
  if (a < 0 || b < 0) return -1;
  if (a != 0 && b > INT64_MAX / a) return -1;
  return a * b;
}

std::string float_str(float v) { return std::isfinite(v) ? Json(v).dump() : std::to_string(v); }

}  // namespace

int64_t Dataset::image_count() const {
  const int64_t per = image_bytes();
  return per > 0 ? int64_t(images.size() / size_t(per)) : 0;
}

namespace {

// The stored images: [n, C, H, W] without an image_index; with one, any positive number of
// images, every row's index within them (naming the first bad row).
void validate_images(const Dataset& ds, const std::string& where) {
  if (ds.channels <= 0 || ds.height <= 0 || ds.width <= 0)
    throw Error(where + ": tensor 'images': image shape [" + std::to_string(ds.channels) + ", " +
                std::to_string(ds.height) + ", " + std::to_string(ds.width) + "] must be positive");
  const int64_t per = mul_checked(mul_checked(ds.channels, ds.height), ds.width);
  if (ds.image_index.empty()) {
    int64_t total = mul_checked(ds.n, per);
    if (total < 0 || uint64_t(total) != ds.images.size())
      throw Error(where + ": tensor 'images': " + std::to_string(ds.images.size()) + " bytes, but shape " +
                  shape_str({ds.n, ds.channels, ds.height, ds.width}) + " needs " +
                  (total < 0 ? std::string("more") : std::to_string(total)));
    return;
  }
  if (per < 0 || ds.images.empty() || ds.images.size() % uint64_t(per) != 0)
    throw Error(where + ": tensor 'images': " + std::to_string(ds.images.size()) +
                " bytes are not a positive number of " + shape_str({ds.channels, ds.height, ds.width}) + " images");
  if (ds.image_index.size() != uint64_t(ds.n))
    throw Error(where + ": tensor 'image_index': " + std::to_string(ds.image_index.size()) + " entries for " +
                std::to_string(ds.n) + " rows");
  const int64_t m = ds.image_count();
  for (size_t r = 0; r < ds.image_index.size(); ++r)
    if (ds.image_index[r] < 0 || ds.image_index[r] >= m)
      throw Error(where + ": tensor 'image_index': row " + std::to_string(r) + " refers to image " +
                  std::to_string(ds.image_index[r]) + ", outside [0, " + std::to_string(m) + ") (" + std::to_string(m) +
                  " stored images)");
}

}  // namespace

void validate_dataset(const Dataset& ds, const std::string& where) {
  if (ds.n <= 0) throw Error(where + ": the dataset has no rows (n = " + std::to_string(ds.n) + ")");
  validate_images(ds, where);
  if (ds.labels.size() != uint64_t(ds.n))
    throw Error(where + ": tensor 'labels': " + std::to_string(ds.labels.size()) + " labels for " +
                std::to_string(ds.n) + " rows");
  if (ds.question_dim < 0)
    throw Error(where + ": tensor 'questions': negative question_dim " + std::to_string(ds.question_dim));
  int64_t qtotal = mul_checked(ds.n, ds.question_dim);
  if (qtotal < 0 || uint64_t(qtotal) != ds.questions.size())
    throw Error(where + ": tensor 'questions': " + std::to_string(ds.questions.size()) + " values, but [" +
                std::to_string(ds.n) + ", " + std::to_string(ds.question_dim) + "] needs " +
                (qtotal < 0 ? std::string("more") : std::to_string(qtotal)));
  for (size_t i = 0; i < ds.questions.size(); ++i)
    if (!std::isfinite(ds.questions[i]))
      throw Error(where + ": tensor 'questions': value " + std::to_string(ds.questions[i]) + " at [" +
                  std::to_string(i / size_t(ds.question_dim)) + ", " + std::to_string(i % size_t(ds.question_dim)) +
                  "] is not finite");
  if (ds.classes.empty()) throw Error(where + ": __metadata__ 'classes' is empty");
  const int64_t k = int64_t(ds.classes.size());
  for (size_t i = 0; i < ds.labels.size(); ++i)
    if (ds.labels[i] < 0 || ds.labels[i] >= k)
      throw Error(where + ": tensor 'labels': label " + std::to_string(ds.labels[i]) + " at index " +
                  std::to_string(i) + " is outside [0, " + std::to_string(k) + ") (" + std::to_string(k) + " classes)");
  for (const char* field : {"mean", "std"}) {
    const std::vector<float>& v = field[0] == 'm' ? ds.mean : ds.std;
    if (v.size() != uint64_t(ds.channels))
      throw Error(where + ": __metadata__ '" + field + "' has " + std::to_string(v.size()) + " values for " +
                  std::to_string(ds.channels) + " channels");
    for (size_t c = 0; c < v.size(); ++c) {
      bool ok = std::isfinite(v[c]) && (field[0] == 'm' || v[c] > 0);
      if (!ok)
        throw Error(where + ": __metadata__ '" + field + "'[" + std::to_string(c) + "] is " + float_str(v[c]) +
                    (field[0] == 'm' ? ", expected a finite number" : ", expected a positive finite number"));
    }
  }
}

namespace {

const std::string& meta_field(const SafeTensors& st, const std::string& key) {
  auto it = st.metadata.find(key);
  if (it == st.metadata.end())
    throw Error(st.source + ": __metadata__ has no '" + key + "' (not an ait dataset file?)");
  return it->second;
}

std::vector<float> meta_floats(const SafeTensors& st, const std::string& key) {
  Json j = Json::parse(meta_field(st, key), st.source + " __metadata__ '" + key + "'");
  if (!j.is_array())
    throw Error(st.source + ": __metadata__ '" + key + "' is " + j.type_name() + ", expected an array of numbers");
  std::vector<float> out;
  for (size_t i = 0; i < j.size(); ++i) {
    if (!j[i].is_number())
      throw Error(st.source + ": __metadata__ '" + key + "'[" + std::to_string(i) + "] is " + j[i].type_name() +
                  ", expected a number");
    out.push_back(float(j[i].as_number()));
  }
  return out;
}

void expect_rank(const StTensor& t, size_t rank, const char* layout) {
  if (t.shape.size() != rank)
    throw Error(t.where() + ": shape " + shape_str(t.shape) + " has " + std::to_string(t.shape.size()) +
                " dimensions, expected " + std::to_string(rank) + " " + layout);
}

}  // namespace

Dataset dataset_from_safetensors(SafeTensors st) {
  const std::string src = st.source;
  const std::string& format = meta_field(st, "format");
  if (format != "ait-dataset") throw Error(src + ": __metadata__ 'format' is '" + format + "', expected 'ait-dataset'");
  const std::string& version = meta_field(st, "version");
  if (version != "1") throw Error(src + ": unsupported dataset version '" + version + "' (this build reads version 1)");
  Dataset ds;
  {
    Json j = Json::parse(meta_field(st, "classes"), src + " __metadata__ 'classes'");
    if (!j.is_array())
      throw Error(src + ": __metadata__ 'classes' is " + j.type_name() + ", expected an array of strings");
    for (size_t i = 0; i < j.size(); ++i) {
      if (!j[i].is_string())
        throw Error(src + ": __metadata__ 'classes'[" + std::to_string(i) + "] is " + j[i].type_name() +
                    ", expected a string");
      ds.classes.push_back(j[i].as_string());
    }
  }
  ds.mean = meta_floats(st, "mean");
  ds.std = meta_floats(st, "std");
  auto s = st.metadata.find("source");
  if (s != st.metadata.end()) ds.source = s->second;

  for (const auto& kv : st.tensors)
    if (kv.first != "images" && kv.first != "labels" && kv.first != "questions" && kv.first != "image_index")
      throw Error(src + ": unexpected tensor '" + kv.first +
                  "' (a dataset holds 'images', 'labels' and optionally 'questions' and 'image_index')");

  st.get("images");  // throws naming the file when absent
  StTensor& images = st.tensors.find("images")->second;
  if (images.dtype != "U8") throw Error(images.where() + ": dtype is " + images.dtype + ", expected U8");
  expect_rank(images, 4, "[M, C, H, W]");
  int64_t count = images.numel();
  if (uint64_t(count) != images.bytes.size())
    throw Error(images.where() + ": " + std::to_string(images.bytes.size()) + " bytes for shape " +
                shape_str(images.shape));
  ds.n = images.shape[0];
  ds.channels = images.shape[1];
  ds.height = images.shape[2];
  ds.width = images.shape[3];
  std::string rows_from = " images";
  if (st.has("image_index")) {
    const StTensor& index = st.get("image_index");
    if (index.dtype != "I32") throw Error(index.where() + ": dtype is " + index.dtype + ", expected I32");
    expect_rank(index, 1, "[N]");
    ds.n = index.shape[0];
    ds.image_index = index.i32();
    if (ds.image_index.empty()) throw Error(index.where() + ": no rows");
    rows_from = " rows of 'image_index'";
  }

  const StTensor& labels = st.get("labels");
  expect_rank(labels, 1, "[N]");
  if (labels.shape[0] != ds.n)
    throw Error(labels.where() + ": shape " + shape_str(labels.shape) + " does not match the " + std::to_string(ds.n) +
                rows_from);
  ds.labels = labels.i32();

  if (st.has("questions")) {
    const StTensor& q = st.get("questions");
    expect_rank(q, 2, "[N, q]");
    if (q.shape[0] != ds.n)
      throw Error(q.where() + ": shape " + shape_str(q.shape) + " does not match the " + std::to_string(ds.n) +
                  rows_from);
    ds.question_dim = q.shape[1];
    ds.questions = q.f32();
  }
  ds.images = std::move(images.bytes);
  validate_dataset(ds, src);
  return ds;
}

Dataset load_dataset(const std::string& path) {
  Dataset ds = dataset_from_safetensors(read_safetensors(path));
  ds.path = path;
  return ds;
}

SafeTensors dataset_to_safetensors(const Dataset& ds) {
  SafeTensors st;
  st.metadata["format"] = "ait-dataset";
  st.metadata["version"] = "1";
  Json classes = Json::array();
  for (const std::string& c : ds.classes) classes.push_back(Json(c));
  st.metadata["classes"] = classes.dump();
  Json mean = Json::array(), sd = Json::array();
  for (float v : ds.mean) mean.push_back(Json(v));
  for (float v : ds.std) sd.push_back(Json(v));
  st.metadata["mean"] = mean.dump();
  st.metadata["std"] = sd.dump();
  st.metadata["source"] = ds.source;
  st.add("images", StTensor::from_u8({ds.image_count(), ds.channels, ds.height, ds.width}, ds.images));
  st.add("labels", StTensor::from_i32({ds.n}, ds.labels));
  if (!ds.image_index.empty()) st.add("image_index", StTensor::from_i32({ds.n}, ds.image_index));
  if (ds.question_dim > 0) st.add("questions", StTensor::from_f32({ds.n, ds.question_dim}, ds.questions));
  return st;
}

void save_dataset(const std::string& path, const Dataset& ds) {
  validate_dataset(ds, path);
  SafeTensors st = dataset_to_safetensors(ds);
  st.source = path;
  write_safetensors(path, st);
}

void compute_channel_stats(Dataset& ds) {
  const std::string where = ds.source.empty() ? std::string("dataset") : ds.source;
  if (ds.n <= 0 || ds.channels <= 0 || ds.height <= 0 || ds.width <= 0 || ds.images.empty())
    throw Error(where + ": cannot compute channel statistics of an empty dataset");
  validate_images(ds, where);
  const int64_t plane = ds.height * ds.width, stored = ds.image_count();
  std::vector<uint64_t> sum(size_t(ds.channels), 0), sumsq(size_t(ds.channels), 0);
  const uint8_t* p = ds.images.data();
  for (int64_t i = 0; i < stored; ++i)
    for (int64_t c = 0; c < ds.channels; ++c) {
      uint64_t s = 0, q = 0;
      for (int64_t j = 0; j < plane; ++j) {
        uint32_t v = p[j];
        s += v;
        q += v * v;
      }
      sum[size_t(c)] += s;
      sumsq[size_t(c)] += q;
      p += plane;
    }
  const uint64_t count = uint64_t(stored) * uint64_t(plane);
  ds.mean.assign(size_t(ds.channels), 0.f);
  ds.std.assign(size_t(ds.channels), 1.f);
  for (size_t c = 0; c < size_t(ds.channels); ++c) {
    // count^2 * variance = count * sum(x^2) - sum(x)^2, exactly in 128-bit integers.
    unsigned __int128 num = (unsigned __int128)count * sumsq[c] - (unsigned __int128)sum[c] * sum[c];
    long double mean = (long double)sum[c] / ((long double)count * 255.0L);
    long double sd = std::sqrt((long double)num) / ((long double)count * 255.0L);
    ds.mean[c] = float(mean);
    ds.std[c] = sd > 0 ? float(sd) : 1.f;
    if (!(ds.std[c] > 0)) ds.std[c] = 1.f;  // a denormal standard deviation rounds to 0 in float
  }
}

Dataset select_rows(const Dataset& ds, const std::vector<int64_t>& rows) {
  Dataset out;
  out.n = int64_t(rows.size());
  out.channels = ds.channels, out.height = ds.height, out.width = ds.width, out.question_dim = ds.question_dim;
  out.classes = ds.classes, out.mean = ds.mean, out.std = ds.std, out.source = ds.source;
  const size_t per = size_t(ds.image_bytes()), q = size_t(ds.question_dim);
  std::vector<int32_t> new_of(ds.image_index.empty() ? 0 : size_t(ds.image_count()), -1);
  for (int64_t r : rows) {
    const uint8_t* pic = ds.row_image(r);
    if (ds.image_index.empty()) {
      out.images.insert(out.images.end(), pic, pic + per);
    } else {
      int32_t& k = new_of[size_t(ds.image_index[size_t(r)])];
      if (k < 0) {
        k = int32_t(out.images.size() / per);
        out.images.insert(out.images.end(), pic, pic + per);
      }
      out.image_index.push_back(k);
    }
    out.labels.push_back(ds.labels[size_t(r)]);
    out.questions.insert(out.questions.end(), ds.questions.begin() + std::ptrdiff_t(size_t(r) * q),
                         ds.questions.begin() + std::ptrdiff_t(size_t(r + 1) * q));
  }
  return out;
}

void keep_first_rows(Dataset& ds, int64_t n) {
  if (n <= 0 || n >= ds.n) return;
  ds.n = n;
  if (ds.image_index.empty()) ds.images.resize(size_t(n * ds.image_bytes()));
  else ds.image_index.resize(size_t(n));
  ds.labels.resize(size_t(n));
  ds.questions.resize(size_t(n * ds.question_dim));
}

Dataset dataset_from_idx(const std::string& images_path, const std::string& labels_path,
                         const std::vector<std::string>& class_names, const std::string& source) {
  if (class_names.empty()) throw Error("dataset_from_idx: no class names given");
  IdxArray im = read_idx(images_path);
  IdxArray lb = read_idx(labels_path);
  if (im.dims.size() != 3)
    throw Error(images_path + ": IDX images have dims " + shape_str(im.dims) + ", expected 3 dimensions [N, H, W]");
  if (lb.dims.size() != 1)
    throw Error(labels_path + ": IDX labels have dims " + shape_str(lb.dims) + ", expected 1 dimension [N]");
  if (im.dims[0] != lb.dims[0])
    throw Error(images_path + " has " + std::to_string(im.dims[0]) + " images but " + labels_path + " has " +
                std::to_string(lb.dims[0]) + " labels");
  const size_t k = class_names.size();
  for (size_t i = 0; i < lb.data.size(); ++i)
    if (lb.data[i] >= k)
      throw Error(labels_path + ": label " + std::to_string(lb.data[i]) + " at index " + std::to_string(i) +
                  " is outside [0, " + std::to_string(k) + ") (" + std::to_string(k) + " classes)");
  Dataset ds;
  ds.n = im.dims[0];
  ds.channels = 1;
  ds.height = im.dims[1];
  ds.width = im.dims[2];
  ds.images = std::move(im.data);
  ds.labels.assign(lb.data.begin(), lb.data.end());
  ds.classes = class_names;
  ds.source = source;
  if (ds.n == 0) throw Error(images_path + ": the IDX file holds no images");
  if (ds.height == 0 || ds.width == 0)
    throw Error(images_path + ": IDX images have dims " + shape_str(im.dims) + " (empty images)");
  compute_channel_stats(ds);
  validate_dataset(ds, images_path);
  return ds;
}

std::vector<std::string> fashion_mnist_classes() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
}

}  // namespace ait

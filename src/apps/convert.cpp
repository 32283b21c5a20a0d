#include "apps/convert.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/rng.h"
#include "io/inflate.h"

namespace ait {

uint64_t generator_stream_seed(uint64_t seed, uint64_t stream) {
  Rng r(seed ^ (0xA5A5A5A5DEADBEEFull * (stream + 1)));
  return r.next_u64();
}

namespace {

void fill_disc(uint8_t* img, int size, double cx, double cy, double r, uint8_t v) {
  int x0 = std::max(0, int(std::floor(cx - r))), x1 = std::min(size - 1, int(std::ceil(cx + r)));
  int y0 = std::max(0, int(std::floor(cy - r))), y1 = std::min(size - 1, int(std::ceil(cy + r)));
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) {
      double dx = x - cx, dy = y - cy;
      if (dx * dx + dy * dy <= r * r) img[y * size + x] = v;
    }
}

double dist(double ax, double ay, double bx, double by) { return std::hypot(ax - bx, ay - by); }

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower((unsigned char)c));
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// Triangle
Dataset make_triangle_dataset(int64_t n, uint64_t seed, uint64_t stream, std::vector<TriangleScene>* scenes) {
  if (n <= 0) throw Error("triangle: the number of images must be positive");
  const int S = kTriangleSize;
  const double lo = kTriangleMargin, hi = S - 1 - kTriangleMargin;
  Rng rng(generator_stream_seed(seed, stream));
  Dataset ds;
  ds.n = n;
  ds.channels = 1;
  ds.height = ds.width = S;
  ds.images.assign(size_t(n) * S * S, 0);
  ds.labels.resize(size_t(n));
  ds.classes = {"equilateral", "random"};
  ds.source = "ait-convert triangle seed " + std::to_string(seed) + " stream " + std::to_string(stream);
  if (scenes) scenes->clear();
  auto inside = [&](double x, double y) { return x >= lo && x <= hi && y >= lo && y <= hi; };
  for (int64_t i = 0; i < n; ++i) {
    TriangleScene sc;
    sc.label = int(i % 2);
    for (;;) {
      for (int k = 0; k < 2; ++k) {
        sc.vx[k] = rng.uniform(float(lo), float(hi));
        sc.vy[k] = rng.uniform(float(lo), float(hi));
      }
      double d01 = dist(sc.vx[0], sc.vy[0], sc.vx[1], sc.vy[1]);
      if (d01 < 12) continue;
      if (sc.label == 0) {
        const double c = 0.5, s = std::sqrt(3.0) / 2;
        double dx = sc.vx[1] - sc.vx[0], dy = sc.vy[1] - sc.vy[0];
        sc.vx[2] = sc.vx[0] + c * dx - s * dy;
        sc.vy[2] = sc.vy[0] + s * dx + c * dy;
        if (!inside(sc.vx[2], sc.vy[2])) continue;
      } else {
        sc.vx[2] = rng.uniform(float(lo), float(hi));
        sc.vy[2] = rng.uniform(float(lo), float(hi));
        double d02 = dist(sc.vx[0], sc.vy[0], sc.vx[2], sc.vy[2]);
        double d12 = dist(sc.vx[1], sc.vy[1], sc.vx[2], sc.vy[2]);
        if (d02 < 12 || d12 < 12) continue;
        double mx = std::max({d01, d02, d12}), mn = std::min({d01, d02, d12});
        if (mx <= 1.1 * mn) continue;
      }
      break;
    }
    uint8_t* img = ds.images.data() + size_t(i) * S * S;
    for (int k = 0; k < 3; ++k)
      for (int p = 0; p < 8; ++p) {
        double x = sc.vx[k] + rng.uniform(-1.f, 1.f), y = sc.vy[k] + rng.uniform(-1.f, 1.f);
        sc.px.push_back(x);
        sc.py.push_back(y);
        fill_disc(img, S, x, y, 2.0, 255);
      }
    ds.labels[size_t(i)] = sc.label;
    if (scenes) scenes->push_back(std::move(sc));
  }
  compute_channel_stats(ds);
  return ds;
}

// ------------------------------------------------------------------------------------------
// CIFAR
std::vector<std::string> cifar10_classes() {
  return {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
}

Dataset dataset_from_cifar(const std::vector<std::string>& files, bool cifar100, bool fine,
                           const std::string& names_file) {
  if (files.empty()) throw Error("cifar: no input files");
  const size_t label_bytes = cifar100 ? 2 : 1, pix = 3072, rec = label_bytes + pix;
  Dataset ds;
  if (!names_file.empty()) {
    std::vector<uint8_t> b = read_file(names_file);
    std::string cur;
    for (size_t i = 0; i <= b.size(); ++i) {
      char c = i < b.size() ? char(b[i]) : '\n';
      if (c == '\n' || c == '\r') {
        size_t a = cur.find_first_not_of(" \t"), z = cur.find_last_not_of(" \t");
        if (a != std::string::npos) ds.classes.push_back(cur.substr(a, z - a + 1));
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (ds.classes.empty()) throw Error(names_file + ": no class names");
  } else if (!cifar100) {
    ds.classes = cifar10_classes();
  } else {
    int k = fine ? 100 : 20;
    for (int i = 0; i < k; ++i) ds.classes.push_back(std::string(fine ? "fine_" : "coarse_") + std::to_string(i));
  }
  ds.channels = 3;
  ds.height = ds.width = 32;
  for (const std::string& f : files) {
    std::vector<uint8_t> b = read_file(f);
    if (b.empty() || b.size() % rec != 0)
      throw Error(f + ": size " + std::to_string(b.size()) + " bytes is not a positive multiple of the " +
                  std::to_string(rec) + "-byte " + (cifar100 ? "CIFAR-100" : "CIFAR-10") + " record");
    size_t count = b.size() / rec;
    for (size_t r = 0; r < count; ++r) {
      const uint8_t* p = b.data() + r * rec;
      int label = cifar100 ? (fine ? p[1] : p[0]) : p[0];
      if (size_t(label) >= ds.classes.size())
        throw Error(f + ": record " + std::to_string(r) + " has label " + std::to_string(label) + ", but there are " +
                    std::to_string(ds.classes.size()) + " classes");
      ds.labels.push_back(label);
      ds.images.insert(ds.images.end(), p + label_bytes, p + rec);
    }
  }
  ds.n = int64_t(ds.labels.size());
  ds.source = std::string(cifar100 ? (fine ? "CIFAR-100 fine labels: " : "CIFAR-100 coarse labels: ") : "CIFAR-10: ");
  for (size_t i = 0; i < files.size(); ++i) ds.source += (i ? ", " : "") + files[i];
  compute_channel_stats(ds);
  return ds;
}

// ------------------------------------------------------------------------------------------
// NumPy
namespace {

struct Nchw {
  int64_t n = 0, c = 0, h = 0, w = 0;
};

// Channels that an image array can have; any other count under the chosen layout means the
// layout is the wrong one (or the array is not images).
bool plausible_channels(int64_t c) { return c == 1 || c == 3 || c == 4; }

// The [N, C, H, W] that the image array's shape means under `layout`.
Nchw npy_image_dims(const NpyArray& im, const std::string& layout, const std::string& path) {
  const std::vector<int64_t>& s = im.shape;
  Nchw d;
  if (s.size() == 3) d = {s[0], 1, s[1], s[2]};
  else if (s.size() == 4 && layout == "nhwc") d = {s[0], s[3], s[1], s[2]};
  else if (s.size() == 4) d = {s[0], s[1], s[2], s[3]};
  else throw Error(path + ": images must be 3-D [N,H,W] or 4-D, got " + std::to_string(s.size()) + "-D");
  if (d.n <= 0 || d.c <= 0 || d.h <= 0 || d.w <= 0) throw Error(path + ": empty image array");
  if (plausible_channels(d.c)) return d;
  const bool nhwc = layout == "nhwc";
  const std::string other = nhwc ? "nchw" : "nhwc";
  const int64_t other_c = nhwc ? s[1] : s[3];
  throw Error(
      path + ": shape " + shape_str(s) + " read with --layout " + layout + " (" +
      (nhwc ? "[N, H, W, C]" : "[N, C, H, W]") + ") is " + std::to_string(d.c) + " channels of " + std::to_string(d.h) +
      "x" + std::to_string(d.w) + ", but images have 1, 3 or 4 channels; " +
      (plausible_channels(other_c) ? "the data looks " + other + ": pass --layout " + other : "neither layout fits"));
}

// The image bytes: uint8 as they are, float32 in [0, 1] scaled to round(x * 255).
std::vector<uint8_t> npy_pixels_u8(NpyArray& im, size_t total, const std::string& path) {
  const bool f32 = im.descr.substr(1) == "f4" && im.descr[0] != '>';
  const bool u8 = im.descr.substr(1) == "u1";
  if (!f32 && !u8) throw Error(path + ": image dtype '" + im.descr + "' unsupported (uint8 |u1 or float32 <f4)");
  if (u8) return std::move(im.data);  // parse_npy checked it holds exactly `total` bytes
  std::vector<uint8_t> v(total);
  for (size_t i = 0; i < total; ++i) {
    float x;
    std::memcpy(&x, im.data.data() + 4 * i, 4);
    if (!(x >= 0.f && x <= 1.f))
      throw Error(path + ": float image value at flat index " + std::to_string(i) + " is " + std::to_string(x) +
                  " (must be finite and in [0, 1])");
    v[i] = uint8_t(std::lround(double(x) * 255.0));
  }
  return v;
}

std::vector<uint8_t> nhwc_to_nchw(const std::vector<uint8_t>& v, const Nchw& d) {
  std::vector<uint8_t> out(v.size());
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t y = 0; y < d.h; ++y)
      for (int64_t x = 0; x < d.w; ++x)
        for (int64_t c = 0; c < d.c; ++c)
          out[size_t(((n * d.c + c) * d.h + y) * d.w + x)] = v[size_t(((n * d.h + y) * d.w + x) * d.c + c)];
  return out;
}

// N integer labels of any integer dtype, each in [0, limit).
std::vector<int32_t> npy_labels(const NpyArray& lb, int64_t n, int64_t limit, const std::string& path) {
  if (lb.shape.size() != 1 || lb.shape[0] != n)
    throw Error(path + ": labels must be 1-D with " + std::to_string(n) + " entries");
  const size_t item = npy_itemsize(lb.descr, path);
  const char kind = lb.descr[1];
  if ((kind != 'i' && kind != 'u') || (item != 1 && item != 2 && item != 4 && item != 8))
    throw Error(path + ": label dtype '" + lb.descr + "' is not an integer type");
  std::vector<int32_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    uint64_t raw = 0;
    std::memcpy(&raw, lb.data.data() + size_t(i) * item, item);  // little-endian host
    int64_t val;
    if (kind == 'i' && item < 8 && (raw >> (item * 8 - 1)) & 1) val = -1;
    else if (raw > uint64_t(INT32_MAX)) val = INT64_MAX;  // also a negative int64
    else val = int64_t(raw);
    if (val < 0 || val >= limit)
      throw Error(path + ": label at index " + std::to_string(i) + " is out of range [0, " + std::to_string(limit) +
                  ")");
    labels.push_back(int32_t(val));
  }
  return labels;
}

}  // namespace

Dataset dataset_from_npy(const std::string& images_path, const std::string& labels_path, const std::string& layout,
                         const std::vector<std::string>& classes) {
  if (layout != "nhwc" && layout != "nchw") throw Error("npy: --layout must be nhwc or nchw, not '" + layout + "'");
  NpyArray im = parse_npy(read_file(images_path), images_path);
  const NpyArray lb = parse_npy(read_file(labels_path), labels_path);
  const Nchw d = npy_image_dims(im, layout, images_path);
  Dataset ds;
  std::vector<uint8_t> px = npy_pixels_u8(im, size_t(d.n * d.c * d.h * d.w), images_path);
  ds.images = im.shape.size() == 4 && layout == "nhwc" ? nhwc_to_nchw(px, d) : std::move(px);
  const int64_t limit = classes.empty() ? int64_t(INT32_MAX) : int64_t(classes.size());
  ds.labels = npy_labels(lb, d.n, limit, labels_path);
  if (classes.empty()) {
    const int64_t maxlab = *std::max_element(ds.labels.begin(), ds.labels.end());
    if (maxlab > 100000)
      throw Error(labels_path + ": largest label " + std::to_string(maxlab) + " is implausible; pass --classes");
    for (int64_t k = 0; k <= maxlab; ++k) ds.classes.push_back(std::to_string(k));
  } else {
    ds.classes = classes;
  }
  ds.n = d.n, ds.channels = d.c, ds.height = d.h, ds.width = d.w;
  ds.source = "npy: " + images_path + ", " + labels_path;
  compute_channel_stats(ds);
  return ds;
}

// ------------------------------------------------------------------------------------------
// Image folder
namespace {

namespace fs = std::filesystem;

// The class sub-folders of `dir`, sorted by name; hidden ones (".x") are skipped.
std::vector<fs::path> class_folders(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(dir + ": not a directory");
  std::vector<fs::path> folders;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string()[0] != '.') folders.push_back(e.path());
  std::sort(folders.begin(), folders.end());
  if (folders.empty()) throw Error(dir + ": no class sub-folders");
  return folders;
}

// The image files of one class folder (.png .pgm .ppm, any case), sorted by name.
std::vector<fs::path> class_images(const fs::path& folder) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(folder)) {
    const std::string ext = lower(e.path().extension().string());
    if (e.is_regular_file() && (ext == ".png" || ext == ".pgm" || ext == ".ppm")) files.push_back(e.path());
  }
  if (files.empty())
    throw Error(folder.string() + ": class folder has no images (.png, .pgm or .ppm); remove it or add images");
  std::sort(files.begin(), files.end());
  return files;
}

Image read_image(const fs::path& file, int resize_h, int resize_w) {
  const std::vector<uint8_t> bytes = read_file(file.string());
  Image im =
      lower(file.extension().string()) == ".png" ? decode_png(bytes, file.string()) : decode_pnm(bytes, file.string());
  if (resize_h > 0 && resize_w > 0 && (im.height != resize_h || im.width != resize_w))
    im = resize_nearest(im, resize_h, resize_w);
  return im;
}

// HWC images of one size into the dataset's [N, C, H, W]; grey images are repeated into
// every channel when some image is RGB.
void pack_images(const std::vector<Image>& images, Dataset& ds) {
  int C = 1;
  for (const Image& im : images) C = std::max(C, im.channels);
  const int H = images[0].height, W = images[0].width;
  const size_t plane = size_t(H) * size_t(W);
  ds.n = int64_t(images.size()), ds.channels = C, ds.height = H, ds.width = W;
  ds.images.resize(images.size() * size_t(C) * plane);
  for (size_t i = 0; i < images.size(); ++i) {
    const Image& im = images[i];
    uint8_t* dst = ds.images.data() + i * size_t(C) * plane;
    for (int c = 0; c < C; ++c)
      for (size_t p = 0; p < plane; ++p)
        dst[size_t(c) * plane + p] = im.pixels[p * size_t(im.channels) + size_t(im.channels == 1 ? 0 : c)];
  }
}

}  // namespace

Dataset dataset_from_folder(const std::string& dir, int resize_h, int resize_w) {
  const std::vector<fs::path> folders = class_folders(dir);
  Dataset ds;
  std::vector<Image> images;
  std::string first;  // the first image's file, for the size-mismatch message
  for (size_t k = 0; k < folders.size(); ++k) {
    ds.classes.push_back(folders[k].filename().string());
    for (const fs::path& f : class_images(folders[k])) {
      Image im = read_image(f, resize_h, resize_w);
      if (images.empty()) first = f.string();
      if (!images.empty() && (im.width != images[0].width || im.height != images[0].height))
        throw Error(f.string() + ": size " + std::to_string(im.height) + "x" + std::to_string(im.width) +
                    " differs from " + first + " (" + std::to_string(images[0].height) + "x" +
                    std::to_string(images[0].width) + "); pass --size HxW to resize");
      images.push_back(std::move(im));
      ds.labels.push_back(int32_t(k));
    }
  }
  pack_images(images, ds);
  ds.source = "folder: " + dir;
  compute_channel_stats(ds);
  return ds;
}

// ------------------------------------------------------------------------------------------
// Split
Dataset split_dataset(Dataset& train, int64_t n_val, uint64_t seed) {
  if (n_val <= 0 || n_val >= train.n)
    throw Error("--split " + std::to_string(n_val) + " must be in [1, " + std::to_string(train.n - 1) + "]");
  std::vector<int64_t> idx(size_t(train.n));
  for (int64_t i = 0; i < train.n; ++i) idx[size_t(i)] = i;
  Rng rng(generator_stream_seed(seed, 77));
  for (int64_t i = 0; i < n_val; ++i)
    std::swap(idx[size_t(i)], idx[size_t(i + int64_t(rng.below(uint64_t(train.n - i))))]);
  std::vector<bool> is_val(size_t(train.n), false);
  for (int64_t i = 0; i < n_val; ++i) is_val[size_t(idx[size_t(i)])] = true;
  std::vector<int64_t> val_rows, train_rows;
  for (int64_t i = 0; i < train.n; ++i) (is_val[size_t(i)] ? val_rows : train_rows).push_back(i);
  Dataset val = select_rows(train, val_rows), tr = select_rows(train, train_rows);
  val.source = train.source + " (validation split)";
  compute_channel_stats(tr);
  val.mean = tr.mean, val.std = tr.std;
  train = std::move(tr);
  return val;
}

}  // namespace ait

// Dataset converters and generators behind `ait-convert`: every one returns an ait::Dataset
// (see dataset.h) with channel statistics computed, ready for save_dataset. All randomness
// comes from ait::Rng, so the output is a pure function of the inputs and the seed.
//
// Every reader treats its input as hostile and throws ait::Error naming the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/sort_of_clevr.h"  // the Sort-of-CLEVR generator
#include "io/dataset.h"
#include "io/image.h"
#include "io/npy.h"

namespace ait {

// The RNG seed of a generator's `stream` (0 train, 1 test, ...) for the user's `seed`.
uint64_t generator_stream_seed(uint64_t seed, uint64_t stream);

// ---- Triangle (equilateral vs random), 64x64 grey ----
// Each vertex is drawn as 8 points jittered uniformly within +-1 px, each point a filled disc
// of radius 2 (value 255 on 0). Vertices lie in [kTriangleMargin, 63 - kTriangleMargin], so
// every object pixel is inside the image. Label 0 ("equilateral"): v2 = v0 + rot60(v1 - v0),
// resampled until inside the margins and the side is at least 12 px. Label 1 ("random"):
// three uniform vertices, each pair at least 12 px apart, resampled while the triangle is
// within 10% of equilateral. Labels alternate 0, 1, 0, ... (balanced).
constexpr int kTriangleSize = 64;
constexpr double kTriangleMargin = 4.0;
struct TriangleScene {
  double vx[3], vy[3];         // vertices
  std::vector<double> px, py;  // the 24 point centres (8 per vertex, in vertex order)
  int label = 0;
};
// `stream` separates train (0) and test (1) so they never share samples for one seed.
Dataset make_triangle_dataset(int64_t n, uint64_t seed, uint64_t stream, std::vector<TriangleScene>* scenes = nullptr);

// ---- CIFAR binary ----
// CIFAR-10: records of 1 label byte + 3072 bytes (3x32x32, CHW). CIFAR-100: 2 label bytes
// (coarse, then fine) + 3072; `fine` picks the label. Class names: CIFAR-10's ten names, or
// for CIFAR-100 "coarse_0".. / "fine_0".. unless `names_file` (one name per line, blank lines
// ignored, e.g. batches.meta.txt / fine_label_names.txt) is given.
Dataset dataset_from_cifar(const std::vector<std::string>& files, bool cifar100, bool fine,
                           const std::string& names_file = "");
std::vector<std::string> cifar10_classes();

// ---- NumPy .npy (the file format itself is io/npy.h) ----
// Images: |u1 or <f4 (values in [0,1], stored as round(x*255)); 3-D = one channel; 4-D in
// `layout` "nhwc" or "nchw", which must give 1, 3 or 4 channels (anything else means the
// layout is the wrong one, and the error says so). Labels: any integer dtype, 1-D of length N.
// Classes: `classes` when non-empty (labels range-checked against it) else "0".."max".
Dataset dataset_from_npy(const std::string& images_path, const std::string& labels_path, const std::string& layout,
                         const std::vector<std::string>& classes);

// ---- Image folder (the file formats are io/image.h) ----
// One sub-folder per class: the class names are the sub-folder names and their sorted order
// is the class order (hidden ".x" folders skipped); files are read in sorted name order.
// .png .pgm .ppm (any case) are read, other files ignored; a class folder without images is
// an error naming it. Grey is expanded to RGB when any image is RGB; alpha is dropped and
// palettes are expanded (decode_png). Sizes must match unless `resize_h`/`resize_w` > 0
// (nearest neighbour to resize_h x resize_w).
Dataset dataset_from_folder(const std::string& dir, int resize_h = 0, int resize_w = 0);

// ---- Split ----
// Moves `n_val` seeded-random rows (kept in their original order) from `train` into the
// returned dataset; recomputes train's mean/std and copies them into the result.
Dataset split_dataset(Dataset& train, int64_t n_val, uint64_t seed);

}  // namespace ait

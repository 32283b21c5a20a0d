// The project's dataset file: a safetensors file holding
//   images      U8  [M, C, H, W]   the stored images
//   labels      I32 [N]            (I64 accepted on load)
//   questions   F32 [N, q]         (optional)
//   image_index I32 [N]            (optional) row -> stored image; without it M = N and row r
//                                  shows image r
// with __metadata__ "format": "ait-dataset", "version": "1", "classes": JSON array of class
// names, "mean" / "std": JSON arrays with one value per channel (statistics of the pixel
// values scaled to [0, 1]), and "source": free text.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace ait {

struct Dataset {
  int64_t n = 0, channels = 0, height = 0, width = 0, question_dim = 0;  // n = rows
  std::vector<uint8_t> images;                                           // [image_count(), channels, height, width]
  std::vector<int32_t> labels;                                           // [n], each in [0, classes.size())
  // [n] row -> stored image, each in [0, image_count()); empty: row r shows image r. Many rows
  // (an image's questions) can share one image, so it is stored once.
  std::vector<int32_t> image_index;
  std::vector<float> questions;  // [n, question_dim]; empty when question_dim == 0
  std::vector<std::string> classes;
  std::vector<float> mean, std;  // per channel, over pixel values / 255
  std::string source;            // free text: where the data came from
  std::string path;              // the file load_dataset read it from (empty when made in memory)

  int64_t image_bytes() const { return channels * height * width; }
  // Stored images: images.size() / image_bytes() (n when there is no image_index).
  int64_t image_count() const;
  // The pixels [channels, height, width] that row `row` shows.
  const uint8_t* row_image(int64_t row) const {
    const int64_t k = image_index.empty() ? row : image_index[size_t(row)];
    return images.data() + size_t(k) * size_t(image_bytes());
  }
};

// The rows `rows` (in that order) of `ds` as a new dataset that keeps only the images they
// show (an image_index when `ds` has one); classes, mean, std and source are copied.
Dataset select_rows(const Dataset& ds, const std::vector<int64_t>& rows);
// Keeps rows [0, n); the stored images stay as they are when the dataset has an image_index.
void keep_first_rows(Dataset& ds, int64_t n);

// Checks everything load_dataset checks, on a dataset in memory; messages start with `where`.
void validate_dataset(const Dataset& ds, const std::string& where);

// Reads and validates a dataset file: metadata format and version, shapes consistent with
// each other, labels within [0, classes) (naming the first bad index), image_index within
// [0, stored images) (naming the first bad row), questions finite,
// mean / std one finite value per channel with std > 0, no unexpected tensors.
Dataset load_dataset(const std::string& path);
// The same from a parsed safetensors file (messages name st.source).
Dataset dataset_from_safetensors(SafeTensors st);
SafeTensors dataset_to_safetensors(const Dataset& ds);
// Validates, then writes atomically.
void save_dataset(const std::string& path, const Dataset& ds);

// Sets mean and std (population standard deviation) per channel over the stored images, on pixel
// values scaled to [0, 1]. A channel whose pixels are all equal gets std 1 (normalising it
// then only subtracts the mean). Throws when the dataset has no images.
void compute_channel_stats(Dataset& ds);

// Builds a one-channel dataset from an MNIST-style pair of IDX files (plain or gzip): images
// [N, H, W] u8 and labels [N] u8, each label < class_names.size(). Computes channel stats.
Dataset dataset_from_idx(const std::string& images_path, const std::string& labels_path,
                         const std::vector<std::string>& class_names, const std::string& source);

// T-shirt/top, Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
std::vector<std::string> fashion_mnist_classes();

}  // namespace ait

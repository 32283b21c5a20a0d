// Checkpoint export and import:
//   - numpy's .npz (a zip of .npy arrays, stored without compression; our own zip writer and
//     reader), one array per checkpoint tensor under its spec name, config in a JSON file beside;
//   - the authors' PyTorch state-dict naming (the AiT reference code, arXiv 2309.12862), both
//     directions, as safetensors. tools/reference/authors_naming.md has the mapping table.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/model.h"

namespace ait {

// ------------------------------------------------------------------ .npy / .npz

// A float32 .npy v1.0 file ('<f4', C order); write_npy (convert.h) does the header. Read
// .npy files back with parse_npy (convert.h).
std::vector<uint8_t> npy_f32(const Shape& shape, const std::vector<float>& values);

struct ZipEntry {
  std::string name;
  std::vector<uint8_t> data;
};
// A zip archive with every entry stored (method 0): local headers with CRC-32 and sizes,
// central directory, end-of-central-directory record. Entries must be < 4 GiB (no zip64).
std::vector<uint8_t> zip_stored(const std::vector<ZipEntry>& entries);
// Reads a zip archive of stored entries through its central directory; checks that each local
// header agrees with it and each entry's CRC-32. Throws naming `source` and the entry.
std::vector<ZipEntry> unzip_stored(const std::vector<uint8_t>& bytes, const std::string& source);

// Path of the config file written beside an .npz: "x.npz" -> "x.config.json".
std::string npz_config_path(const std::string& npz_path);
// Checkpoint -> OUT (every parameter and memory buffer, in spec order, as "<name>.npy") and
// npz_config_path(OUT) (format, version, config, data_mean/data_std when present). Both atomic.
// Returns the number of arrays written.
size_t export_npz(const std::string& checkpoint, const std::string& out);

// ------------------------------------------------------------------ authors' naming

struct AuthorsName {
  std::string ours;    // spec name (empty for the authors' tensors that we do not use)
  std::string theirs;  // authors' state_dict key
  Shape shape;         // their shape (equal to ours for every mapped tensor)
};
// The full mapping for a configuration, in spec order, then their unused tensors
// (pos_embedding, cls_token, to_patch_embedding_cnn.0.*, memoryupdate.beta per layer).
std::vector<AuthorsName> authors_names(const Config& c);

// Column permutation of write.out.weight ([rows, H·m]) between our head-major concatenation
// (column j·m + f for head j, feature f) and the authors' interleaved one (column f·H + j).
std::vector<float> write_out_to_authors(const std::vector<float>& w, int64_t rows, int64_t H, int64_t m);
std::vector<float> write_out_from_authors(const std::vector<float>& w, int64_t rows, int64_t H, int64_t m);

// Our model -> the authors' state dict (metadata: format "ait-authors", config, data stats).
// Their unused tensors are zeros, except memoryupdate.beta = memory_momentum.
SafeTensors to_authors(const AiT& model);
// The authors' state dict -> our model, for configuration `c`. A "module." prefix on every key
// (DataParallel) is dropped. Every mapped tensor must be present with its shape and dtype F32
// (the error names it); their unused tensors are ignored (memoryupdate.beta, when present, must
// equal memory_momentum); any other tensor is an error naming it.
AiT from_authors(const SafeTensors& st, const Config& c, Kernels& dev);

void export_authors(const std::string& checkpoint, const std::string& out);
// config_path empty: use the "config" metadata that export_authors writes.
void import_authors(const std::string& input, const std::string& config_path, const std::string& out);

// Frozen-memory eval logits (memory_eval=frozen, no write) of a checkpoint on a dataset file,
// normalised as `ait eval` does; [N, C] row-major. `limit` > 0 takes the first `limit` images.
std::vector<float> checkpoint_logits(const std::string& checkpoint, const std::string& dataset, int64_t limit,
                                     int64_t batch_size, int64_t* n_out, int64_t* classes_out);

}  // namespace ait

// Pictures of a model and of a run, with no outside libraries: `ait viz` renders the bottleneck
// gates and the Hopfield read weights of one writing pass as PNG files (our own rasteriser,
// encode_png), `ait plot` renders a run's metrics.jsonl as an SVG (our own SVG writer).
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "model/model.h"

namespace ait {

// ---------------------------------------------------------------- raster + colour maps

// An RGB image (row-major, 3 bytes a pixel). Drawing outside the canvas is clipped.
struct Raster {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  Raster() = default;
  Raster(int w, int h, uint8_t r = 0, uint8_t g = 0, uint8_t b = 0);
  void set(int x, int y, uint8_t r, uint8_t g, uint8_t b);
  void fill(int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b);
  // Upper-case 3x5 bitmap font (lower case is drawn as upper case), `scale` pixels a dot;
  // each character advances 4·scale pixels. Returns the x after the last character.
  int text(int x, int y, const std::string& s, int scale, uint8_t r, uint8_t g, uint8_t b);
  static int text_width(const std::string& s, int scale) { return static_cast<int>(s.size()) * 4 * scale; }
  void save_png(const std::string& path) const;  // atomic write
};

struct Rgb {
  uint8_t r, g, b;
};
Rgb viridis(double t);  // t in [0, 1] (clamped): dark purple → blue → green → yellow
Rgb heat(double t);     // t in [0, 1] (clamped): dark red → red → orange → yellow; always R > B

// ---------------------------------------------------------------- gate / read pictures

// Where the cells of layer{i}_gates.png lie: one row per image, one column per memory slot;
// the cell of (image b, slot s) has its top-left pixel at (cell_x(s), cell_y(b)) and holds the
// input image upscaled `scale` times (nearest), so patch (py, px) covers the square
// [cell_x + px·p·scale, +p·scale) × [cell_y + py·p·scale, +p·scale).
struct GateGridLayout {
  int scale = 1, image_w = 0, image_h = 0;  // image_w/h: upscaled image size in pixels
  int origin_x = 0, origin_y = 0, pitch_x = 0, pitch_y = 0;
  int question_strip = 0;  // height of the question-token strip under each image (0 when q = 0)
  int width = 0, height = 0;
  int cell_x(int64_t slot) const { return origin_x + static_cast<int>(slot) * pitch_x; }
  int cell_y(int64_t image) const { return origin_y + static_cast<int>(image) * pitch_y; }
};
GateGridLayout gate_grid_layout(const Config& cfg, int64_t images);

// Renders one layer's gate A [H, M, B·T] (host copy, as ForwardResult::gates holds it) for the
// images `idx` of `ds` (the batch of that pass, in order). Heads are summed; a patch whose
// summed gate is > 0 is overlaid with heat(w / max of that slot over the batch), alpha
// 0.3..1; the rest of the image is drawn grey (or in its own colours when RGB), dimmed.
Raster render_gates(const Config& cfg, const Dataset& ds, const std::vector<int64_t>& idx,
                    const std::vector<float>& gate, int layer);
// Renders one layer's read softmax [B, T, M]: per image a T × M heatmap (viridis, scale 0..max
// of the layer) under a thumbnail of the image.
Raster render_reads(const Config& cfg, const Dataset& ds, const std::vector<int64_t>& idx,
                    const std::vector<float>& read, int layer);

// Runs one writing pass (write = true, training = false, memory not committed) on the images
// [start, start + count) of `ds` as one batch and writes into `dir` (created when missing)
// layer{i}_gates.png and layer{i}_read.png for every layer, and README.txt describing them.
// Returns the paths written. Throws ait::Error when the data does not fit the model.
std::vector<std::string> write_viz(const AiT& model, const Dataset& ds, const std::string& dir, int64_t start,
                                   int64_t count);

// ---------------------------------------------------------------- training curves

struct MetricsStep {
  double step, loss, ce, balance, accuracy, lr;
};
struct MetricsEpoch {
  double epoch, last_step;  // last_step: the step of the last step line before this epoch line
  double val_accuracy;      // NaN when the line has none
  double seconds = std::numeric_limits<double>::quiet_NaN();       // the epoch's training time (NaN: none)
  double images_per_s = std::numeric_limits<double>::quiet_NaN();  // its training throughput (NaN: none)
};
struct MetricsLog {
  std::vector<MetricsStep> steps;
  std::vector<MetricsEpoch> epochs;
};
// Reads a metrics.jsonl as `ait train` writes it. Blank lines and unknown kinds are skipped;
// when a step number goes backwards (a resumed run re-logging an epoch) the later lines
// replace the earlier ones from that step on. Errors (missing file, a line that is not a JSON
// object, a step/epoch line missing a numeric field, no step lines) throw ait::Error
// "FILE:LINE: ..." (or "FILE: ..." for the file as a whole).
MetricsLog read_metrics(const std::string& path);
// The same for the file's contents; `path` names it in the errors.
MetricsLog parse_metrics(const std::string& text, const std::string& path);
// Three panels (loss, accuracy, learning rate vs step); every step series is one <polyline>
// with one point per step line, val accuracy one <circle> per epoch.
std::string render_curves_svg(const MetricsLog& log, const std::string& title);
// read_metrics(run_dir/metrics.jsonl) → SVG at `out` (default run_dir/curves.svg). Returns the path.
std::string write_curves(const std::string& run_dir, const std::string& out = "");

}  // namespace ait

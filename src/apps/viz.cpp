// Gate / read-weight pictures (PNG) and training curves (SVG); see viz.h.
#include "apps/viz.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "apps/convert.h"
#include "apps/plot.h"
#include "io/inflate.h"
#include "io/json.h"
#include "model/train.h"

namespace ait {

namespace fs = std::filesystem;

// ================================================================ raster

Raster::Raster(int w, int h, uint8_t r, uint8_t g, uint8_t b) : width(w), height(h), rgb(size_t(w) * h * 3) {
  for (size_t i = 0; i < rgb.size(); i += 3) rgb[i] = r, rgb[i + 1] = g, rgb[i + 2] = b;
}

void Raster::set(int x, int y, uint8_t r, uint8_t g, uint8_t b) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  uint8_t* p = &rgb[(size_t(y) * width + x) * 3];
  p[0] = r, p[1] = g, p[2] = b;
}

void Raster::fill(int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  for (int j = std::max(0, y); j < std::min(height, y + h); ++j)
    for (int i = std::max(0, x); i < std::min(width, x + w); ++i) set(i, j, r, g, b);
}

namespace {
// 3x5 glyphs, 5 rows of 3 columns ('#' on), for the characters the pictures use.
const char* glyph(char c) {
  switch (c) {
    case '0': return "####.##.##.####";
    case '1': return ".#.##..#..#.###";
    case '2': return "###..#####..###";
    case '3': return "###..#.##..####";
    case '4': return "#.##.####..#..#";
    case '5': return "####..###..####";
    case '6': return "####..####.####";
    case '7': return "###..#..#.#..#.";
    case '8': return "####.#####.####";
    case '9': return "####.####..####";
    case 'A': return ".#.#.#####.##.#";
    case 'B': return "##.#.###.#.###.";
    case 'C': return ".###..#..#...##";
    case 'D': return "##.#.##.##.###.";
    case 'E': return "####..##.#..###";
    case 'F': return "####..##.#..#..";
    case 'G': return ".###..#.##.#.##";
    case 'H': return "#.##.#####.##.#";
    case 'I': return "###.#..#..#.###";
    case 'J': return "..#..#..##.#.#.";
    case 'K': return "#.##.###.#.##.#";
    case 'L': return "#..#..#..#..###";
    case 'M': return "#.########.##.#";
    case 'N': return "##.#.##.##.##.#";
    case 'O': return ".#.#.##.##.#.#.";
    case 'P': return "##.#.###.#..#..";
    case 'Q': return ".#.#.##.###..##";
    case 'R': return "##.#.###.#.##.#";
    case 'S': return ".###...#...###.";
    case 'T': return "###.#..#..#..#.";
    case 'U': return "#.##.##.##.####";
    case 'V': return "#.##.##.##.#.#.";
    case 'W': return "#.##.########.#";
    case 'X': return "#.##.#.#.#.##.#";
    case 'Y': return "#.##.#.#..#..#.";
    case 'Z': return "###..#.#.#..###";
    case '.': return ".............#.";
    case ',': return "..........#.#..";
    case ':': return "....#.....#....";
    case ';': return "....#.....#.#..";
    case '-': return "......###......";
    case '+': return "....#.###.#....";
    case '=': return "...###...###...";
    case '/': return "..#..#.#.#..#..";
    case '(': return ".#.#..#..#...#.";
    case ')': return ".#...#..#..#.#.";
    case '[': return "##.#..#..#..##.";
    case ']': return ".##..#..#..#.##";
    case '<': return "..#.#.#...#...#";
    case '>': return "#...#...#.#.#..";
    case '_': return "............###";
    case '\'': return ".#..#..........";
    case '%': return "#.#..#.#.#..#.#";
    case '#': return "#.#####.#####.#";
    case '?': return "###..#.#.....#.";
    case '^': return ".#.#.#.........";
    default: return "...............";
  }
}
}  // namespace

int Raster::text(int x, int y, const std::string& s, int scale, uint8_t r, uint8_t g, uint8_t b) {
  for (char c : s) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    const char* gl = glyph(c);
    for (int row = 0; row < 5; ++row)
      for (int col = 0; col < 3; ++col)
        if (gl[row * 3 + col] == '#') fill(x + col * scale, y + row * scale, scale, scale, r, g, b);
    x += 4 * scale;
  }
  return x;
}

void Raster::save_png(const std::string& path) const {
  write_file_atomic(path, encode_png(rgb.data(), width, height, 3));
}

namespace {
Rgb lerp_map(const double (*anchors)[3], int n, double t) {
  if (!(t >= 0)) t = 0;  // NaN too
  if (t > 1) t = 1;
  double x = t * (n - 1);
  int i = std::min(n - 2, static_cast<int>(x));
  double f = x - i;
  auto ch = [&](int k) {
    return static_cast<uint8_t>(std::lround(anchors[i][k] + f * (anchors[i + 1][k] - anchors[i][k])));
  };
  return {ch(0), ch(1), ch(2)};
}
}  // namespace

Rgb viridis(double t) {
  // Matplotlib's viridis at t = 0, 1/8, ..., 1, interpolated linearly.
  static const double a[9][3] = {{68, 1, 84},    {72, 36, 117},  {65, 68, 135},  {53, 95, 141}, {42, 120, 142},
                                 {33, 145, 140}, {34, 168, 132}, {122, 209, 81}, {253, 231, 37}};
  return lerp_map(a, 9, t);
}

Rgb heat(double t) {
  static const double a[4][3] = {{150, 0, 40}, {255, 30, 0}, {255, 150, 0}, {255, 255, 90}};
  return lerp_map(a, 4, t);
}

// ================================================================ gate / read pictures

namespace {

constexpr int kPad = 10, kTextScale = 2, kLineH = 14, kGap = 4;
const Rgb kBackground{32, 32, 36}, kInk{230, 230, 230}, kDimInk{160, 160, 160};

// Display pixel of image `img` (HWC after per-image min-max stretch to [0, 255]).
struct DisplayImage {
  int w = 0, h = 0, channels = 0;
  std::vector<uint8_t> px;  // [h, w, channels], stretched
};

DisplayImage display_image(const Dataset& ds, int64_t index) {
  DisplayImage d;
  d.w = static_cast<int>(ds.width), d.h = static_cast<int>(ds.height), d.channels = static_cast<int>(ds.channels);
  const int64_t HW = ds.height * ds.width;
  const uint8_t* src = ds.row_image(index);
  int lo = 255, hi = 0;
  for (int64_t i = 0; i < ds.channels * HW; ++i) lo = std::min<int>(lo, src[i]), hi = std::max<int>(hi, src[i]);
  d.px.resize(static_cast<size_t>(HW * ds.channels));
  for (int64_t c = 0; c < ds.channels; ++c)
    for (int64_t p = 0; p < HW; ++p) {
      int v = src[c * HW + p];
      d.px[p * ds.channels + c] =
          static_cast<uint8_t>(hi > lo ? std::lround(255.0 * (v - lo) / (hi - lo)) : (hi > 0 ? 255 : 0));
    }
  return d;
}

Rgb display_pixel(const DisplayImage& d, int x, int y) {
  const uint8_t* p = &d.px[(size_t(y) * d.w + x) * d.channels];
  if (d.channels == 3) return {p[0], p[1], p[2]};
  return {p[0], p[0], p[0]};  // grey (any other channel count: the first channel)
}

void text(Raster& r, int x, int y, const std::string& s, Rgb c = kInk) { r.text(x, y, s, kTextScale, c.r, c.g, c.b); }

std::string fmt(double v, const char* f = "%.3g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::string class_name(const Dataset& ds, int64_t index) {
  int32_t l = ds.labels[index];
  std::string n = l >= 0 && l < static_cast<int32_t>(ds.classes.size()) ? ds.classes[l] : std::to_string(l);
  return n.size() > 12 ? n.substr(0, 12) : n;
}

// A horizontal colour bar with its end labels.
void colour_bar(Raster& r, int x, int y, int w, Rgb (*map)(double), const std::string& lo, const std::string& hi) {
  for (int i = 0; i < w; ++i) {
    Rgb c = map(w > 1 ? double(i) / (w - 1) : 1.0);
    r.fill(x + i, y, 1, 10, c.r, c.g, c.b);
  }
  text(r, x, y + 13, lo, kDimInk);
  text(r, x + w - Raster::text_width(hi, kTextScale), y + 13, hi, kDimInk);
}

constexpr int kGateHeaderLines = 5;  // title, three legend lines, colour bar (2 lines tall)
constexpr int kHeaderChars = 96;     // no header line is longer
constexpr int kLabelW = 13 * 4 * kTextScale + kPad;

}  // namespace

GateGridLayout gate_grid_layout(const Config& cfg, int64_t images) {
  GateGridLayout L;
  const int big = static_cast<int>(std::max(cfg.image_height, cfg.image_width));
  L.scale = std::max(1, (72 + big - 1) / big);
  L.image_w = static_cast<int>(cfg.image_width) * L.scale;
  L.image_h = static_cast<int>(cfg.image_height) * L.scale;
  L.question_strip = cfg.question_dim > 0 ? 8 : 0;
  L.pitch_x = std::max(L.image_w, Raster::text_width("S99", kTextScale)) + kGap;
  L.pitch_y = L.image_h + L.question_strip + 2 + kLineH + kGap;  // + the "% of the slot's write" line
  L.origin_x = kPad + kLabelW;
  L.origin_y = kPad + (kGateHeaderLines + 1) * kLineH + 14 + kLineH;  // header, colour bar labels, slot numbers
  const int M = static_cast<int>(cfg.memory_slots);
  L.width = std::max(L.origin_x + M * L.pitch_x + kPad,
                     2 * kPad + Raster::text_width(std::string(kHeaderChars, 'x'), kTextScale));
  L.height = L.origin_y + static_cast<int>(images) * L.pitch_y + kPad;
  return L;
}

Raster render_gates(const Config& cfg, const Dataset& ds, const std::vector<int64_t>& idx,
                    const std::vector<float>& gate, int layer) {
  const int64_t B = static_cast<int64_t>(idx.size()), T = cfg.tokens(), M = cfg.memory_slots, H = cfg.memory_heads;
  const int64_t BT = B * T, qoff = cfg.question_dim > 0 ? 1 : 0, p = cfg.patch_size, gw = cfg.image_width / p;
  if (static_cast<int64_t>(gate.size()) != H * M * BT)
    throw Error("render_gates: gate has " + std::to_string(gate.size()) +
                " values, expected H·M·B·T = " + std::to_string(H * M * BT));
  // Heads summed: w[s, token].
  std::vector<double> w(static_cast<size_t>(M * BT), 0.0);
  for (int64_t h = 0; h < H; ++h)
    for (int64_t s = 0; s < M; ++s)
      for (int64_t t = 0; t < BT; ++t) w[s * BT + t] += gate[(h * M + s) * BT + t];
  std::vector<double> slot_max(static_cast<size_t>(M), 0.0);
  for (int64_t s = 0; s < M; ++s)
    for (int64_t t = 0; t < BT; ++t) slot_max[s] = std::max(slot_max[s], w[s * BT + t]);

  GateGridLayout L = gate_grid_layout(cfg, B);
  Raster r(L.width, L.height, kBackground.r, kBackground.g, kBackground.b);
  int y = kPad;
  text(r, kPad, y,
       "LAYER " + std::to_string(layer) + " BOTTLENECK GATES (WRITE), " + std::to_string(H) + " HEADS SUMMED, TOP-K " +
           std::to_string(std::min<int64_t>(cfg.bottleneck, BT)) + " OF " + std::to_string(BT) + " TOKENS");
  y += kLineH;
  text(r, kPad, y, "ROW: IMAGE. COLUMN: MEMORY SLOT. COLOURED PATCH: THE SLOT SELECTED IT (GATE > 0).", kDimInk);
  y += kLineH;
  text(r, kPad, y, "UNDER A CELL: THE SHARE OF THE SLOT'S GATE (SUMMED OVER HEADS / H) ON THAT IMAGE.", kDimInk);
  y += kLineH;
  text(r, kPad, y,
       "THE GATE DEPENDS ON THE WHOLE BATCH: THE WRITE SQUASHES ALL " + std::to_string(B) + " IMAGES' TOKENS.",
       kDimInk);
  y += kLineH + 4;
  text(r, kPad, y, "WEIGHT / SLOT MAX:", kDimInk);
  colour_bar(r, kPad + Raster::text_width("WEIGHT / SLOT MAX: ", kTextScale), y, 200, heat, "0", "1");
  if (qoff)
    text(r, kPad + Raster::text_width("WEIGHT / SLOT MAX: ", kTextScale) + 220, y, "STRIP UNDER IMAGE: QUESTION TOKEN",
         kDimInk);
  // Slot numbers.
  for (int64_t s = 0; s < M; ++s) text(r, L.cell_x(s), L.origin_y - kLineH, "S" + std::to_string(s));

  for (int64_t b = 0; b < B; ++b) {
    const int cy = L.cell_y(b);
    text(r, kPad, cy, "IMAGE " + std::to_string(idx[b]));
    text(r, kPad, cy + kLineH, class_name(ds, idx[b]), kDimInk);
    DisplayImage img = display_image(ds, idx[b]);
    for (int64_t s = 0; s < M; ++s) {
      const int cx = L.cell_x(s);
      for (int yy = 0; yy < L.image_h; ++yy)
        for (int xx = 0; xx < L.image_w; ++xx) {
          const int ix = xx / L.scale, iy = yy / L.scale;
          const int64_t tok = b * T + qoff + (iy / p) * gw + ix / p;
          Rgb c = display_pixel(img, ix, iy);
          double v = w[s * BT + tok];
          if (v > 0) {
            double t = slot_max[s] > 0 ? v / slot_max[s] : 1.0;
            Rgb h = heat(t);
            double a = 0.3 + 0.7 * t;
            c = {static_cast<uint8_t>(std::lround((1 - a) * c.r + a * h.r)),
                 static_cast<uint8_t>(std::lround((1 - a) * c.g + a * h.g)),
                 static_cast<uint8_t>(std::lround((1 - a) * c.b + a * h.b))};
          } else {
            c = {static_cast<uint8_t>(c.r * 0.6), static_cast<uint8_t>(c.g * 0.6), static_cast<uint8_t>(c.b * 0.6)};
          }
          r.set(cx + xx, cy + yy, c.r, c.g, c.b);
        }
      double mass = 0;
      for (int64_t t = 0; t < T; ++t) mass += w[s * BT + b * T + t];
      text(r, cx, cy + L.image_h + L.question_strip + 2, fmt(100.0 * mass / H, "%.0f%%"), kDimInk);
      if (qoff) {
        double v = w[s * BT + b * T];
        Rgb c = v > 0 ? heat(slot_max[s] > 0 ? v / slot_max[s] : 1.0) : Rgb{70, 70, 70};
        r.fill(cx, cy + L.image_h + 2, L.image_w, L.question_strip - 2, c.r, c.g, c.b);
      }
    }
  }
  return r;
}

// The image scaled up by `scale` at (x, y), with a faint grid on the patch boundaries.
void draw_thumbnail(Raster& r, const DisplayImage& img, int x, int y, int scale, int patch) {
  for (int j = 0; j < img.h * scale; ++j)
    for (int i = 0; i < img.w * scale; ++i) {
      const int ix = i / scale, iy = j / scale;
      Rgb c = display_pixel(img, ix, iy);
      if ((ix % patch == 0 && i % scale == 0) || (iy % patch == 0 && j % scale == 0))
        c = {static_cast<uint8_t>(c.r / 2 + 40), static_cast<uint8_t>(c.g / 2 + 40),
             static_cast<uint8_t>(c.b / 2 + 60)};
      r.set(x + i, y + j, c.r, c.g, c.b);
    }
}

Raster render_reads(const Config& cfg, const Dataset& ds, const std::vector<int64_t>& idx,
                    const std::vector<float>& read, int layer) {
  const int64_t B = static_cast<int64_t>(idx.size()), T = cfg.tokens(), M = cfg.memory_slots;
  const int64_t qoff = cfg.question_dim > 0 ? 1 : 0, p = cfg.patch_size, gw = cfg.image_width / p;
  if (static_cast<int64_t>(read.size()) != B * T * M)
    throw Error("render_reads: read weights have " + std::to_string(read.size()) +
                " values, expected B·T·M = " + std::to_string(B * T * M));
  double vmin = 1, vmax = 0;
  for (float v : read) vmin = std::min<double>(vmin, v), vmax = std::max<double>(vmax, v);
  if (!(vmax > vmin)) vmin = 0, vmax = std::max(vmax, 1e-6);

  const int cw = static_cast<int>(std::max<int64_t>(6, std::min<int64_t>(20, 320 / M)));
  const int ch = static_cast<int>(std::max<int64_t>(3, std::min<int64_t>(12, 480 / T)));
  const int row_label_w = Raster::text_width("T999", kTextScale) + 4;
  const int hm_w = static_cast<int>(M) * cw;
  const int thumb_scale =
      std::max<int>(1, static_cast<int>(std::max(hm_w, 96) / std::max<int64_t>(1, cfg.image_width)));
  const int panel_w = std::max<int>(row_label_w + std::max<int>(hm_w, static_cast<int>(cfg.image_width) * thumb_scale),
                                    Raster::text_width("IMAGE 99999 " + std::string(12, 'x'), kTextScale)) +
                      3 * kPad;
  const int thumb_h = static_cast<int>(cfg.image_height) * thumb_scale;
  const int header = kPad + 4 * kLineH + 16;
  const int top = header + 2 * kLineH + thumb_h + 6 + kLineH;  // image labels, thumbnail, slot numbers
  const int W = std::max<int>(kPad + static_cast<int>(B) * panel_w + kPad,
                              2 * kPad + Raster::text_width(std::string(kHeaderChars, 'x'), kTextScale));
  const int Ht = top + static_cast<int>(T) * ch + kPad;
  Raster r(W, Ht, kBackground.r, kBackground.g, kBackground.b);
  int y = kPad;
  text(r, kPad, y,
       "LAYER " + std::to_string(layer) + " HOPFIELD READ WEIGHTS SOFTMAX_M(BETA U Y^T), AFTER THIS PASS'S WRITE");
  y += kLineH;
  text(r, kPad, y,
       "PER IMAGE: ROW = TOKEN " + std::string(qoff ? "(Q = QUESTION, THEN " : "(") + "PATCHES ROW-MAJOR, " +
           std::to_string(gw) + " A ROW), COLUMN = MEMORY SLOT.",
       kDimInk);
  y += kLineH;
  text(r, kPad, y, "ROWS SUM TO 1, UNIFORM = 1/M = " + fmt(1.0 / M) + ". COLOUR SCALE: LAYER MIN .. LAYER MAX",
       kDimInk);
  y += kLineH + 4;
  colour_bar(r, kPad, y, 240, viridis, fmt(vmin), fmt(vmax));

  for (int64_t b = 0; b < B; ++b) {
    const int px0 = kPad + static_cast<int>(b) * panel_w, hx = px0 + row_label_w;
    int yy = header;
    text(r, px0, yy, "IMAGE " + std::to_string(idx[b]) + " " + class_name(ds, idx[b]));
    yy += kLineH;
    // Thumbnail with a faint patch grid, so that row t can be found on the image.
    DisplayImage img = display_image(ds, idx[b]);
    const int ty = yy + kLineH;
    text(r, hx, yy, fmt(static_cast<double>(gw), "%.0f") + "x" + std::to_string(cfg.image_height / p) + " PATCHES",
         kDimInk);
    draw_thumbnail(r, img, hx, ty, thumb_scale, static_cast<int>(p));
    // Slot numbers (every column when there is room, else every 4th).
    const int slot_label_w = Raster::text_width(std::to_string(M - 1), kTextScale) + 2;
    int every = 1;
    while (every * cw < slot_label_w) every *= 2;
    const int sy = top - kLineH;
    for (int64_t s = 0; s < M; s += every) text(r, hx + static_cast<int>(s) * cw, sy, std::to_string(s), kDimInk);
    // Heatmap.
    const int label_every = std::max(1, (kLineH + ch - 1) / ch);
    for (int64_t t = 0; t < T; ++t) {
      const int ry = top + static_cast<int>(t) * ch;
      const bool next_to_q = qoff && t > 0 && t < label_every;  // would overlap the Q label
      if ((qoff && t == 0) || ((t - qoff) % label_every == 0 && !next_to_q))
        text(r, px0, ry, qoff && t == 0 ? "Q" : std::to_string(t - qoff), kDimInk);
      for (int64_t s = 0; s < M; ++s) {
        Rgb c = viridis((read[(b * T + t) * M + s] - vmin) / (vmax - vmin));
        r.fill(hx + static_cast<int>(s) * cw, ry, cw, ch, c.r, c.g, c.b);
      }
    }
  }
  return r;
}

namespace {
// The data and the --start/--count range against the model, before anything is computed.
void check_viz_inputs(const Config& c, const Dataset& ds, int64_t start, int64_t count) {
  if (ds.channels != c.channels || ds.height != c.image_height || ds.width != c.image_width)
    throw Error("the data's images are " + std::to_string(ds.channels) + "x" + std::to_string(ds.height) + "x" +
                std::to_string(ds.width) + " (CxHxW), the model expects " + std::to_string(c.channels) + "x" +
                std::to_string(c.image_height) + "x" + std::to_string(c.image_width));
  if (ds.question_dim != c.question_dim)
    throw Error("the data has questions of " + std::to_string(ds.question_dim) + ", the model expects " +
                std::to_string(c.question_dim));
  if (count < 1) throw Error("--count must be at least 1, not " + std::to_string(count));
  if (start < 0 || start >= ds.n)
    throw Error("--start " + std::to_string(start) + " is outside the data's " + std::to_string(ds.n) + " images");
}
}  // namespace

std::vector<std::string> write_viz(const AiT& model, const Dataset& ds, const std::string& dir, int64_t start,
                                   int64_t count) {
  const Config& c = model.config();
  check_viz_inputs(c, ds, start, count);
  count = std::min(count, ds.n - start);
  std::vector<int64_t> idx(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) idx[i] = start + i;

  ForwardResult f;
  {
    NoGradScope ng;
    Batch b = make_batch(ds, idx, model.device(), false, nullptr, &model);
    f = model.forward(b.images, b.questions, {}, /*write=*/true, /*training=*/false, 0);
  }
  // The pictures read the AiT's layouts (gates [H, M, B·T], reads [B, T, M]); Coordination's differ.
  if (c.arch != Arch::AiT || f.gates.empty() || f.gates.size() != f.read_weights.size())
    throw Error(
        "ait viz: the model has no bottleneck gates and Hopfield reads to draw (it needs arch=ait, "
        "hopfield_read=1 and memory_mode ema or reset; its config is " +
        c.to_json().dump() + ")");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create directory (" + ec.message() + ")");
  std::vector<std::string> files;
  std::string readme =
      "ait viz: one writing pass (write=true, training=false; the memory is not committed) over images " +
      std::to_string(start) + ".." + std::to_string(start + count - 1) + " as ONE batch of " + std::to_string(count) +
      ".\n"
      "Model: " +
      c.to_json().dump() +
      "\n\n"
      "NOTE: the bottleneck gate depends on the batch. The write squashes the tokens of every image in the\n"
      "batch into one set of B*T = " +
      std::to_string(count * c.tokens()) + " tokens and each memory slot keeps its top-k (k = " +
      std::to_string(std::min<int64_t>(c.bottleneck, count * c.tokens())) +
      ") of them, so the same image\n"
      "in another batch (other --start/--count) can get other gates. The read weights use the memory\n"
      "this pass wrote (gamma'), so they depend on the batch as well.\n\n"
      "Files:\n";
  for (size_t i = 0; i < f.gates.size(); ++i) {
    std::string g = (fs::path(dir) / ("layer" + std::to_string(i) + "_gates.png")).string();
    std::string rd = (fs::path(dir) / ("layer" + std::to_string(i) + "_read.png")).string();
    render_gates(c, ds, idx, f.gates[i].to_vector(), static_cast<int>(i)).save_png(g);
    render_reads(c, ds, idx, f.read_weights[i].to_vector(), static_cast<int>(i)).save_png(rd);
    files.push_back(g), files.push_back(rd);
    readme += "  layer" + std::to_string(i) + "_gates.png  layer " + std::to_string(i) + "'s bottleneck gate A\n";
    readme += "  layer" + std::to_string(i) + "_read.png   layer " + std::to_string(i) + "'s Hopfield read weights\n";
  }
  readme +=
      "\nlayer{i}_gates.png: one row per image (its dataset index and class on the left), one column per\n"
      "memory slot (S0..S" +
      std::to_string(c.memory_slots - 1) +
      "). Each cell is the input image (per-image min-max stretched to 0..255,\n"
      "upscaled nearest-neighbour) with the patches that slot selected painted in heat colours; the\n"
      "gate is summed over the " +
      std::to_string(c.memory_heads) +
      " write heads, a patch is painted when the sum is > 0, and its colour\n"
      "and opacity (0.3..1) grow with weight / (that slot's largest weight over the batch), dark red\n"
      "(small) to yellow (the slot's largest). Unselected patches are the image dimmed to 60%. The number\n"
      "under a cell is the share of that slot's gate (summed over heads / H) that falls on that image.\n"
      "Heads are summed, not drawn apart: each head keeps its own top-k, the picture shows their union." +
      std::string(c.question_dim > 0 ? "\nThe strip under each image is the question token (grey: not selected)."
                                     : "") +
      "\n\n"
      "layer{i}_read.png: per image, a T x M heatmap (rows: tokens" +
      std::string(c.question_dim > 0 ? ", Q = the question token, then" : ",") +
      " patches in\nrow-major order; columns: memory slots) of softmax_M(beta * U * Y^T), viridis from the layer's "
      "smallest\n"
      "to its largest weight (both printed on the colour bar); each row sums to 1 (uniform = 1/M). The thumbnail\n"
      "above shows the image with its patch grid.\n";
  std::string rp = (fs::path(dir) / "README.txt").string();
  write_file_atomic(rp, std::vector<uint8_t>(readme.begin(), readme.end()));
  files.push_back(rp);
  return files;
}

// ================================================================ training curves

namespace {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

}  // namespace

MetricsLog read_metrics(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);  // its errors name the file
  return parse_metrics(std::string(bytes.begin(), bytes.end()), path);
}

MetricsLog parse_metrics(const std::string& bytes, const std::string& path) {
  MetricsLog log;
  double last_step = 0;
  size_t start = 0;
  int64_t line_no = 0;
  while (start < bytes.size()) {
    size_t end = start;
    while (end < bytes.size() && bytes[end] != '\n') ++end;
    std::string line = trim(std::string(bytes.begin() + start, bytes.begin() + end));
    start = end + 1;
    ++line_no;
    if (line.empty()) continue;
    const std::string where = path + ":" + std::to_string(line_no);
    Json j;
    try {
      j = Json::parse(line, "line");
    } catch (const Error& e) {
      throw Error(where + ": not JSON (" + std::string(e.what()) + ")");
    }
    if (!j.is_object()) throw Error(where + ": expected a JSON object, got " + std::string(j.type_name()));
    const Json* kind = j.find("kind");
    if (!kind || !kind->is_string()) throw Error(where + ": no \"kind\" string");
    auto num = [&](const char* key) {
      const Json* v = j.find(key);
      if (!v) throw Error(where + ": " + kind->as_string() + " line has no \"" + key + "\"");
      if (!v->is_number()) throw Error(where + ": \"" + key + "\" is a " + v->type_name() + ", expected a number");
      return v->as_number();
    };
    if (kind->as_string() == "step") {
      MetricsStep s{num("step"), num("loss"), num("ce"), num("balance"), num("accuracy"), num("lr")};
      // A resumed run re-logs from the start of its epoch: the later lines win.
      while (!log.steps.empty() && log.steps.back().step >= s.step) log.steps.pop_back();
      while (!log.epochs.empty() && log.epochs.back().last_step >= s.step) log.epochs.pop_back();
      log.steps.push_back(s);
      last_step = s.step;
    } else if (kind->as_string() == "epoch") {
      MetricsEpoch e{num("epoch"), last_step, std::numeric_limits<double>::quiet_NaN()};
      if (j.has("val_accuracy")) e.val_accuracy = num("val_accuracy");
      if (j.has("seconds")) e.seconds = num("seconds");
      if (j.has("images_per_s")) e.images_per_s = num("images_per_s");
      log.epochs.push_back(e);
    }
  }
  if (log.steps.empty())
    throw Error(path + ": no \"kind\": \"step\" lines (" + std::to_string(line_no) + " lines read)");
  return log;
}

std::string render_curves_svg(const MetricsLog& log, const std::string& title) {
  const double W = 900, ph = 230, top = 50, gap = 75, left = 90, pw = W - left - 30;
  const double H = top + 3 * ph + 2 * gap + 55;
  double xlo = log.steps.front().step, xhi = log.steps.back().step;
  xlo = std::min(0.0, xlo);
  using plot::Series;
  Series loss{"loss (total)", "#1f5fbf", "series-loss", {}}, ce{"cross-entropy", "#e07b00", "series-ce", {}},
      bal{"balance", "#2a9d3a", "series-balance", {}},
      acc{"train accuracy (running)", "#1f5fbf", "series-accuracy", {}},
      val{"val accuracy (epoch end)", "#d62728", "series-val", {}, true},
      lr{"learning rate", "#7b3fbf", "series-lr", {}};
  for (auto& s : log.steps) {
    loss.pts.push_back({s.step, s.loss});
    ce.pts.push_back({s.step, s.ce});
    bal.pts.push_back({s.step, s.balance});
    acc.pts.push_back({s.step, s.accuracy});
    lr.pts.push_back({s.step, s.lr});
  }
  for (auto& e : log.epochs)
    if (std::isfinite(e.val_accuracy)) val.pts.push_back({e.last_step, e.val_accuracy});
  std::string svg = plot::svg_begin(W, H, title);
  plot::panel(svg, left, top, pw, ph, {"step", "loss", xlo, xhi, true}, {loss, ce, bal});
  plot::panel(svg, left, top + ph + gap, pw, ph, {"step", "accuracy", xlo, xhi, true, 0.0, 1.0}, {acc, val});
  plot::panel(svg, left, top + 2 * (ph + gap), pw, ph, {"step", "learning rate", xlo, xhi, true}, {lr});
  svg += plot::svg_end();
  return svg;
}

std::string write_curves(const std::string& run_dir, const std::string& out) {
  const std::string path = (fs::path(run_dir) / "metrics.jsonl").string();
  MetricsLog log = read_metrics(path);
  std::string dest = out.empty() ? (fs::path(run_dir) / "curves.svg").string() : out;
  char title[160];
  std::snprintf(title, sizeof title, "%s: %zu logged steps, %zu epochs", run_dir.c_str(), log.steps.size(),
                log.epochs.size());
  std::string svg = render_curves_svg(log, title);
  write_file_atomic(dest, std::vector<uint8_t>(svg.begin(), svg.end()));
  return dest;
}

}  // namespace ait

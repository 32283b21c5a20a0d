// `ait viz` / `ait plot`: the gate pictures highlight exactly the patches the gate selected
// (checked against ForwardResult::gates from an independent pass), the read pictures decode,
// the SVG has one polyline point per logged step, and malformed metrics name file and line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <set>

#include "apps/convert.h"
#include "apps/viz.h"
#include "core/rng.h"
#include "io/inflate.h"
#include "model/model.h"
#include "model/train.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;
namespace fs = std::filesystem;

namespace {

Config tiny_config(int64_t question_dim) {
  Config c;
  c.channels = 1, c.image_height = 12, c.image_width = 12, c.patch_size = 4, c.question_dim = question_dim;
  c.dim = 16, c.depth = 2, c.heads = 2, c.head_dim = 8, c.mlp_dim = 32, c.num_classes = 2;
  c.memory_slots = 3, c.memory_dim = 8, c.memory_heads = 2, c.bottleneck = 4, c.write_dropout = 0;
  c.validate();
  return c;
}

Dataset tiny_dataset(int64_t n, int64_t question_dim, uint64_t seed) {
  Dataset ds;
  ds.n = n, ds.channels = 1, ds.height = 12, ds.width = 12, ds.question_dim = question_dim;
  Rng rng(seed);
  for (int64_t i = 0; i < n * 144; ++i) ds.images.push_back(static_cast<uint8_t>(rng.below(256)));
  for (int64_t i = 0; i < n; ++i) ds.labels.push_back(static_cast<int32_t>(i % 2));
  for (int64_t i = 0; i < n * question_dim; ++i) ds.questions.push_back(rng.uniform(-1.0f, 1.0f));
  ds.classes = {"even", "odd"};
  ds.source = "viz test";
  compute_channel_stats(ds);
  return ds;
}

Image read_png(const std::string& path) { return decode_png(read_file(path), path); }

bool is_grey(const Image& im, int x, int y) {
  const uint8_t* p = &im.pixels[(static_cast<size_t>(y) * im.width + x) * im.channels];
  return p[0] == p[1] && p[1] == p[2];
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string step_line(int step, double loss, double acc, double lr, int epoch = 1) {
  return "{\"kind\":\"step\",\"epoch\":" + std::to_string(epoch) + ",\"step\":" + std::to_string(step) +
         ",\"loss\":" + std::to_string(loss) + ",\"ce\":" + std::to_string(loss * 0.9) +
         ",\"balance\":" + std::to_string(loss * 0.1) + ",\"accuracy\":" + std::to_string(acc) +
         ",\"lr\":" + std::to_string(lr) + "}\n";
}

// Every <polyline ... points="..."/>: its class and its number of points.
std::vector<std::pair<std::string, int>> polylines(const std::string& svg) {
  std::vector<std::pair<std::string, int>> out;
  std::regex re("<polyline class=\"([^\"]*)\"[^>]*points=\"([^\"]*)\"");
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it) {
    std::string pts = (*it)[2];
    int n = 0;
    for (char c : pts) n += c == ',';
    out.push_back({(*it)[1], n});
  }
  return out;
}

int count_of(const std::string& s, const std::string& what) {
  int n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST(VizTest, ColourMaps) {
  Rgb v0 = viridis(0), v1 = viridis(1);
  EXPECT_EQ(v0.r, 68);
  EXPECT_EQ(v0.g, 1);
  EXPECT_EQ(v0.b, 84);
  EXPECT_EQ(v1.r, 253);
  EXPECT_EQ(v1.g, 231);
  EXPECT_EQ(v1.b, 37);
  for (int i = 0; i <= 100; ++i) {
    Rgb h = heat(i / 100.0);
    EXPECT_GT(int(h.r) - int(h.b), 100) << i;  // never grey: the gate test relies on it
  }
  Rgb lo = viridis(-3), hi = viridis(7);  // clamped
  EXPECT_EQ(lo.r, v0.r);
  EXPECT_EQ(hi.b, v1.b);
}

namespace {

// Renders with write_viz, then checks every patch square of every cell against the gate of an
// independent writing pass over the same batch: coloured when any head's gate is > 0, grey else.
void check_gate_pictures(int64_t q) {
  const Config cfg = tiny_config(q);
  AiT model(cfg, cpu(), 11);
  Dataset ds = tiny_dataset(4, q, 3);
  const std::string dir = fresh_tmpdir("gates_q" + std::to_string(q)) + "/out";  // created by write_viz
  const int64_t start = 1, count = 2;
  std::vector<std::string> files = write_viz(model, ds, dir, start, count);
  ASSERT_EQ(files.size(), 2u * cfg.depth + 1);
  for (const std::string& f : files) EXPECT_TRUE(fs::exists(f)) << f;
  EXPECT_TRUE(fs::exists(dir + "/README.txt"));

  // The independent expectation: the same batch through the same writing pass.
  std::vector<int64_t> idx = {start, start + 1};
  ForwardResult f;
  {
    NoGradScope ng;
    Batch b = make_batch(ds, idx, cpu(), false, nullptr, &model);
    f = model.forward(b.images, b.questions, {}, true, false, 0);
  }
  ASSERT_EQ(f.gates.size(), static_cast<size_t>(cfg.depth));
  const int64_t T = cfg.tokens(), BT = count * T, M = cfg.memory_slots, H = cfg.memory_heads, p = cfg.patch_size;
  const int64_t gw = cfg.image_width / p, gh = cfg.image_height / p, qoff = q > 0 ? 1 : 0;
  GateGridLayout L = gate_grid_layout(cfg, count);
  for (int64_t layer = 0; layer < cfg.depth; ++layer) {
    Image im = read_png(dir + "/layer" + std::to_string(layer) + "_gates.png");
    ASSERT_EQ(im.width, L.width);
    ASSERT_EQ(im.height, L.height);
    ASSERT_EQ(im.channels, 3);
    std::vector<float> A = f.gates[layer].to_vector();  // [H, M, B·T]
    ASSERT_EQ(static_cast<int64_t>(A.size()), H * M * BT);
    int selected = 0, unselected = 0;
    for (int64_t b = 0; b < count; ++b)
      for (int64_t s = 0; s < M; ++s)
        for (int64_t py = 0; py < gh; ++py)
          for (int64_t px = 0; px < gw; ++px) {
            const int64_t tok = b * T + qoff + py * gw + px;
            bool on = false;
            for (int64_t h = 0; h < H; ++h) on |= A[(h * M + s) * BT + tok] > 0;
            (on ? selected : unselected)++;
            // Every pixel of the patch's square in the cell: coloured iff selected.
            const int side = static_cast<int>(p) * L.scale;
            const int x0 = L.cell_x(s) + static_cast<int>(px) * side, y0 = L.cell_y(b) + static_cast<int>(py) * side;
            int grey = 0;
            for (int y = y0; y < y0 + side; ++y)
              for (int x = x0; x < x0 + side; ++x) grey += is_grey(im, x, y);
            EXPECT_EQ(grey, on ? 0 : side * side)
                << "layer " << layer << " image " << b << " slot " << s << " patch (" << py << ", " << px << ")";
          }
    // bottleneck 4 of 18 (or 20) tokens per head: both kinds must occur, or the check is vacuous.
    EXPECT_GT(selected, 0);
    EXPECT_GT(unselected, 0);

    Image rd = read_png(dir + "/layer" + std::to_string(layer) + "_read.png");
    EXPECT_EQ(rd.channels, 3);
    EXPECT_GT(rd.width, static_cast<int>(count * M));
    EXPECT_GT(rd.height, static_cast<int>(T));
  }
}

}  // namespace

TEST(VizTest, GatePicturesHighlightExactlyTheSelectedPatches) { check_gate_pictures(0); }

// With a question token at index 0 the patches are tokens 1..T-1.
TEST(VizTest, GatePicturesWithQuestionToken) { check_gate_pictures(3); }

TEST(VizTest, VizRejectsDataThatDoesNotFit) {
  AiT model(tiny_config(0), cpu(), 1);
  Dataset ds = tiny_dataset(2, 0, 1);
  const std::string dir = fresh_tmpdir("bad");
  EXPECT_NE(error_of([&] { write_viz(model, ds, dir, 5, 1); }).find("--start 5"), std::string::npos);
  EXPECT_NE(error_of([&] { write_viz(model, ds, dir, 0, 0); }).find("--count"), std::string::npos);
  Dataset q = tiny_dataset(2, 3, 1);
  EXPECT_NE(error_of([&] { write_viz(model, q, dir, 0, 1); }).find("questions"), std::string::npos);
}

TEST(VizTest, PlotWritesOnePolylinePointPerStep) {
  const std::string dir = fresh_tmpdir("plot");
  std::string text;
  for (int s = 1; s <= 7; ++s) text += step_line(s * 10, 2.0 / s, 0.1 * s, 1e-3 * s / 7, s <= 4 ? 1 : 2);
  text.insert(text.find("{\"kind\":\"step\",\"epoch\":2"),
              "{\"kind\":\"epoch\",\"epoch\":1,\"loss\":1,\"accuracy\":0.4,\"val_ce\":1,\"val_accuracy\":0.5}\n\n");
  text += "{\"kind\":\"epoch\",\"epoch\":2,\"loss\":0.5,\"accuracy\":0.7,\"val_ce\":0.6,\"val_accuracy\":0.75}\n";
  write_text(dir + "/metrics.jsonl", text);
  std::string out = write_curves(dir);
  EXPECT_EQ(out, (fs::path(dir) / "curves.svg").string());
  std::vector<uint8_t> bytes = read_file(out);
  std::string svg(bytes.begin(), bytes.end());
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  auto lines = polylines(svg);
  ASSERT_EQ(lines.size(), 5u);  // loss, ce, balance, accuracy, lr
  std::set<std::string> classes;
  for (auto& [cls, n] : lines) {
    EXPECT_EQ(n, 7) << cls;
    classes.insert(cls);
  }
  EXPECT_EQ(classes,
            (std::set<std::string>{"series-loss", "series-ce", "series-balance", "series-accuracy", "series-lr"}));
  EXPECT_EQ(count_of(svg, "<circle class=\"series-val\""), 2);
  for (const char* label : {">loss<", ">accuracy<", ">learning rate<", ">step<", "val accuracy"})
    EXPECT_NE(svg.find(label), std::string::npos) << label;

  // The epoch markers sit at the epoch's last step.
  MetricsLog log = read_metrics(dir + "/metrics.jsonl");
  ASSERT_EQ(log.epochs.size(), 2u);
  EXPECT_EQ(log.epochs[0].last_step, 40);
  EXPECT_EQ(log.epochs[1].last_step, 70);

  // --out elsewhere.
  EXPECT_EQ(write_curves(dir, dir + "/other.svg"), dir + "/other.svg");
  EXPECT_TRUE(fs::exists(dir + "/other.svg"));
}

TEST(VizTest, PlotResumedRunKeepsTheLaterLines) {
  const std::string dir = fresh_tmpdir("resumed");
  std::string text;
  for (int s = 1; s <= 5; ++s) text += step_line(s, 1.0, 0.5, 1e-3);
  text += "{\"kind\":\"epoch\",\"epoch\":1,\"val_accuracy\":0.5}\n";
  for (int s = 3; s <= 6; ++s) text += step_line(s, 0.5, 0.6, 1e-3);  // re-logged after a resume
  write_text(dir + "/metrics.jsonl", text);
  MetricsLog log = read_metrics(dir + "/metrics.jsonl");
  ASSERT_EQ(log.steps.size(), 6u);
  for (size_t i = 0; i < log.steps.size(); ++i) EXPECT_EQ(log.steps[i].step, double(i + 1));
  EXPECT_EQ(log.steps[2].loss, 0.5);
  EXPECT_TRUE(log.epochs.empty());
  for (auto& [cls, n] : polylines(render_curves_svg(log, "t"))) EXPECT_EQ(n, 6) << cls;
}

TEST(VizTest, MalformedMetricsNameFileAndLine) {
  const std::string dir = fresh_tmpdir("malformed");
  const std::string path = dir + "/metrics.jsonl";
  auto err = [&](const std::string& text) {
    write_text(path, text);
    return error_of([&] { write_curves(dir); });
  };
  std::string e = error_of([&] { write_curves(dir + "/missing"); });
  EXPECT_NE(e.find(dir + "/missing/metrics.jsonl"), std::string::npos) << e;

  e = err(step_line(1, 1, 0.5, 1e-3) + step_line(2, 1, 0.5, 1e-3) + "{\"kind\": \"step\", oops\n");
  EXPECT_NE(e.find(path + ":3:"), std::string::npos) << e;
  EXPECT_NE(e.find("not JSON"), std::string::npos) << e;

  e = err(step_line(1, 1, 0.5, 1e-3) +
          "{\"kind\":\"step\",\"step\":2,\"loss\":1,\"ce\":1,\"balance\":0,\"accuracy\":0.5}\n");
  EXPECT_NE(e.find(path + ":2:"), std::string::npos) << e;
  EXPECT_NE(e.find("\"lr\""), std::string::npos) << e;

  e = err("\n[1, 2]\n");
  EXPECT_NE(e.find(path + ":2:"), std::string::npos) << e;

  e = err(step_line(1, 1, 0.5, 1e-3) +
          "{\"kind\":\"step\",\"step\":\"two\",\"loss\":1,\"ce\":1,\"balance\":0,\"accuracy\":0.5,\"lr\":1}\n");
  EXPECT_NE(e.find(path + ":2:"), std::string::npos) << e;

  e = err("{\"kind\":\"epoch\",\"epoch\":1,\"val_accuracy\":0.5}\n");
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("no \"kind\": \"step\" lines"), std::string::npos) << e;

  e = err("");
  EXPECT_NE(e.find("no \"kind\": \"step\" lines"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(dir + "/curves.svg"));
}

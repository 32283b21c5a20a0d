// Sort-of-CLEVR (see sort_of_clevr.h). This file is compiled with -ffp-contract=off: the band
// and angle rules are decided by double rounding exactly as the reference generator's are, so
// a fused multiply-add must not change a product-plus-sum.
#include "apps/sort_of_clevr.h"

#include <algorithm>
#include <cmath>

#include "apps/convert.h"
#include "core/rng.h"

namespace ait {

std::vector<std::string> clevr_answer_classes() {
  return {"yes", "no", "rectangle", "circle", "0", "1", "2", "3", "4", "5"};
}

namespace {

constexpr int kYes = 0, kNo = 1, kSquare = 2, kCircle = 3, kNumberBase = 4;

int shape_answer(const ClevrObject& o) { return o.square ? kSquare : kCircle; }
int yes_no(bool b) { return b ? kYes : kNo; }
int64_t squared_distance(const ClevrObject& u, const ClevrObject& v) {
  return int64_t(u.x - v.x) * (u.x - v.x) + int64_t(u.y - v.y) * (u.y - v.y);
}

// Nearest (999 in place of A's own zero distance) or farthest object, first in colour order.
int binary_answer(const ClevrScene& s, const ClevrQuestion& q) {
  const ClevrObject& a = s.objects[q.color];
  if (q.subtype == 2) {
    int same = -1;  // A itself is counted below
    for (const ClevrObject& o : s.objects) same += o.square == a.square;
    return kNumberBase + same;
  }
  int best = 0;
  int64_t best_d = 0;
  for (int k = 0; k < kClevrObjects; ++k) {
    const bool own_replaced = q.subtype == 0 && k == q.color;  // only "nearest" replaces A's own 0
    const int64_t d = own_replaced ? 999 : squared_distance(a, s.objects[k]);
    if (k == 0 || (q.subtype == 0 ? d < best_d : d > best_d)) best = k, best_d = d;
  }
  return shape_answer(s.objects[best]);
}

// The largest angle of triangle ABC in degrees, as their code computes it: law of cosines,
// acos, radians to degrees, then Python's max(alpha, beta, gamma) (a NaN is kept only first).
double largest_angle_degrees(const ClevrObject& A, const ClevrObject& B, const ClevrObject& C) {
  auto norm = [](const ClevrObject& u, const ClevrObject& v) { return std::sqrt(double(squared_distance(u, v))); };
  const double a = norm(B, C), b = norm(C, A), c = norm(A, B);
  const double a2 = std::pow(a, 2.0), b2 = std::pow(b, 2.0), c2 = std::pow(c, 2.0);
  const double to_degrees = 180.0 / M_PI;
  const double alpha = std::acos((b2 + c2 - a2) / (2 * b * c)) * to_degrees;
  const double beta = std::acos((a2 + c2 - b2) / (2 * a * c)) * to_degrees;
  const double gamma = std::acos((a2 + b2 - c2) / (2 * a * b)) * to_degrees;
  double largest = alpha;
  if (beta > largest) largest = beta;
  if (gamma > largest) largest = gamma;
  return largest;
}

int ternary_answer(const ClevrScene& s, const ClevrQuestion& q) {
  const ClevrObject &A = s.objects[q.color], &B = s.objects[q.color2];
  const double m = double(B.y - A.y) / (double(B.x - A.x) + 1e-10);
  const double intercept = double(A.y) - m * double(A.x);
  int count = 0;
  bool on_band = false;
  for (int k = 0; k < kClevrObjects; ++k) {
    if (k == q.color || k == q.color2) continue;
    const ClevrObject& o = s.objects[k];
    if (q.subtype == 0) {
      count += std::min(A.x, B.x) <= o.x && o.x <= std::max(A.x, B.x) && std::min(A.y, B.y) <= o.y &&
               o.y <= std::max(A.y, B.y);
    } else if (q.subtype == 1) {
      const double line_y = m * double(o.x) + intercept;
      on_band |= line_y - 12 <= double(o.y) && double(o.y) <= line_y + 12;
    } else {
      const double angle = largest_angle_degrees(A, B, o);
      count += angle >= 90 && angle < 180;
    }
  }
  return q.subtype == 1 ? yes_no(on_band) : kNumberBase + count;
}

}  // namespace

int clevr_answer(const ClevrScene& s, const ClevrQuestion& q) {
  const ClevrObject& a = s.objects[q.color];
  if (q.type == 0) {
    if (q.subtype == 0) return shape_answer(a);
    return yes_no((q.subtype == 1 ? a.x : a.y) < kClevrSize / 2.0);
  }
  return q.type == 1 ? binary_answer(s, q) : ternary_answer(s, q);
}

int clevr_circle_half_width(int dy) {
  // OpenCV's filled circle: a midpoint walk of one octant, each step (dx, dy) filling rows
  // +-dy with half-width dx and rows +-dx with half-width dy.
  static const std::vector<int> widths = [] {
    std::vector<int> w(kClevrHalfSize + 1, -1);
    int err = 0, dx = kClevrHalfSize, step = 0, plus = 1, minus = 2 * kClevrHalfSize - 1;
    while (dx >= step) {
      w[size_t(step)] = std::max(w[size_t(step)], dx);
      w[size_t(dx)] = std::max(w[size_t(dx)], step);
      ++step;
      err += plus;
      plus += 2;
      if (err > 0) err -= minus, minus -= 2, --dx;
    }
    return w;
  }();
  return std::abs(dy) > kClevrHalfSize ? -1 : widths[size_t(std::abs(dy))];
}

bool clevr_extents_apart(const ClevrObject& a, const ClevrObject& b) {
  const int gap = 2 * kClevrHalfSize + 2;  // 11 px boxes plus one clear pixel
  return std::abs(a.x - b.x) >= gap || std::abs(a.y - b.y) >= gap;
}

const uint8_t* clevr_colour(int k) {
  static const uint8_t rgb[kClevrObjects][3] = {{255, 0, 0},   {0, 255, 0},     {0, 0, 255},
                                                {255, 156, 0}, {128, 128, 128}, {255, 255, 0}};
  return rgb[k];
}

void draw_clevr_scene(const ClevrScene& sc, uint8_t* pic) {
  const int S = kClevrSize, r = kClevrHalfSize;
  std::fill(pic, pic + 3 * S * S, uint8_t(255));
  for (int k = 0; k < kClevrObjects; ++k) {
    const ClevrObject& o = sc.objects[k];
    for (int dy = -r; dy <= r; ++dy) {
      const int w = o.square ? r : clevr_circle_half_width(dy);
      for (int x = o.x - w; x <= o.x + w; ++x)
        for (int c = 0; c < 3; ++c) pic[c * S * S + (o.y + dy) * S + x] = clevr_colour(k)[c];
    }
  }
}

namespace {

// Centres uniform in [5, 69]^2, redrawn until at least 10 px from every earlier centre (and,
// with no_overlap, clear of every earlier object); then the shape. Five objects rule out at
// most 5 * 23 * 23 of the 65 * 65 centres, so a free centre always exists.
void place_objects(Rng& rng, bool no_overlap, ClevrScene& sc) {
  const int span = kClevrSize - 2 * kClevrHalfSize;
  for (int k = 0; k < kClevrObjects; ++k) {
    ClevrObject o;
    for (bool free = false; !free;) {
      o.x = kClevrHalfSize + int(rng.below(uint64_t(span)));
      o.y = kClevrHalfSize + int(rng.below(uint64_t(span)));
      free = true;
      for (int j = 0; j < k; ++j)
        free &= squared_distance(o, sc.objects[j]) >= 100 && (!no_overlap || clevr_extents_apart(o, sc.objects[j]));
    }
    o.square = rng.below(2) == 0;
    sc.objects[k] = o;
  }
}

ClevrQuestion draw_question(Rng& rng, int type, const ClevrScene& sc) {
  ClevrQuestion q;
  q.type = type;
  if (type == 2) {  // an ordered pair of distinct colours among the first five
    q.color = int(rng.below(kClevrObjects - 1));
    q.color2 = int(rng.below(kClevrObjects - 2));
    if (q.color2 >= q.color) ++q.color2;
  } else {
    q.color = int(rng.below(kClevrObjects));
  }
  q.subtype = int(rng.below(3));
  q.answer = clevr_answer(sc, q);
  return q;
}

void encode_question(const ClevrQuestion& q, float* v) {
  v[q.color] = 1.f;
  if (q.color2 >= 0) v[kClevrObjects + q.color2] = 1.f;
  v[12 + q.type] = 1.f;
  v[15 + q.subtype] = 1.f;
}

std::vector<int> clevr_question_types(const std::string& questions) {
  if (questions == "all") return {0, 1, 2};
  if (questions == "nonrel") return {0};
  if (questions == "binary") return {1};
  if (questions == "ternary") return {2};
  throw Error("sort-of-clevr: --questions must be all, nonrel, binary or ternary, not '" + questions + "'");
}

}  // namespace

Dataset make_sort_of_clevr(int64_t n_images, uint64_t seed, uint64_t stream, const ClevrOptions& opt,
                           std::vector<ClevrScene>* scenes) {
  const std::vector<int> types = clevr_question_types(opt.questions);
  if (n_images <= 0 || n_images > INT32_MAX) throw Error("sort-of-clevr: the number of images must be in [1, 2^31)");
  const int S = kClevrSize, per_image = kClevrQuestionsPerType * int(types.size());
  const size_t img = size_t(3 * S * S);
  Rng rng(generator_stream_seed(seed, stream + 1000));
  Dataset ds;
  ds.n = n_images * per_image;
  ds.channels = 3, ds.height = ds.width = S, ds.question_dim = kClevrQuestionDim;
  ds.classes = clevr_answer_classes();
  ds.images.resize(size_t(n_images) * img);
  ds.labels.reserve(size_t(ds.n));
  ds.image_index.reserve(size_t(ds.n));
  ds.questions.assign(size_t(ds.n) * kClevrQuestionDim, 0.f);
  ds.source = "ait-convert sort-of-clevr seed " + std::to_string(seed) + " stream " + std::to_string(stream) +
              " questions " + opt.questions + (opt.no_overlap ? " no-overlap" : "");
  if (scenes) scenes->clear();
  size_t row = 0;
  for (int64_t i = 0; i < n_images; ++i) {
    ClevrScene sc;
    place_objects(rng, opt.no_overlap, sc);
    draw_clevr_scene(sc, ds.images.data() + size_t(i) * img);
    for (int t : types)
      for (int j = 0; j < kClevrQuestionsPerType; ++j, ++row) {
        const ClevrQuestion q = draw_question(rng, t, sc);
        encode_question(q, ds.questions.data() + row * kClevrQuestionDim);
        ds.labels.push_back(q.answer);
        ds.image_index.push_back(int32_t(i));
        sc.questions.push_back(q);
      }
    if (scenes) scenes->push_back(std::move(sc));
  }
  compute_channel_stats(ds);
  return ds;
}

}  // namespace ait

// Sort-of-CLEVR: every answer recomputed by a separate, literal transcription of the reference
// generator's rules (Goyal et al.'s sort_of_clevr_generator.py) from the scene's object list,
// the drawn pixels checked against the objects, and --no-overlap scenes checked from the pixels.
// Compiled with -ffp-contract=off (CMakeLists.txt), as the generator is: the band and angle
// rules are decided by double rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "apps/convert.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;

namespace {

// The reference code's object tuple: (colour id, centre (x, y), 'r' or 'c').
struct RefObject {
  int color;
  double cx, cy;
  char shape;
};

std::vector<RefObject> ref_objects(const ClevrScene& s) {
  std::vector<RefObject> v;
  for (int k = 0; k < 6; ++k)
    v.push_back({k, double(s.objects[k].x), double(s.objects[k].y), s.objects[k].square ? 'r' : 'c'});
  return v;
}

// Python's max(a, b, c): keeps the running value unless a later one compares greater.
double python_max3(double a, double b, double c) {
  double m = a;
  for (double v : {b, c})
    if (v > m) m = v;
  return m;
}

// The answer index their code computes (answers: yes, no, rectangle, circle, then 4 + n).
int reference_answer(const std::vector<RefObject>& objects, const ClevrQuestion& q) {
  const RefObject& me = objects[size_t(q.color)];
  if (q.type == 0) {
    if (q.subtype == 0) return me.shape == 'r' ? 2 : 3;
    if (q.subtype == 1) return me.cx < 75 / 2.0 ? 0 : 1;
    return me.cy < 75 / 2.0 ? 0 : 1;
  }
  if (q.type == 1) {
    if (q.subtype == 2) {
      int count = -1;
      for (const RefObject& o : objects) count += o.shape == me.shape;
      return count + 4;
    }
    std::vector<double> dist;
    for (const RefObject& o : objects)
      dist.push_back((me.cx - o.cx) * (me.cx - o.cx) + (me.cy - o.cy) * (me.cy - o.cy));
    if (q.subtype == 0) *std::find(dist.begin(), dist.end(), 0.0) = 999;
    const auto pick =
        q.subtype == 0 ? std::min_element(dist.begin(), dist.end()) : std::max_element(dist.begin(), dist.end());
    return objects[size_t(pick - dist.begin())].shape == 'r' ? 2 : 3;
  }
  const RefObject &A = objects[size_t(q.color)], &B = objects[size_t(q.color2)];
  int count = 0, answer = 1;
  for (const RefObject& o : objects) {
    if (o.color == q.color || o.color == q.color2) continue;
    if (q.subtype == 0) {
      const double x = o.cx, y = o.cy;
      if ((A.cx <= x && x <= B.cx && A.cy <= y && y <= B.cy) || (A.cx <= x && x <= B.cx && B.cy <= y && y <= A.cy) ||
          (B.cx <= x && x <= A.cx && B.cy <= y && y <= A.cy) || (B.cx <= x && x <= A.cx && A.cy <= y && y <= B.cy))
        ++count;
    } else if (q.subtype == 1) {
      const double m = (B.cy - A.cy) / ((B.cx - A.cx) + 1e-10), c = A.cy - (m * A.cx);
      const double y = (m * o.cx) + c;
      if (y - 12 <= o.cy && o.cy <= y + 12) answer = 0;
    } else {
      const double a = std::sqrt((B.cx - o.cx) * (B.cx - o.cx) + (B.cy - o.cy) * (B.cy - o.cy));
      const double b = std::sqrt((o.cx - A.cx) * (o.cx - A.cx) + (o.cy - A.cy) * (o.cy - A.cy));
      const double c = std::sqrt((A.cx - B.cx) * (A.cx - B.cx) + (A.cy - B.cy) * (A.cy - B.cy));
      const double deg = 180.0 / M_PI;
      const double alpha = std::acos((std::pow(b, 2.0) + std::pow(c, 2.0) - std::pow(a, 2.0)) / (2 * b * c)) * deg;
      const double beta = std::acos((std::pow(a, 2.0) + std::pow(c, 2.0) - std::pow(b, 2.0)) / (2 * a * c)) * deg;
      const double gamma = std::acos((std::pow(a, 2.0) + std::pow(b, 2.0) - std::pow(c, 2.0)) / (2 * a * b)) * deg;
      const double largest = python_max3(alpha, beta, gamma);
      if (largest >= 90 && largest < 180) ++count;
    }
  }
  return q.subtype == 1 ? answer : count + 4;
}

// cv2.circle(img, c, 5, colour, -1) fills, per row offset |dy| = 0..5, columns c.x - w .. c.x + w
// with these w (worked through OpenCV's midpoint fill by hand); cv2.rectangle(c - 5, c + 5) fills
// the 11x11 box.
const int kCircleRows[6] = {5, 4, 4, 4, 3, 0};
bool covers(const ClevrObject& o, int x, int y) {
  const int dx = std::abs(x - o.x), dy = std::abs(y - o.y);
  if (dx > 5 || dy > 5) return false;
  return o.square || dx <= kCircleRows[dy];
}

const uint8_t kRgb[6][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 156, 0}, {128, 128, 128}, {255, 255, 0}};

// The colour index at (x, y), 6 for white, -1 for anything else.
int colour_at(const uint8_t* pic, int x, int y) {
  uint8_t v[3];
  for (int c = 0; c < 3; ++c) v[c] = pic[c * 5625 + y * 75 + x];
  if (v[0] == 255 && v[1] == 255 && v[2] == 255) return 6;
  for (int k = 0; k < 6; ++k)
    if (std::memcmp(v, kRgb[k], 3) == 0) return k;
  return -1;
}

// Every pixel shows the last-drawn object covering it, or white.
void expect_pixels_match_objects(const ClevrScene& s, const uint8_t* pic) {
  for (int y = 0; y < 75; ++y)
    for (int x = 0; x < 75; ++x) {
      int want = 6;
      for (int k = 0; k < 6; ++k)
        if (covers(s.objects[k], x, y)) want = k;
      ASSERT_EQ(colour_at(pic, x, y), want) << "pixel (" << x << ", " << y << ")";
    }
}

// From the pixels alone: each object shows all its 121 (square) or 81 (circle) pixels, and no
// two differently coloured object pixels are 8-neighbours.
bool clean_from_pixels(const ClevrScene& s, const uint8_t* pic) {
  int count[7] = {};
  for (int y = 0; y < 75; ++y)
    for (int x = 0; x < 75; ++x) {
      const int k = colour_at(pic, x, y);
      ++count[k];
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) {
          const int nx = x + dx, ny = y + dy;
          if (nx < 0 || ny < 0 || nx >= 75 || ny >= 75 || k == 6) continue;
          const int j = colour_at(pic, nx, ny);
          if (j != 6 && j != k) return false;
        }
    }
  for (int k = 0; k < 6; ++k)
    if (count[k] != (s.objects[k].square ? 121 : 81)) return false;
  return true;
}

}  // namespace

TEST(ClevrTest, CircleIsOpenCvsFilledRadiusFive) {
  int pixels = 0;
  for (int dy = -5; dy <= 5; ++dy) {
    EXPECT_EQ(clevr_circle_half_width(dy), kCircleRows[std::abs(dy)]) << dy;
    pixels += 2 * kCircleRows[std::abs(dy)] + 1;
  }
  EXPECT_EQ(pixels, 81);
  EXPECT_EQ(clevr_circle_half_width(6), -1);
  EXPECT_EQ(clevr_circle_half_width(-6), -1);
  // The filled set is symmetric under swapping x and y, as the octant walk makes it.
  for (int dy = -5; dy <= 5; ++dy)
    for (int dx = -5; dx <= 5; ++dx)
      EXPECT_EQ(std::abs(dx) <= kCircleRows[std::abs(dy)], std::abs(dy) <= kCircleRows[std::abs(dx)]);
}

TEST(ClevrTest, AnswersFollowTheReferenceRules) {
  for (bool no_overlap : {false, true}) {
    ClevrOptions opt;
    opt.no_overlap = no_overlap;
    std::vector<ClevrScene> scenes;
    const int n = 127;
    Dataset ds = make_sort_of_clevr(n, 11, 0, opt, &scenes);
    ASSERT_EQ(ds.n, n * 30);
    ASSERT_EQ(ds.image_count(), n);
    int seen[3][3][10] = {}, scenes_overlapping = 0;
    for (int i = 0; i < n; ++i) {
      const ClevrScene& s = scenes[size_t(i)];
      const std::vector<RefObject> objects = ref_objects(s);
      const uint8_t* pic = ds.row_image(i * 30);
      expect_pixels_match_objects(s, pic);
      const bool clean = clean_from_pixels(s, pic);
      if (no_overlap) {
        EXPECT_TRUE(clean) << "scene " << i;
      }
      scenes_overlapping += !clean;
      for (int k = 0; k < 6; ++k) {
        EXPECT_TRUE(s.objects[k].x >= 5 && s.objects[k].x <= 69 && s.objects[k].y >= 5 && s.objects[k].y <= 69);
        for (int j = 0; j < k; ++j) {
          const int dx = s.objects[k].x - s.objects[j].x, dy = s.objects[k].y - s.objects[j].y;
          EXPECT_GE(dx * dx + dy * dy, 100);
        }
      }
      for (int r = 0; r < 30; ++r) {
        const ClevrQuestion& q = s.questions[size_t(r)];
        const size_t row = size_t(i * 30 + r);
        EXPECT_EQ(q.type, r / 10);
        EXPECT_EQ(ds.image_index[row], i);
        EXPECT_EQ(ds.labels[row], reference_answer(objects, q)) << "scene " << i << " question " << r;
        ++seen[q.type][q.subtype][ds.labels[row]];
        std::vector<float> want(18, 0.f);
        want[size_t(q.color)] = 1;
        if (q.type == 2) {
          EXPECT_TRUE(q.color < 5 && q.color2 < 5 && q.color != q.color2);
          want[size_t(6 + q.color2)] = 1;
        }
        want[size_t(12 + q.type)] = 1, want[size_t(15 + q.subtype)] = 1;
        EXPECT_EQ(std::vector<float>(ds.questions.begin() + std::ptrdiff_t(row * 18),
                                     ds.questions.begin() + std::ptrdiff_t(row * 18 + 18)),
                  want);
      }
    }
    // Both answers of every yes/no and shape subtype, several numbers of every count subtype.
    for (int t = 0; t < 3; ++t)
      for (int st = 0; st < 3; ++st) {
        int distinct = 0;
        for (int a = 0; a < 10; ++a) distinct += seen[t][st][a] > 0;
        EXPECT_GE(distinct, 2) << "type " << t << " subtype " << st;
      }
    if (!no_overlap) {
      EXPECT_GT(scenes_overlapping, 0);  // the pixel check does see overlaps
    }
  }
}

TEST(ClevrTest, HandMadeSceneShowsTheReferenceQuirks) {
  ClevrScene s;
  // red square in the corner; every other object more than sqrt(999) px from it
  s.objects[0] = {5, 5, true};
  s.objects[1] = {40, 40, false};
  s.objects[2] = {69, 69, false};
  s.objects[3] = {69, 5, false};
  s.objects[4] = {5, 69, false};
  s.objects[5] = {40, 10, false};
  auto ask = [&](int type, int subtype, int color, int color2 = -1) {
    ClevrQuestion q;
    q.type = type, q.subtype = subtype, q.color = color, q.color2 = color2;
    return clevr_answer(s, q);
  };
  EXPECT_EQ(ask(1, 0, 0), 2);     // "nearest to red" is red itself (999 < 1250): rectangle
  EXPECT_EQ(ask(1, 0, 1), 3);     // nearest to green is yellow (d^2 = 900): circle
  EXPECT_EQ(ask(1, 1, 0), 3);     // farthest from red is blue: circle
  EXPECT_EQ(ask(1, 2, 0), 4);     // no other square: n = 0
  EXPECT_EQ(ask(1, 2, 1), 8);     // four other circles
  EXPECT_EQ(ask(0, 1, 5), 1);     // yellow at x = 40 is not on the left
  EXPECT_EQ(ask(0, 2, 5), 0);     // yellow at y = 10 is on the top
  EXPECT_EQ(ask(2, 0, 0, 1), 5);  // yellow on the edge x = 40 of red-green's box counts
  EXPECT_EQ(ask(2, 1, 0, 1), 0);  // blue lies on the line y = x beyond green: on the band
  EXPECT_EQ(ask(2, 1, 3, 4), 0);  // orange-grey line y = 74 - x: green (40, 40) is 6 px off
  EXPECT_EQ(ask(2, 1, 0, 3), 0);  // red-orange line y = 5: yellow (40, 10) is 5 px off
  // Red-grey is vertical (x = 5): the slope is 64 / 1e-10, so only an object at x = 5 can be near
  // the line, and then only within 12 px of red's height, not anywhere along the segment.
  s.objects[5] = {5, 37, false};
  EXPECT_EQ(ask(2, 1, 0, 4), 1);
  s.objects[5] = {5, 16, false};
  EXPECT_EQ(ask(2, 1, 0, 4), 0);
}

TEST(ClevrTest, QuestionSubsetsAndDeterminism) {
  ClevrOptions ternary;
  ternary.questions = "ternary";
  Dataset a = make_sort_of_clevr(3, 1, 0, ternary), b = make_sort_of_clevr(3, 1, 0, ternary);
  EXPECT_EQ(a.n, 30);
  EXPECT_EQ(a.image_count(), 3);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(a.questions, b.questions);
  for (int64_t r = 0; r < a.n; ++r) EXPECT_EQ(a.questions[size_t(r * 18 + 14)], 1.f);
  EXPECT_NE(make_sort_of_clevr(3, 2, 0, ternary).images, a.images);
  EXPECT_NE(make_sort_of_clevr(3, 1, 1, ternary).images, a.images);
  ClevrOptions nonrel;
  nonrel.questions = "nonrel";
  EXPECT_EQ(make_sort_of_clevr(1, 1, 0, nonrel).n, 10);
  ClevrOptions bogus;
  bogus.questions = "bogus";
  EXPECT_NE(error_of([&] { make_sort_of_clevr(1, 1, 0, bogus); }), "(no error)");
  validate_dataset(a, "clevr");
}

// Sort-of-CLEVR as the Coordination (Goyal et al.) and AiT papers used it: their generator's
// scenes, questions and answers, rule for rule, with this project's seeded RNG (so the images
// are not bit-equal to theirs, the rules are). docs/sort-of-clevr.md tabulates every rule.
//
// Scene: 75x75 RGB on white, 6 objects, one per colour (red, green, blue, orange, grey,
// yellow; index = colour), drawn in colour order (a later object covers an earlier one).
// Centre (x, y): x the column, y the row (row 0 at the top), each uniform in [5, 69]; a centre
// is redrawn while its squared distance to an earlier centre is below 100. Shape: square or
// circle, each with probability 1/2. A square covers columns x-5..x+5 and rows y-5..y+5 (11x11);
// a circle is OpenCV's filled radius-5 circle (81 pixels; clevr_circle_half_width).
// With `no_overlap` a centre is also redrawn while the 11x11 boxes of two objects are closer
// than one clear pixel row or column (clevr_extents_apart): nothing overlaps or touches.
//
// Question vector (18 floats): [0:6] colour one-hot (object A), [6:12] second colour one-hot
// (object B, ternary only), [12:15] type one-hot (non-relational, binary, ternary), [15:18]
// subtype one-hot. Answer classes: 0 yes, 1 no, 2 rectangle (square), 3 circle, 4..9 the
// numbers 0..5 (class 4 + n means "n"). Per image, 10 questions of each selected type; the
// colour and subtype uniform, ternary colours A != B uniform over the first five colours
// (yellow is never A or B). Rules (clevr_answer), "others" = the objects other than A (and B):
//   non-relational: 0 shape of A; 1 "is A on the left": yes when x < 37.5; 2 "is A on the
//     top": yes when y < 37.5.
//   binary: 0 shape of the object nearest A: squared centre distances to all six objects with
//     A's own replaced by 999, first minimum in colour order (so A itself when every other
//     object is at least sqrt(999) px away); 1 shape of the farthest object (first maximum);
//     2 how many others have A's shape: 4 + n.
//   ternary (A, B): 0 how many others have a centre in the closed axis-aligned box spanned by
//     A's and B's centres: 4 + n; 1 "is an other on the band": m = (By - Ay) / (Bx - Ax + 1e-10),
//     yes when some other's y is within 12 (inclusive) of m * x + (Ay - m * Ax) (vertical
//     distance to the line through A and B, not to the segment); 2 how many others C make a
//     triangle ABC whose largest angle, from the law of cosines in degrees, is >= 90 and < 180:
//     4 + n. The angles are computed as their code does, in double precision (acos of the
//     cosine, a NaN angle never counting as the largest unless it comes first), so right and
//     straight angles between integer centres are decided by the same rounding.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/dataset.h"

namespace ait {

constexpr int kClevrSize = 75, kClevrObjects = 6, kClevrQuestionDim = 18, kClevrHalfSize = 5;
constexpr int kClevrQuestionsPerType = 10;

struct ClevrObject {
  int x = 0, y = 0;  // centre: x the column, y the row
  bool square = false;
};
struct ClevrQuestion {
  int type = 0, subtype = 0, color = 0, color2 = -1, answer = 0;
};
struct ClevrScene {
  ClevrObject objects[kClevrObjects];  // index = colour
  std::vector<ClevrQuestion> questions;
};

struct ClevrOptions {
  std::string questions = "all";  // "all", "nonrel", "binary" or "ternary"
  bool no_overlap = false;        // objects' drawn extents never overlap or touch
};

std::vector<std::string> clevr_answer_classes();
int clevr_answer(const ClevrScene& scene, const ClevrQuestion& q);
// Half-width of the drawn circle's pixel row at vertical offset dy from the centre (the row
// covers x - w .. x + w), or -1 when |dy| > 5: OpenCV's midpoint fill of radius 5.
int clevr_circle_half_width(int dy);
// True when the 11x11 boxes of a and b leave at least one clear pixel column or row between them.
bool clevr_extents_apart(const ClevrObject& a, const ClevrObject& b);
// The scene as CHW RGB pixels [3, 75, 75] on white, objects drawn in colour order.
void draw_clevr_scene(const ClevrScene& scene, uint8_t* pixels);
const uint8_t* clevr_colour(int k);  // RGB of colour k

// n_images scenes, each image stored once with one row per question (image_index).
Dataset make_sort_of_clevr(int64_t n_images, uint64_t seed, uint64_t stream, const ClevrOptions& options,
                           std::vector<ClevrScene>* scenes = nullptr);

}  // namespace ait

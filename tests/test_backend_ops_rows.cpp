// Row-wise cases of the backend kernel tests (see test_backend_ops.cpp): layernorm, softmax,
// topk_gate, cross_entropy and l2_normalize, each with its backward.
#include "backend_ops.h"

namespace ait::backend_ops {
namespace {

std::vector<std::pair<int64_t, int64_t>> row_shapes() {
  std::vector<std::pair<int64_t, int64_t>> shapes;
  for (int64_t rows : kSizes)
    for (int64_t cols : kSizes) shapes.push_back({rows, cols});
  return shapes;
}

struct RowStats {
  std::vector<double> mean, rstd, mean_mag;  // mean_mag: the mean of |x| per row
};
RowStats layernorm_stats(const std::vector<float>& x, int64_t rows, int64_t cols, double eps) {
  RowStats s;
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0, mag = 0, var = 0;
    for (int64_t c = 0; c < cols; ++c) sum += x[r * cols + c], mag += std::fabs(x[r * cols + c]);
    const double mean = sum / cols;
    for (int64_t c = 0; c < cols; ++c) var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean) / cols;
    s.mean.push_back(mean);
    s.rstd.push_back(1.0 / std::sqrt(var + eps));
    s.mean_mag.push_back(mag / cols);
  }
  return s;
}

// y = (x − mean)·rstd·w + b, rstd = 1/√(var + eps), var the biased variance. Backward (from the
// statistics as floats, so it is checked on its own): x̂ = (x − mean)·rstd, g = dy·w,
// dx = rstd·(g − mean(g) − x̂·mean(g·x̂)); dw += Σ_rows dy·x̂, db += Σ_rows dy.
// Floors: the mean's is ‖mean |x|‖ (it cancels); dx's is ‖rstd·(|g| + |mean g| + |x̂ mean(g x̂)|)‖;
// dw's and db's the sums of |terms|. Row sums of up to 3000 float terms (√n·u ≈ 3e-6) and
// rstd amplifying the centred values' rounding: tolerance 1e-5. A constant row gives exactly
// the bias (its mean is exact, its variance exactly 0, however large rstd = 1/√eps is).
void run_layernorm_case(Bench& b, int64_t rows, int64_t cols, bool constant_rows, uint64_t seed) {
  SCOPED_TRACE(dims({rows, cols}) + (constant_rows ? " constant rows" : ""));
  const float eps = 1e-5f;
  std::vector<float> x = randn(rows * cols, 500 + seed, 2.0f), w = randn(cols, 501 + seed);
  std::vector<float> bias = randn(cols, 502 + seed);
  if (constant_rows)
    for (int64_t r = 0; r < rows; ++r) std::fill_n(x.begin() + r * cols, cols, 0.1f * float(r) - 0.4242f);
  std::vector<float> dy = randn(rows * cols, 503 + seed), dw0 = randn(cols, 504 + seed), db0 = randn(cols, 505 + seed);
  Bench::Buf bx = b.input(x), bw = b.input(w), bb = b.input(bias), y = b.output(rows * cols);
  Bench::Buf mean = b.output(rows), rstd = b.output(rows);
  b.k().layernorm(*bx, *bw, *bb, *y, *mean, *rstd, rows, cols, eps);
  RowStats s = layernorm_stats(x, rows, cols, eps);
  std::vector<double> want_y(rows * cols);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c)
      want_y[r * cols + c] = (x[r * cols + c] - s.mean[r]) * s.rstd[r] * w[c] + bias[c];
  std::vector<float> got_y = b.read(y, "layernorm y");
  if (constant_rows) b.expect_exact("y (constant rows)", got_y, to_float(want_y));
  else b.expect_rel("y", got_y, want_y, 1e-5);
  b.expect_rel("mean", b.read(mean, "layernorm mean"), s.mean, 1e-5, norm2(s.mean_mag));
  b.expect_rel("rstd", b.read(rstd, "layernorm rstd"), s.rstd, 1e-5);
  if (constant_rows) return;

  const std::vector<float> mean_f = to_float(s.mean), rstd_f = to_float(s.rstd);
  Bench::Buf bm = b.input(mean_f), br = b.input(rstd_f), bdy = b.input(dy), dx = b.output(rows * cols);
  Bench::Buf dw = b.input(dw0), db = b.input(db0);
  b.k().layernorm_backward(*bx, *bw, *bm, *br, *bdy, *dx, *dw, *db, rows, cols);
  std::vector<double> want_dx(rows * cols), dx_mag(rows * cols), want_dw = to_double(dw0), want_db = to_double(db0);
  std::vector<double> dw_mag(cols), db_mag(cols);
  for (int64_t r = 0; r < rows; ++r) {
    double mean_g = 0, mean_gx = 0;
    auto xhat = [&](int64_t c) { return (double(x[r * cols + c]) - mean_f[r]) * rstd_f[r]; };
    for (int64_t c = 0; c < cols; ++c) {
      mean_g += double(dy[r * cols + c]) * w[c] / cols;
      mean_gx += double(dy[r * cols + c]) * w[c] * xhat(c) / cols;
    }
    for (int64_t c = 0; c < cols; ++c) {
      const double g = double(dy[r * cols + c]) * w[c];
      want_dx[r * cols + c] = rstd_f[r] * (g - mean_g - xhat(c) * mean_gx);
      dx_mag[r * cols + c] = rstd_f[r] * (std::fabs(g) + std::fabs(mean_g) + std::fabs(xhat(c) * mean_gx));
      want_dw[c] += dy[r * cols + c] * xhat(c);
      want_db[c] += dy[r * cols + c];
      dw_mag[c] += std::fabs(dy[r * cols + c] * xhat(c));
      db_mag[c] += std::fabs(dy[r * cols + c]);
    }
  }
  for (int64_t c = 0; c < cols; ++c) dw_mag[c] += std::fabs(dw0[c]), db_mag[c] += std::fabs(db0[c]);
  b.expect_rel("dx", b.read(dx, "layernorm_backward dx"), want_dx, 1e-5, norm2(dx_mag));
  b.expect_rel("dw (accumulated)", b.read(dw, "layernorm_backward dw"), want_dw, 1e-5, norm2(dw_mag));
  b.expect_rel("db (accumulated)", b.read(db, "layernorm_backward db"), want_db, 1e-5, norm2(db_mag));
}

}  // namespace

void case_layernorm(Bench& b) {
  uint64_t seed = 0;
  std::vector<std::pair<int64_t, int64_t>> shapes = row_shapes();
  shapes.push_back({3, 4 * 256 + 1001});  // rows longer than four passes of a workgroup
  shapes.push_back({1, 4 * 256 * 3});
  for (auto [rows, cols] : shapes) run_layernorm_case(b, rows, cols, false, seed++);
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{3, 48}, {13, 127}, {2, 1}})
    run_layernorm_case(b, rows, cols, true, seed++);
}

// y = softmax(scale·x) per row. dx = scale·y⊙(dy − Σ_row y⊙dy), from y as floats. The
// forward has no cancellation (a float exp is good to a few u; the row sum adds √n·u):
// tolerance 1e-5. The backward's difference cancels: floor ‖|scale|·y⊙(|dy| + Σ|y⊙dy|)‖,
// tolerance 1e-5.
void case_softmax(Bench& b) {
  uint64_t seed = 0;
  for (auto [rows, cols] : row_shapes())
    for (float scale : {1.0f, -0.37f}) {
      SCOPED_TRACE(dims({rows, cols}) + " scale " + std::to_string(scale));
      const int64_t n = rows * cols;
      std::vector<float> x = randn(n, 600 + seed, 3.0f), dy = randn(n, 601 + seed++);
      Bench::Buf bx = b.input(x), y = b.output(n);
      b.k().softmax(*bx, *y, rows, cols, scale);
      std::vector<double> want_y(n);
      for (int64_t r = 0; r < rows; ++r) {
        double mx = -INFINITY, sum = 0;
        for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, double(scale) * x[r * cols + c]);
        for (int64_t c = 0; c < cols; ++c) sum += want_y[r * cols + c] = std::exp(double(scale) * x[r * cols + c] - mx);
        for (int64_t c = 0; c < cols; ++c) want_y[r * cols + c] /= sum;
      }
      b.expect_rel("y", b.read(y, "softmax"), want_y, 1e-5);

      const std::vector<float> yf = to_float(want_y);
      Bench::Buf by = b.input(yf), bdy = b.input(dy), dx = b.output(n);
      b.k().softmax_backward(*by, *bdy, *dx, rows, cols, scale);
      std::vector<double> want_dx(n), mag(n);
      for (int64_t r = 0; r < rows; ++r) {
        double dot = 0, abs_dot = 0;
        for (int64_t c = 0; c < cols; ++c) {
          dot += double(yf[r * cols + c]) * dy[r * cols + c];
          abs_dot += std::fabs(double(yf[r * cols + c]) * dy[r * cols + c]);
        }
        for (int64_t c = 0; c < cols; ++c) {
          want_dx[r * cols + c] = scale * double(yf[r * cols + c]) * (dy[r * cols + c] - dot);
          mag[r * cols + c] = std::fabs(scale) * yf[r * cols + c] * (std::fabs(dy[r * cols + c]) + abs_dot);
        }
      }
      b.expect_rel("dx", b.read(dx, "softmax_backward"), want_dx, 1e-5, norm2(mag));
    }
}

namespace {

// Per row the k' = min(k, cols) largest of scale·x (equal values: the lower column first),
// softmax over them, 0 elsewhere; k ≤ 0 keeps none. Scales are powers of two (or −0.5) so
// that scale·x is exact in float and double alike and both order the same. The kept set must
// match exactly. The values have no cancellation, but their normaliser is a float sum of k'
// positive terms, off by up to (k' − 1)·u relative, which equal terms (ties) do reach:
// tolerance max(1e-5, k'·u), 3e-4 for the 5000 kept of one case.
void run_topk_case(Bench& b, int64_t rows, int64_t cols, int64_t k, float scale, bool ties, uint64_t seed) {
  SCOPED_TRACE(dims({rows, cols}) + " k " + std::to_string(k) + " scale " + std::to_string(scale) +
               (ties ? " ties" : ""));
  std::vector<float> x = randn(rows * cols, 700 + seed);
  if (ties)
    for (float& v : x) v = std::floor(v * 1.5f);  // few distinct values: many ties, and −0 against +0
  if (ties && !x.empty()) x[0] = -0.0f;
  Bench::Buf bx = b.input(x), y = b.output(rows * cols);
  b.k().topk_gate(*bx, *y, rows, cols, k, scale);
  std::vector<double> want(rows * cols, 0.0);
  const int64_t kept = std::max<int64_t>(0, std::min(k, cols));
  for (int64_t r = 0; r < rows && kept > 0; ++r) {
    std::vector<int64_t> order(cols);
    std::iota(order.begin(), order.end(), 0);
    auto value = [&](int64_t c) { return double(scale) * x[r * cols + c]; };
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return value(a) > value(c); });
    double mx = value(order[0]), sum = 0;
    for (int64_t i = 0; i < kept; ++i) sum += want[r * cols + order[i]] = std::exp(value(order[i]) - mx);
    for (int64_t i = 0; i < kept; ++i) want[r * cols + order[i]] /= sum;
  }
  std::vector<float> got = b.read(y, "topk_gate");
  b.expect_same_zeros("y", got, want);
  b.expect_rel("y", got, want, std::max(1e-5, double(kept) * std::ldexp(1.0, -24)));
}

}  // namespace

void case_topk_gate(Bench& b) {
  uint64_t seed = 0;
  for (int64_t rows : {int64_t(1), int64_t(3), int64_t(13)})
    for (int64_t cols : kSizes)
      for (int64_t k : {int64_t(1), int64_t(3), int64_t(13), int64_t(200), int64_t(0)})
        for (bool ties : {false, true}) run_topk_case(b, rows, cols, k, 1.0f, ties, seed++);
  run_topk_case(b, 127, 200, 7, -0.5f, false, seed++);
  run_topk_case(b, 127, 200, 7, 2.0f, true, seed++);
  run_topk_case(b, 200, 127, 64, 1.0f, true, seed++);
  run_topk_case(b, 1, 5, 2, 1.0f, true, seed++);
  run_topk_case(b, 2, 32768, 100, 1.0f, false, seed++);  // the longest row the model uses
  run_topk_case(b, 1, 32768, 5000, 1.0f, true, seed++);
}

// loss[r] = logsumexp(logits[r]) − logits[r, label]: floor ‖|lse| + |logit_label|‖ (a confident
// right answer cancels to near 0); probs = softmax(logits). Float exp/log and a row sum:
// tolerance 1e-5. dlogits = dloss·(probs − onehot(label)), from probs as floats: one subtraction
// and one product (floor ‖|dloss|·(probs + onehot)‖), tolerance 1e-6.
void case_cross_entropy(Bench& b) {
  uint64_t seed = 0;
  for (auto [rows, classes] : row_shapes()) {
    SCOPED_TRACE(dims({rows, classes}));
    std::vector<int32_t> labels(rows);
    Rng r(800 + seed);
    for (int32_t& l : labels) l = static_cast<int32_t>(r.below(static_cast<uint64_t>(classes)));
    std::vector<float> logits = randn(rows * classes, 801 + seed, 4.0f), dloss = randn(rows, 802 + seed++);
    Bench::Buf bl = b.input(logits), blab = b.labels(labels), loss = b.output(rows), probs = b.output(rows * classes);
    b.k().cross_entropy(*bl, *blab, *loss, *probs, rows, classes);
    std::vector<double> want_loss(rows), loss_mag(rows), want_p(rows * classes);
    for (int64_t i = 0; i < rows; ++i) {
      const float* row = logits.data() + i * classes;
      double mx = *std::max_element(row, row + classes), sum = 0;
      for (int64_t c = 0; c < classes; ++c) sum += std::exp(row[c] - mx);
      const double lse = mx + std::log(sum);
      want_loss[i] = lse - row[labels[i]];
      loss_mag[i] = std::fabs(lse) + std::fabs(row[labels[i]]);
      for (int64_t c = 0; c < classes; ++c) want_p[i * classes + c] = std::exp(row[c] - lse);
    }
    b.expect_rel("loss", b.read(loss, "cross_entropy loss"), want_loss, 1e-5, norm2(loss_mag));
    b.expect_rel("probs", b.read(probs, "cross_entropy probs"), want_p, 1e-5);

    const std::vector<float> pf = to_float(want_p);
    Bench::Buf bp = b.input(pf), bdl = b.input(dloss), dlogits = b.output(rows * classes);
    b.k().cross_entropy_backward(*bp, *blab, *bdl, *dlogits, rows, classes);
    std::vector<double> want_d(rows * classes), d_mag(rows * classes);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t c = 0; c < classes; ++c) {
        const double onehot = c == labels[i] ? 1.0 : 0.0;
        want_d[i * classes + c] = double(dloss[i]) * (pf[i * classes + c] - onehot);
        d_mag[i * classes + c] = std::fabs(dloss[i]) * (pf[i * classes + c] + onehot);
      }
    b.expect_rel("dlogits", b.read(dlogits, "cross_entropy_backward"), want_d, 1e-6, norm2(d_mag));
  }
}

// y = x / ‖x‖ with the norm saved (clamped to 1e-12: row 1 is all zeros when rows > 2); a sum
// of squares and a division: tolerance 1e-5. dx = (dy − y·(y·dy)) / norm from y and norm as
// floats: floor ‖(|dy| + |y|·Σ|y·dy|) / norm‖, tolerance 1e-5. The zero row's gradient is
// dy / 1e-12: compared on its own, so that it does not swamp the others.
void case_l2_normalize(Bench& b) {
  uint64_t seed = 0;
  for (auto [rows, cols] : row_shapes()) {
    SCOPED_TRACE(dims({rows, cols}));
    const int64_t n = rows * cols, zero_row = rows > 2 ? 1 : -1;
    std::vector<float> x = randn(n, 900 + seed), dy = randn(n, 901 + seed++);
    if (zero_row >= 0) std::fill_n(x.begin() + zero_row * cols, cols, 0.0f);
    Bench::Buf bx = b.input(x), y = b.output(n), norm = b.output(rows);
    b.k().l2_normalize(*bx, *y, *norm, rows, cols);
    std::vector<double> want_y(n), want_norm(rows);
    for (int64_t r = 0; r < rows; ++r) {
      double ss = 0;
      for (int64_t c = 0; c < cols; ++c) ss += double(x[r * cols + c]) * x[r * cols + c];
      want_norm[r] = std::max(std::sqrt(ss), 1e-12);
      for (int64_t c = 0; c < cols; ++c) want_y[r * cols + c] = x[r * cols + c] / want_norm[r];
    }
    b.expect_rel("y", b.read(y, "l2_normalize y"), want_y, 1e-5);
    b.expect_rel("norm", b.read(norm, "l2_normalize norm"), want_norm, 1e-5);

    const std::vector<float> yf = to_float(want_y), nf = to_float(want_norm);
    Bench::Buf by = b.input(yf), bn = b.input(nf), bdy = b.input(dy), dx = b.output(n);
    b.k().l2_normalize_backward(*by, *bn, *bdy, *dx, rows, cols);
    std::vector<float> got_all = b.read(dx, "l2_normalize_backward"), got, got_zero;
    std::vector<double> want, want_zero, mag;
    for (int64_t r = 0; r < rows; ++r) {
      double dot = 0, abs_dot = 0;
      for (int64_t c = 0; c < cols; ++c) {
        dot += double(yf[r * cols + c]) * dy[r * cols + c];
        abs_dot += std::fabs(double(yf[r * cols + c]) * dy[r * cols + c]);
      }
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t i = r * cols + c;
        const double d = (dy[i] - yf[i] * dot) / nf[r];
        (r == zero_row ? want_zero : want).push_back(d);
        (r == zero_row ? got_zero : got).push_back(got_all[i]);
        if (r != zero_row) mag.push_back((std::fabs(dy[i]) + std::fabs(yf[i]) * abs_dot) / nf[r]);
      }
    }
    b.expect_rel("dx", got, want, 1e-5, norm2(mag));
    if (zero_row >= 0) b.expect_rel("dx (zero row)", got_zero, want_zero, 1e-5);
  }
}

}  // namespace ait::backend_ops

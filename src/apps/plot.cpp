// SVG line charts; see plot.h.
#include "apps/plot.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <limits>

namespace ait::plot {

namespace {

// Round tick positions covering [lo, hi]: steps of 1, 2 or 5 × 10^k, about `want` of them.
std::vector<double> nice_ticks(double& lo, double& hi, int want) {
  if (!(hi > lo)) {
    double pad = lo == 0 ? 1 : std::fabs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  double raw = (hi - lo) / want, mag = std::pow(10.0, std::floor(std::log10(raw))), step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  lo = std::floor(lo / step + 1e-9) * step;
  hi = std::ceil(hi / step - 1e-9) * step;
  std::vector<double> t;
  for (double v = lo; v <= hi + step * 1e-6; v += step) t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::string tick_label(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) < 1e-3 || std::fabs(v) >= 1e6)) std::snprintf(buf, sizeof buf, "%.3g", v);
  else std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

std::string coord(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string line(double x1, double y1, double x2, double y2, const std::string& stroke) {
  return "<line x1=\"" + coord(x1) + "\" y1=\"" + coord(y1) + "\" x2=\"" + coord(x2) + "\" y2=\"" + coord(y2) +
         "\" stroke=\"" + stroke + "\"/>";
}

void draw_series(std::string& svg, const Series& s, const std::function<double(double)>& X,
                 const std::function<double(double)>& Y) {
  if (s.markers) {
    for (auto& p : s.pts)
      if (std::isfinite(p.second))
        svg += "<circle class=\"" + s.cls + "\" cx=\"" + coord(X(p.first)) + "\" cy=\"" + coord(Y(p.second)) +
               "\" r=\"4.5\" fill=\"" + s.colour + "\" stroke=\"#000\"><title>" + xml_escape(s.name) + " " +
               tick_label(p.second) + "</title></circle>\n";
    return;
  }
  svg += "<polyline class=\"" + s.cls + "\" fill=\"none\" stroke=\"" + s.colour + "\" stroke-width=\"" +
         coord(s.width) + "\" points=\"";
  for (size_t i = 0; i < s.pts.size(); ++i)
    svg += (i ? " " : "") + coord(X(s.pts[i].first)) + "," + coord(Y(s.pts[i].second));
  svg += "\"/>\n";
}

// The legend, top right inside the panel.
void legend(std::string& svg, double x0, double y0, double w, const std::vector<Series>& all) {
  std::vector<const Series*> series;
  for (auto& s : all)
    if (s.legend) series.push_back(&s);
  if (series.empty()) return;
  double lw = 0;
  for (auto* s : series) lw = std::max(lw, 7.0 * s->name.size());
  double lx = x0 + w - lw - 40, ly = y0 + 8;
  svg += "<rect x=\"" + coord(lx - 6) + "\" y=\"" + coord(ly - 2) + "\" width=\"" + coord(lw + 42) + "\" height=\"" +
         coord(18.0 * series.size() + 4) + "\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n";
  for (size_t i = 0; i < series.size(); ++i) {
    double yy = ly + 18.0 * i + 9;
    if (series[i]->markers)
      svg += "<circle cx=\"" + coord(lx + 10) + "\" cy=\"" + coord(yy) + "\" r=\"4.5\" fill=\"" + series[i]->colour +
             "\" stroke=\"#000\"/>";
    else
      svg += "<line x1=\"" + coord(lx) + "\" y1=\"" + coord(yy) + "\" x2=\"" + coord(lx + 22) + "\" y2=\"" + coord(yy) +
             "\" stroke=\"" + series[i]->colour + "\" stroke-width=\"2.5\"/>";
    svg +=
        "<text x=\"" + coord(lx + 30) + "\" y=\"" + coord(yy + 4) + "\">" + xml_escape(series[i]->name) + "</text>\n";
  }
}

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '&') o += "&amp;";
    else if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string svg_begin(double W, double H, const std::string& title) {
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + coord(W) +
         "\" height=\"" + coord(H) + "\" viewBox=\"0 0 " + coord(W) + " " + coord(H) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n" +
         "<text x=\"" + coord(W / 2) + "\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">" + xml_escape(title) +
         "</text>\n";
}

std::string svg_end() { return "</svg>\n"; }

void panel(std::string& svg, double x0, double y0, double w, double h, const Axes& axes,
           const std::vector<Series>& series) {
  double ylo = std::numeric_limits<double>::infinity(), yhi = -ylo, xlo = axes.xlo, xhi = axes.xhi;
  for (auto& s : series)
    for (auto& p : s.pts)
      if (std::isfinite(p.second)) ylo = std::min(ylo, p.second), yhi = std::max(yhi, p.second);
  if (!std::isfinite(ylo)) ylo = 0, yhi = 1;
  if (axes.y_from_zero) ylo = std::min(ylo, 0.0);
  if (std::isfinite(axes.ylo_fixed)) ylo = axes.ylo_fixed;
  if (std::isfinite(axes.yhi_fixed)) yhi = std::max(yhi, axes.yhi_fixed);
  std::vector<double> yt = nice_ticks(ylo, yhi, 5), xt = nice_ticks(xlo, xhi, 8);
  auto X = [&](double v) { return x0 + (v - xlo) / (xhi - xlo) * w; };
  auto Y = [&](double v) { return y0 + h - (v - ylo) / (yhi - ylo) * h; };
  svg += "<g class=\"panel\">\n";
  svg += "<rect x=\"" + coord(x0) + "\" y=\"" + coord(y0) + "\" width=\"" + coord(w) + "\" height=\"" + coord(h) +
         "\" fill=\"#fcfcfc\" stroke=\"#444\"/>\n";
  for (double v : yt) {
    svg += line(x0, Y(v), x0 + w, Y(v), "#e2e2e2") + line(x0 - 5, Y(v), x0, Y(v), "#444");
    svg += "<text x=\"" + coord(x0 - 8) + "\" y=\"" + coord(Y(v) + 4) + "\" text-anchor=\"end\">" + tick_label(v) +
           "</text>\n";
  }
  for (double v : xt) {
    svg += line(X(v), y0, X(v), y0 + h, "#eeeeee") + line(X(v), y0 + h, X(v), y0 + h + 5, "#444");
    svg += "<text x=\"" + coord(X(v)) + "\" y=\"" + coord(y0 + h + 18) + "\" text-anchor=\"middle\">" + tick_label(v) +
           "</text>\n";
  }
  svg += "<text x=\"" + coord(x0 + w / 2) + "\" y=\"" + coord(y0 + h + 34) + "\" text-anchor=\"middle\">" +
         xml_escape(axes.xlabel) + "</text>\n";
  svg += "<text transform=\"translate(" + coord(x0 - 58) + "," + coord(y0 + h / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + xml_escape(axes.ylabel) + "</text>\n";
  for (auto& s : series) draw_series(svg, s, X, Y);
  legend(svg, x0, y0, w, series);
  svg += "</g>\n";
}

}  // namespace ait::plot

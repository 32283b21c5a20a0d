// A small SVG writer for line charts: panels with a frame, round ticks on both axes, axis
// labels, polylines or markers and a legend. `ait plot` (one run) and `ait experiment` (a grid
// of runs) draw their curves with it; no outside tools.
#pragma once
#include <cmath>
#include <string>
#include <utility>
#include <vector>

namespace ait::plot {

struct Series {
  std::string name, colour, cls;  // cls: the SVG class, so that tests and stylesheets find it
  std::vector<std::pair<double, double>> pts;
  bool markers = false;  // circles instead of a polyline
  double width = 1.8;    // polyline stroke width
  bool legend = true;    // listed in the panel's legend
};

struct Axes {
  std::string xlabel, ylabel;
  double xlo = 0, xhi = 1;  // widened to round ticks
  bool y_from_zero = false;
  double ylo_fixed = NAN;  // when finite: the y range starts here
  double yhi_fixed = NAN;  // when finite: the y range reaches at least this
};

// The SVG header (W x H, white background, the title centred at the top) and its end.
std::string svg_begin(double width, double height, const std::string& title);
std::string svg_end();
// One panel with its top-left corner at (x0, y0), appended to `svg`.
void panel(std::string& svg, double x0, double y0, double w, double h, const Axes& axes,
           const std::vector<Series>& series);
std::string xml_escape(const std::string& s);

}  // namespace ait::plot

#include "apps/convert_cli.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <system_error>

#include "apps/convert.h"
#include "io/inflate.h"

namespace ait {

namespace fs = std::filesystem;

namespace {

// ------------------------------------------------------------------------------------------
// Outputs: every file a run writes, checked to be distinct up front and written all or none.

struct OutputFile {
  std::string option;  // how the user named it, for messages: "--out", "--val-out"
  std::string path;
  Dataset data;
};

// The file a path names, whatever its spelling ("./x", "d/../x", a symlinked folder).
fs::path resolved(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path), ec);
  return ec ? fs::absolute(path).lexically_normal() : p;
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return resolved(a) == resolved(b) || fs::equivalent(a, b, ec);
}

// Refuses two outputs naming one file, and outputs in a folder that does not exist.
void check_outputs(const std::vector<std::pair<std::string, std::string>>& outputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    for (size_t j = 0; j < i; ++j)
      if (same_file(outputs[i].second, outputs[j].second))
        throw cli::UsageError(outputs[i].first + " " + outputs[i].second + " and " + outputs[j].first + " " +
                              outputs[j].second + " name the same file (" + resolved(outputs[i].second).string() +
                              "); each output needs its own file");
    const fs::path dir = resolved(outputs[i].second).parent_path();
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
      throw Error("cannot write " + outputs[i].second + " (" + outputs[i].first + "): folder " + dir.string() +
                  " does not exist");
  }
}

// Writes every output, or (when one cannot be written) removes the ones this run wrote.
void write_all(const std::vector<OutputFile>& outputs) {
  std::vector<std::vector<uint8_t>> bytes;
  for (const OutputFile& o : outputs) {
    validate_dataset(o.data, o.path);
    SafeTensors st = dataset_to_safetensors(o.data);
    st.source = o.path;
    bytes.push_back(serialize_safetensors(st));
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    try {
      write_file_atomic(outputs[i].path, bytes[i]);
    } catch (...) {
      std::error_code ec;
      for (size_t j = 0; j < i; ++j) fs::remove(outputs[j].path, ec);
      throw;
    }
  }
  for (const OutputFile& o : outputs)
    std::printf("%s: %lld rows, %lldx%lldx%lld, %zu classes\n", o.path.c_str(), (long long)o.data.n,
                (long long)o.data.channels, (long long)o.data.height, (long long)o.data.width, o.data.classes.size());
}

// Where a run writes: the converted data, a generator's test file, the validation split.
struct Plan {
  std::string out, test_out, val_out;
  int64_t split = 0;
  uint64_t seed = 0;
};

// Reads and checks the output options before any work is done.
Plan plan_outputs(const cli::Args& a, const std::string& out, const std::string& test_out = "") {
  Plan p;
  p.out = out, p.test_out = test_out;
  if (a.has("split") && a.has("split-val")) a.fail("--split-val is another name for --split; give one of them");
  p.split = a.integer(a.has("split-val") ? "split-val" : "split", 0, 1);
  p.seed = uint64_t(a.integer("seed", 0, 0));
  p.val_out = a.get("val-out");
  if (p.split > 0 && p.val_out.empty()) a.fail("--split needs --val-out FILE for the validation rows");
  if (p.split == 0 && !p.val_out.empty()) a.fail("--val-out needs --split N");
  std::vector<std::pair<std::string, std::string>> files = {{"--out", out}};
  if (!test_out.empty()) files.push_back({"the test file of --out", test_out});
  if (!p.val_out.empty()) files.push_back({"--val-out", p.val_out});
  check_outputs(files);
  return p;
}

int write_planned(const Plan& p, Dataset data, Dataset* test = nullptr) {
  std::vector<OutputFile> files;
  if (p.split > 0) {
    Dataset val = split_dataset(data, p.split, p.seed);
    files.push_back({"--val-out", p.val_out, std::move(val)});
  }
  files.insert(files.begin(), OutputFile{"--out", p.out, std::move(data)});
  if (test) files.push_back({"--out", p.test_out, std::move(*test)});
  write_all(files);
  return cli::kExitOk;
}

// ------------------------------------------------------------------------------------------
// The commands

int run_generator(const cli::Args& a, bool triangle) {
  const std::string prefix = a.get("out");
  const Plan plan = plan_outputs(a, prefix + "-train.safetensors", prefix + "-test.safetensors");
  const uint64_t seed = uint64_t(a.integer("seed", 0, 0));
  const int64_t n_train = a.integer("train", triangle ? 10000 : 9800, 1);
  const int64_t n_test = a.integer("test", triangle ? 2000 : 200, 1);
  ClevrOptions clevr;
  if (!triangle) {
    clevr.questions = a.choice("questions", {"all", "nonrel", "binary", "ternary"}, "all");
    clevr.no_overlap = a.has("no-overlap");
  }
  auto make = [&](int64_t n, uint64_t stream) {
    return triangle ? make_triangle_dataset(n, seed, stream) : make_sort_of_clevr(n, seed, stream, clevr);
  };
  Dataset test = make(n_test, 1);
  return write_planned(plan, make(n_train, 0), &test);
}

int run_cifar(const cli::Args& a, bool cifar100) {
  const Plan plan = plan_outputs(a, a.get("out"));
  const bool fine = cifar100 && a.choice("label", {"coarse", "fine"}, "") == "fine";
  return write_planned(plan, dataset_from_cifar(a.all("input"), cifar100, fine, a.get("names")));
}

int run_npy(const cli::Args& a) {
  const Plan plan = plan_outputs(a, a.get("out"));
  const std::string layout = a.choice("layout", {"nhwc", "nchw"}, "");
  std::vector<std::string> classes;
  if (a.has("classes")) classes = parse_class_list(a.get("classes"), "--classes");
  return write_planned(plan, dataset_from_npy(a.get("images"), a.get("labels"), layout, classes));
}

// "HxW" with both in [1, 65535].
void parse_size(const cli::Args& a, int* h, int* w) {
  const std::string s = a.get("size");
  const size_t x = s.find('x');
  auto number = [&](const std::string& t) {
    if (t.empty() || t.size() > 5 || t.find_first_not_of("0123456789") != std::string::npos) return -1;
    const int v = std::stoi(t);
    return v >= 1 && v <= 65535 ? v : -1;
  };
  *h = x == std::string::npos ? -1 : number(s.substr(0, x));
  *w = x == std::string::npos ? -1 : number(s.substr(x + 1));
  if (*h < 0 || *w < 0) a.fail("option --size: '" + s + "' is not HxW (height x width, each 1..65535, e.g. 32x32)");
}

int run_folder(const cli::Args& a) {
  const Plan plan = plan_outputs(a, a.get("out"));
  int h = 0, w = 0;
  if (a.has("size")) parse_size(a, &h, &w);
  return write_planned(plan, dataset_from_folder(a.get("input"), h, w));
}

int run_idx(const cli::Args& a) {
  const Plan plan = plan_outputs(a, a.get("out"));
  const std::string classes = a.get("classes", "fashion-mnist");
  std::vector<std::string> names;
  if (classes == "fashion-mnist") {
    names = fashion_mnist_classes();
  } else if (classes == "mnist") {
    for (int i = 0; i < 10; ++i) names.push_back(std::to_string(i));
  } else {
    names = parse_class_list(classes, "--classes");
  }
  const std::string images = a.get("images");
  return write_planned(plan, dataset_from_idx(images, a.get("labels"), names, images));
}

// ------------------------------------------------------------------------------------------
// The option tables

using cli::kRepeatable;
using cli::kRequired;

std::vector<cli::Option> with_split(std::vector<cli::Option> options) {
  options.push_back({"split", "N", "move N seeded-random rows of the (training) output to --val-out"});
  options.push_back({"split-val", "N", "another name for --split"});
  options.push_back({"val-out", "FILE", "where the --split rows go; never the same file as an output"});
  bool has_seed = false;
  for (const cli::Option& o : options) has_seed = has_seed || o.name == "seed";
  if (!has_seed) options.push_back({"seed", "S", "seed of the --split draw (default 0)"});
  return options;
}

std::vector<cli::Option> idx_options() {
  return {{"images", "FILE", "IDX images [N, H, W] of unsigned bytes", kRequired},
          {"labels", "FILE", "IDX labels [N] of unsigned bytes", kRequired},
          {"out", "FILE", "the dataset file to write", kRequired},
          {"classes", "fashion-mnist|mnist|a,b,...", "class names in label order (default fashion-mnist)"}};
}

const char* kSplitNotes =
    "--split N moves N seeded-random rows (kept in order) to --val-out; mean/std come from the\n"
    "rest. All outputs are written, or none: a failed run leaves no output file behind.";

const char* kFolderNotes =
    "DIR holds one sub-folder per class: the class names are the sub-folder names, and their\n"
    "sorted order is the class order (hidden .folders are skipped); every class folder needs at\n"
    "least one image. Files are read in sorted name order; accepted: .png, .pgm, .ppm (any case),\n"
    "other files are ignored.\n"
    "  PNG: 8-bit grey, grey+alpha, RGB, RGBA, and palette images at 1/2/4/8 bits; alpha is\n"
    "       dropped and palettes are expanded to RGB. Refused: 16-bit and 1/2/4-bit grey,\n"
    "       interlaced (Adam7) images.\n"
    "  PGM/PPM: binary P5/P6 with maxval 255 only (not the text forms P2/P3), one image per file.\n"
    "Grey images become RGB when any image is RGB. All images must have one size unless --size\n"
    "HxW (height x width) resizes each (nearest neighbour).\n";

std::vector<cli::Subcommand> convert_commands() {
  auto generator = [](bool tri) {
    std::vector<cli::Option> o = {
        {"train", "N", std::string("training images (default ") + (tri ? "10000" : "9800") + ")"},
        {"test", "M", std::string("test images (default ") + (tri ? "2000" : "200") + ")"},
        {"seed", "S", "seed of the images and of --split (default 0)"},
        {"out", "PREFIX", "writes PREFIX-train.safetensors and PREFIX-test.safetensors", kRequired}};
    if (!tri) o.push_back({"questions", "all|nonrel|binary|ternary", "question types (default all)"});
    if (!tri) o.push_back({"no-overlap", "", "place objects so that no two overlap or touch"});
    return with_split(o);
  };
  const cli::Option out = {"out", "FILE", "the dataset file to write", kRequired};
  const cli::Option names = {"names", "FILE", "class names, one per line (e.g. batches.meta.txt)"};
  const cli::Option input = {"input", "FILE", "a binary batch file", kRequired | kRepeatable};
  const cli::Option classes = {"classes", "a,b,...", "class names in label order (default: 0..max label)"};
  return {
      {{"ait-convert triangle",
        "the Triangle task: equilateral vs random triangles, 64x64 grey",
        generator(true),
        {},
        kSplitNotes},
       [](const cli::Args& a) { return run_generator(a, true); }},
      {{"ait-convert sort-of-clevr",
        "Sort-of-CLEVR, one row per (image, question), 75x75 RGB",
        generator(false),
        {},
        kSplitNotes},
       [](const cli::Args& a) { return run_generator(a, false); }},
      {{"ait-convert cifar10", "CIFAR-10 binary batches", with_split({input, out, names}), {}, kSplitNotes},
       [](const cli::Args& a) { return run_cifar(a, false); }},
      {{"ait-convert cifar100",
        "CIFAR-100 binary batches",
        with_split({input, out, {"label", "coarse|fine", "which of the two labels", kRequired}, names}),
        {},
        kSplitNotes},
       [](const cli::Args& a) { return run_cifar(a, true); }},
      {{"ait-convert npy",
        "NumPy .npy images (uint8, or float32 in [0,1]) and integer labels",
        with_split({{"images", "X.npy", "[N,H,W] or [N,H,W,C] / [N,C,H,W] images", kRequired},
                    {"labels", "Y.npy", "[N] integer labels", kRequired},
                    {"layout", "nhwc|nchw", "axis order of 4-D images (must give 1, 3 or 4 channels)", kRequired},
                    out,
                    classes}),
        {},
        kSplitNotes},
       run_npy},
      {{"ait-convert folder",
        "a folder of images, one sub-folder per class",
        with_split({{"input", "DIR", "the folder of class sub-folders", kRequired},
                    out,
                    {"size", "HxW", "resize every image to height H, width W (nearest neighbour)"}}),
        {},
        std::string(kFolderNotes) + "\n" + kSplitNotes},
       run_folder},
      {{"ait-convert idx", "MNIST-style IDX files (plain or .gz)", with_split(idx_options()), {}, kSplitNotes},
       run_idx},
  };
}

}  // namespace

std::vector<std::string> parse_class_list(const std::string& text, const std::string& option) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  size_t start = 0;
  for (;;) {
    const size_t comma = text.find(',', start);
    const std::string name = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (name.empty()) throw cli::UsageError("option " + option + ": '" + text + "' has an empty class name");
    if (!seen.insert(name).second)
      throw cli::UsageError("option " + option + ": class name '" + name + "' appears more than once");
    names.push_back(name);
    if (comma == std::string::npos) return names;
    start = comma + 1;
  }
}

const cli::Program& convert_program() {
  static const cli::Program program = {
      "ait-convert",
      "Builds the project's dataset files (.safetensors, docs/spec.md) from public formats, or generates\n"
      "the synthetic tasks.",
      convert_commands(),
      "Every command also takes --split N --val-out FILE [--seed S].",
  };
  return program;
}

cli::Subcommand idx_alias(const std::string& name) {
  cli::Subcommand s = {{name,
                        "MNIST-style IDX files (plain or .gz); the same as ait-convert idx",
                        with_split(idx_options()),
                        {"idx"},
                        kSplitNotes},
                       [](const cli::Args& a) {
                         if (a.positionals()[0] != "idx")
                           a.fail("the format '" + a.positionals()[0] + "' is not known; the only one is idx " +
                                  "(ait-convert has the others)");
                         return run_idx(a);
                       }};
  return s;
}

}  // namespace ait

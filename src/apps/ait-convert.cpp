// ait-convert: builds the project's dataset files (see src/dataset.h) from public formats, or
// generates synthetic ones. Run without arguments for usage.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "apps/convert.h"

namespace {

const char* kUsage =
    "usage: ait-convert COMMAND [options]\n"
    "  triangle      --train N --test M --seed S --out PREFIX   (defaults 10000 / 2000 / 0)\n"
    "  sort-of-clevr --train N --test M --seed S --out PREFIX [--questions all|nonrel|binary|ternary]\n"
    "                (one row per (image, question); defaults 2000 train / 200 test images)\n"
    "  cifar10       --input FILE [--input FILE ...] --out OUT [--names FILE]\n"
    "  cifar100      --input FILE [--input FILE ...] --out OUT --label coarse|fine [--names FILE]\n"
    "  npy           --images X.npy --labels Y.npy --layout nhwc|nchw --out OUT [--classes a,b,...]\n"
    "  folder        --input DIR --out OUT [--size HxW]\n"
    "every command also takes --split N --val-out VALOUT [--seed S] (--split-val is an alias):\n"
    "N seeded-random rows of the (train) output move to VALOUT; mean/std come from the rest.\n"
    "triangle and sort-of-clevr write PREFIX-train.safetensors and PREFIX-test.safetensors.\n";

struct Args {
  std::map<std::string, std::vector<std::string>> kv;
  bool has(const std::string& k) const { return kv.count(k) != 0; }
  std::string get(const std::string& k, const std::string& def = "") const {
    auto it = kv.find(k);
    if (it == kv.end()) {
      if (def.empty()) throw ait::Error("missing required option --" + k);
      return def;
    }
    return it->second.back();
  }
  int64_t num(const std::string& k, const std::string& def = "") const {
    std::string s = get(k, def);
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < 0) throw ait::Error("--" + k + " must be a non-negative integer, not '" + s + "'");
    return v;
  }
};

void finish(ait::Dataset ds, const Args& a, const std::string& out) {
  if (a.has("split") || a.has("split-val")) {
    int64_t n = a.num(a.has("split") ? "split" : "split-val");
    ait::Dataset val = ait::split_dataset(ds, n, uint64_t(a.num("seed", "0")));
    std::string vout = a.get("val-out");
    ait::save_dataset(vout, val);
    std::printf("%s: %lld rows (validation)\n", vout.c_str(), (long long)val.n);
  } else if (a.has("val-out")) {
    throw ait::Error("--val-out needs --split N");
  }
  ait::save_dataset(out, ds);
  std::printf("%s: %lld rows, %lldx%lldx%lld, %zu classes\n", out.c_str(), (long long)ds.n, (long long)ds.channels,
              (long long)ds.height, (long long)ds.width, ds.classes.size());
}

int run(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string cmd = argv[1];
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) throw ait::Error("expected --option VALUE, got '" + k + "'");
    a.kv[k.substr(2)].push_back(argv[++i]);
  }
  static const std::map<std::string, std::vector<std::string>> allowed = {
      {"triangle", {"train", "test", "seed", "out"}},
      {"sort-of-clevr", {"train", "test", "seed", "out", "questions"}},
      {"cifar10", {"input", "out", "names"}},
      {"cifar100", {"input", "out", "names", "label"}},
      {"npy", {"images", "labels", "layout", "out", "classes"}},
      {"folder", {"input", "out", "size"}},
  };
  auto it = allowed.find(cmd);
  if (it == allowed.end()) throw ait::Error("unknown command '" + cmd + "'\n" + kUsage);
  for (const auto& [k, v] : a.kv) {
    bool ok = k == "split" || k == "split-val" || k == "val-out" || k == "seed";
    for (const std::string& o : it->second) ok |= o == k;
    if (!ok) throw ait::Error(cmd + ": unknown option --" + k);
    if (v.size() > 1 && k != "input") throw ait::Error("--" + k + " given more than once");
  }
  if (cmd == "triangle" || cmd == "sort-of-clevr") {
    const bool tri = cmd == "triangle";
    const std::string prefix = a.get("out");
    const uint64_t seed = uint64_t(a.num("seed", "0"));
    const int64_t ntr = a.num("train", tri ? "10000" : "2000"), nte = a.num("test", tri ? "2000" : "200");
    const std::string qs = a.get("questions", "all");
    auto make = [&](int64_t n, uint64_t stream) {
      return tri ? ait::make_triangle_dataset(n, seed, stream) : ait::make_sort_of_clevr(n, seed, stream, qs);
    };
    finish(make(ntr, 0), a, prefix + "-train.safetensors");
    ait::save_dataset(prefix + "-test.safetensors", make(nte, 1));
    std::printf("%s-test.safetensors written\n", prefix.c_str());
    return 0;
  }
  if (cmd == "cifar10" || cmd == "cifar100") {
    const bool c100 = cmd == "cifar100";
    bool fine = false;
    if (c100) {
      std::string l = a.get("label");
      if (l != "coarse" && l != "fine") throw ait::Error("--label must be coarse or fine, not '" + l + "'");
      fine = l == "fine";
    }
    if (!a.has("input")) throw ait::Error("missing required option --input");
    finish(ait::dataset_from_cifar(a.kv.at("input"), c100, fine, a.has("names") ? a.get("names") : ""), a, a.get("out"));
    return 0;
  }
  if (cmd == "npy") {
    std::vector<std::string> classes;
    if (a.has("classes")) {
      std::string s = a.get("classes"), cur;
      for (char c : s + ",") {
        if (c == ',') {
          if (cur.empty()) throw ait::Error("--classes has an empty name");
          classes.push_back(cur);
          cur.clear();
        } else {
          cur += c;
        }
      }
    }
    finish(ait::dataset_from_npy(a.get("images"), a.get("labels"), a.get("layout"), classes), a, a.get("out"));
    return 0;
  }
  if (cmd == "folder") {
    int h = 0, w = 0;
    if (a.has("size")) {
      std::string s = a.get("size");
      if (std::sscanf(s.c_str(), "%dx%d", &h, &w) != 2 || h <= 0 || w <= 0 || h > 65535 || w > 65535)
        throw ait::Error("--size must be HxW, e.g. 32x32, not '" + s + "'");
    }
    finish(ait::dataset_from_folder(a.get("input"), h, w), a, a.get("out"));
    return 0;
  }
  throw ait::Error("internal error: command " + cmd + " not handled");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ait-convert: %s\n", e.what());
    return 1;
  }
}

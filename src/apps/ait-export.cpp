// ait-export: checkpoints out to numpy (.npz) and to / from the authors' PyTorch naming, and
// frozen-eval logits as .npy for cross-checks. Run without arguments for usage.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "apps/export.h"
#include "io/inflate.h"

namespace {

const char* kUsage =
    "usage: ait-export COMMAND [options]\n"
    "  npz            --checkpoint CKPT --out OUT.npz\n"
    "                 one float32 .npy per tensor (spec names, memory buffers included);\n"
    "                 the config goes to OUT.config.json beside it\n"
    "  authors        --checkpoint CKPT --out AUTHORS.safetensors\n"
    "                 the authors' PyTorch state-dict names (tools/reference/authors_naming.md)\n"
    "  import-authors --input AUTHORS.safetensors [--config CONFIG.json] --out CKPT\n"
    "                 CONFIG.json holds the spec section 1 keys; without it the file's\n"
    "                 'config' metadata (written by `ait-export authors`) is used\n"
    "  logits         --checkpoint CKPT --data DATA.safetensors --out LOGITS.npy [--limit N] [--batch-size B]\n"
    "                 frozen-memory eval logits [N, classes], normalised as `ait eval` does\n";

struct Args {
  std::map<std::string, std::string> kv;
  bool has(const std::string& k) const { return kv.count(k) != 0; }
  std::string get(const std::string& k) const {
    auto it = kv.find(k);
    if (it == kv.end()) throw ait::Error("missing required option --" + k);
    return it->second;
  }
  int64_t num(const std::string& k, int64_t def) const {
    if (!has(k)) return def;
    std::string s = get(k);
    char* end = nullptr;
    long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < 0) throw ait::Error("--" + k + " must be a non-negative integer, not '" + s + "'");
    return v;
  }
};

int run(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  Args a;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    if (k.rfind("--", 0) != 0 || i + 1 >= argc) throw ait::Error("expected --option VALUE, got '" + k + "'");
    a.kv[k.substr(2)] = argv[++i];
  }
  auto only = [&](std::initializer_list<const char*> allowed) {
    for (auto& [k, v] : a.kv) {
      bool ok = false;
      for (const char* s : allowed) ok = ok || k == s;
      if (!ok) throw ait::Error("unknown option --" + k + " for '" + cmd + "'");
    }
  };
  if (cmd == "npz") {
    only({"checkpoint", "out"});
    size_t n = ait::export_npz(a.get("checkpoint"), a.get("out"));
    std::printf("%s: %zu arrays; config in %s\n", a.get("out").c_str(), n, ait::npz_config_path(a.get("out")).c_str());
  } else if (cmd == "authors") {
    only({"checkpoint", "out"});
    ait::export_authors(a.get("checkpoint"), a.get("out"));
    std::printf("%s: authors' state-dict naming\n", a.get("out").c_str());
  } else if (cmd == "import-authors") {
    only({"input", "config", "out"});
    ait::import_authors(a.get("input"), a.has("config") ? a.get("config") : "", a.get("out"));
    std::printf("%s: checkpoint (spec names)\n", a.get("out").c_str());
  } else if (cmd == "logits") {
    only({"checkpoint", "data", "out", "limit", "batch-size"});
    int64_t n = 0, classes = 0;
    std::vector<float> l = ait::checkpoint_logits(a.get("checkpoint"), a.get("data"), a.num("limit", 0), a.num("batch-size", 64), &n, &classes);
    ait::write_file_atomic(a.get("out"), ait::npy_f32({n, classes}, l));
    std::printf("%s: logits [%lld, %lld]\n", a.get("out").c_str(), (long long)n, (long long)classes);
  } else {
    std::fputs(kUsage, stderr);
    throw ait::Error("unknown command '" + cmd + "'");
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ait-export: %s\n", e.what());
    return 1;
  }
}

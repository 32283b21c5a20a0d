// The `ait` command: train, eval, predict, info, dump, convert, devices.
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "vulkan/device.h"
#include "model/model.h"
#include "core/ops.h"
#include "io/safetensors.h"
#include "model/train.h"
#include "apps/viz.h"

using namespace ait;

namespace {

const char* kUsage = R"(ait — the Associative Transformer in C++17 (CPU and Vulkan)

usage: ait COMMAND [options]

  train    --data TRAIN [--val VAL] [--model tiny|coordination|small|medium|base] [--config JSON]
           [--set key=value]... [--epochs N] [--batch-size B] [--lr LR] [--warmup STEPS]
           [--weight-decay WD] [--seed S] [--augment] [--memory-eval frozen|update]
           [--limit N] [--log-every N] [--stop-after EPOCHS] --out DIR [--resume DIR] [--device D]
  eval     --checkpoint CKPT --data DATA [--batch-size B] [--memory-eval frozen|update] [--device D]
  predict  --checkpoint CKPT --data DATA [--count N] [--start I] [--device D]
  info     FILE                      a checkpoint's config and size, or a dataset's shape and classes
  dump     --checkpoint CKPT --batch BATCH --out OUT [--train-steps N] [--lr LR] [--weight-decay WD] [--device D]
  convert  idx --images IMAGES --labels LABELS --out OUT [--classes fashion-mnist|mnist|a,b,...]
  devices                            list Vulkan devices
  viz      --checkpoint CKPT --data DATA --out DIR [--count N] [--start I] [--device D]
                                     PNGs of each layer's bottleneck gates and Hopfield read weights
  plot     RUN_DIR [--out FILE.svg]  training curves from RUN_DIR/metrics.jsonl (default RUN_DIR/curves.svg)

--device: cpu | vulkan | vulkan:N | auto (default; AIT_VK_DEVICE=N picks N for "vulkan").
AIT_THREADS sets the CPU thread count (default: all cores).
)";

// Minimal option parser: --key value pairs, repeatable keys, and boolean flags.
struct Args {
  std::map<std::string, std::vector<std::string>> kv;
  std::vector<std::string> positional;
  std::set<std::string> used;

  Args(int argc, char** argv, int first, const std::set<std::string>& flags) {
    for (int i = first; i < argc; ++i) {
      std::string a = argv[i];
      if (a.rfind("--", 0) == 0) {
        std::string key = a.substr(2), value;
        size_t eq = key.find('=');
        if (eq != std::string::npos) {
          value = key.substr(eq + 1);
          key = key.substr(0, eq);
        } else if (flags.count(key)) {
          value = "1";
        } else {
          if (i + 1 >= argc) throw Error("option --" + key + " needs a value");
          value = argv[++i];
        }
        kv[key].push_back(value);
      } else {
        positional.push_back(a);
      }
    }
  }
  bool has(const std::string& k) { return used.insert(k), kv.count(k) > 0; }
  std::string get(const std::string& k, const std::string& def = "") {
    used.insert(k);
    auto it = kv.find(k);
    return it == kv.end() ? def : it->second.back();
  }
  std::string need(const std::string& k) {
    if (!kv.count(k)) throw Error("missing required option --" + k);
    return get(k);
  }
  std::vector<std::string> all(const std::string& k) {
    used.insert(k);
    return kv.count(k) ? kv[k] : std::vector<std::string>{};
  }
  int64_t num(const std::string& k, int64_t def) {
    std::string v = get(k);
    if (v.empty()) return def;
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (*end) throw Error("option --" + k + ": '" + v + "' is not an integer");
    return x;
  }
  float real(const std::string& k, float def) {
    std::string v = get(k);
    if (v.empty()) return def;
    char* end = nullptr;
    float x = std::strtof(v.c_str(), &end);
    if (*end) throw Error("option --" + k + ": '" + v + "' is not a number");
    return x;
  }
  void finish() {
    for (auto& [k, v] : kv)
      if (!used.count(k)) throw Error("unknown option --" + k + " (see ait --help)");
  }
};

Kernels& device_from(Args& a) {
  std::string note;
  Kernels* k = select_device(a.get("device", "auto"), &note);
  if (!note.empty()) std::fprintf(stderr, "ait: %s\n", note.c_str());
  return *k;
}

MemoryEval memory_eval_from(Args& a) {
  std::string m = a.get("memory-eval", "frozen");
  if (m == "frozen") return MemoryEval::Frozen;
  if (m == "update") return MemoryEval::Update;
  throw Error("--memory-eval must be 'frozen' or 'update', not '" + m + "'");
}

int cmd_train(Args& a) {
  TrainOptions o;
  o.data = a.need("data");
  o.val = a.get("val");
  o.model = a.get("model", "tiny");
  o.config_json = a.get("config");
  o.overrides = a.all("set");
  o.epochs = a.num("epochs", 1);
  o.batch_size = a.num("batch-size", 64);
  o.lr = a.real("lr", 1e-3f);
  o.warmup = a.num("warmup", -1);
  o.weight_decay = a.real("weight-decay", 0.01f);
  o.seed = a.num("seed", 0);
  o.augment = a.has("augment");
  o.memory_eval = memory_eval_from(a);
  o.limit_train = a.num("limit", 0);
  o.log_every = std::max<int64_t>(1, a.num("log-every", 50));
  o.stop_after_epochs = a.num("stop-after", 0);
  o.out = a.need("out");
  o.resume = a.get("resume");
  Kernels& dev = device_from(a);
  a.finish();
  double best = train(o, dev);
  std::printf("best validation accuracy: %.4f\n", best);
  return 0;
}

int cmd_eval(Args& a) {
  std::string ckpt = a.need("checkpoint"), data = a.need("data");
  int64_t bs = a.num("batch-size", 256);
  MemoryEval mode = memory_eval_from(a);
  Kernels& dev = device_from(a);
  a.finish();
  AiT model = AiT::load(ckpt, dev);
  Dataset ds = load_dataset(data);
  EvalResult r = evaluate(model, ds, bs, mode, true);
  std::printf("%s: accuracy %.4f (%lld/%lld), cross-entropy %.4f\n", data.c_str(), r.accuracy(),
              static_cast<long long>(r.correct), static_cast<long long>(r.n), r.ce);
  const int64_t C = model.config().num_classes;
  std::printf("confusion matrix (rows: true class, columns: predicted)\n%-14s", "");
  for (int64_t j = 0; j < C; ++j) std::printf("%6lld", static_cast<long long>(j));
  std::printf("\n");
  for (int64_t i = 0; i < C; ++i) {
    std::string name = i < static_cast<int64_t>(ds.classes.size()) ? ds.classes[i] : std::to_string(i);
    std::printf("%-14.14s", name.c_str());
    for (int64_t j = 0; j < C; ++j) std::printf("%6lld", static_cast<long long>(r.confusion[i * C + j]));
    std::printf("\n");
  }
  return 0;
}

int cmd_predict(Args& a) {
  std::string ckpt = a.need("checkpoint"), data = a.need("data");
  int64_t count = a.num("count", 10), start = a.num("start", 0);
  Kernels& dev = device_from(a);
  a.finish();
  AiT model = AiT::load(ckpt, dev);
  Dataset ds = load_dataset(data);
  if (start < 0 || start >= ds.n) throw Error("--start " + std::to_string(start) + " is outside " + data + "'s " + std::to_string(ds.n) + " images");
  count = std::min(count, ds.n - start);
  std::vector<int64_t> idx(count);
  for (int64_t i = 0; i < count; ++i) idx[i] = start + i;
  NoGradScope ng;
  Batch b = make_batch(ds, idx, dev, false, nullptr, &model);
  std::vector<float> p = softmax(model.forward(b.images, b.questions, {}, false, false, 0).logits).to_vector();
  const int64_t C = model.config().num_classes;
  std::printf("%-8s %-16s %-16s %s\n", "index", "predicted", "label", "probability");
  for (int64_t i = 0; i < count; ++i) {
    int64_t k = predicted_class(p, i, C);
    auto cls = [&](int64_t c) { return c < static_cast<int64_t>(ds.classes.size()) ? ds.classes[c] : std::to_string(c); };
    std::printf("%-8lld %-16s %-16s %.4f\n", static_cast<long long>(idx[i]), cls(k).c_str(), cls(ds.labels[idx[i]]).c_str(), p[i * C + k]);
  }
  return 0;
}

int cmd_info(Args& a) {
  if (a.positional.size() != 1) throw Error("usage: ait info FILE");
  a.finish();
  const std::string path = a.positional[0];
  SafeTensors st = read_safetensors(path);
  auto fmt = st.metadata.count("format") ? st.metadata.at("format") : "";
  if (fmt == "ait") {
    AiT m = AiT::load(path, cpu());
    std::printf("%s: AiT checkpoint, version %s, %lld parameters (%lld tensors), %lld tokens\nconfig %s\n", path.c_str(),
                st.metadata.at("version").c_str(), static_cast<long long>(m.parameter_count()),
                static_cast<long long>(st.tensors.size()), static_cast<long long>(m.config().tokens()),
                m.config().to_json().dump().c_str());
    return 0;
  }
  if (st.has("images") && st.has("labels")) {
    Dataset ds = dataset_from_safetensors(st);
    std::printf("%s: dataset, %lld images of %lldx%lldx%lld (CxHxW)%s, source: %s\n", path.c_str(), static_cast<long long>(ds.n),
                static_cast<long long>(ds.channels), static_cast<long long>(ds.height), static_cast<long long>(ds.width),
                ds.question_dim ? (", questions of " + std::to_string(ds.question_dim)).c_str() : "", ds.source.c_str());
    std::vector<int64_t> counts(ds.classes.size(), 0);
    for (int32_t l : ds.labels) counts[l]++;
    for (size_t c = 0; c < ds.classes.size(); ++c)
      std::printf("  class %zu %-16s %lld\n", c, ds.classes[c].c_str(), static_cast<long long>(counts[c]));
    for (int64_t c = 0; c < ds.channels; ++c) std::printf("  channel %lld mean %.4f std %.4f\n", static_cast<long long>(c), ds.mean[c], ds.std[c]);
    return 0;
  }
  std::printf("%s: safetensors file, %zu tensors\n", path.c_str(), st.tensors.size());
  for (auto& [name, t] : st.tensors) std::printf("  %-40s %s %s\n", name.c_str(), t.dtype.c_str(), shape_str(t.shape).c_str());
  return 0;
}

int cmd_dump(Args& a) {
  DumpOptions o;
  o.checkpoint = a.need("checkpoint");
  o.batch = a.need("batch");
  o.out = a.need("out");
  o.train_steps = a.num("train-steps", 0);
  o.lr = a.real("lr", 1e-4f);
  o.weight_decay = a.real("weight-decay", 0.01f);
  Kernels& dev = device_from(a);
  a.finish();
  dump(o, dev);
  std::printf("wrote %s\n", o.out.c_str());
  return 0;
}

int cmd_convert(Args& a) {
  if (a.positional.empty() || a.positional[0] != "idx") throw Error("usage: ait convert idx --images FILE --labels FILE --out OUT");
  std::string images = a.need("images"), labels = a.need("labels"), out = a.need("out");
  std::string classes = a.get("classes", "fashion-mnist");
  a.finish();
  std::vector<std::string> names;
  if (classes == "fashion-mnist") names = fashion_mnist_classes();
  else if (classes == "mnist") for (int i = 0; i < 10; ++i) names.push_back(std::to_string(i));
  else {
    size_t s = 0;
    while (s <= classes.size()) {
      size_t e = classes.find(',', s);
      if (e == std::string::npos) e = classes.size();
      names.push_back(classes.substr(s, e - s));
      s = e + 1;
    }
  }
  Dataset ds = dataset_from_idx(images, labels, names, images);
  save_dataset(out, ds);
  std::printf("wrote %s: %lld images %lldx%lldx%lld, %zu classes\n", out.c_str(), static_cast<long long>(ds.n),
              static_cast<long long>(ds.channels), static_cast<long long>(ds.height), static_cast<long long>(ds.width), ds.classes.size());
  return 0;
}

int cmd_viz(Args& a) {
  std::string ckpt = a.need("checkpoint"), data = a.need("data"), out = a.need("out");
  int64_t count = a.num("count", 4), start = a.num("start", 0);
  Kernels& dev = device_from(a);
  a.finish();
  AiT model = AiT::load(ckpt, dev);
  Dataset ds = load_dataset(data);
  for (const std::string& f : write_viz(model, ds, out, start, count)) std::printf("wrote %s\n", f.c_str());
  return 0;
}

int cmd_plot(Args& a) {
  if (a.positional.size() != 1) throw Error("usage: ait plot RUN_DIR [--out FILE.svg]");
  std::string out = a.get("out");
  a.finish();
  std::printf("wrote %s\n", write_curves(a.positional[0], out).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  std::string cmd = argv[1];
  try {
    Args a(argc, argv, 2, {"augment"});
    if (cmd == "train") return cmd_train(a);
    if (cmd == "eval") return cmd_eval(a);
    if (cmd == "predict") return cmd_predict(a);
    if (cmd == "info") return cmd_info(a);
    if (cmd == "dump") return cmd_dump(a);
    if (cmd == "convert") return cmd_convert(a);
    if (cmd == "viz") return cmd_viz(a);
    if (cmd == "plot") return cmd_plot(a);
    if (cmd == "devices") {
      a.finish();
      std::fputs(describe_devices().c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "ait: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return 2;
  } catch (const Error& e) {
    std::fprintf(stderr, "ait %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "ait %s: error: out of memory\n", cmd.c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ait %s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
}

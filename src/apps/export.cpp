// Checkpoint export/import: .npz (our own stored-zip writer/reader and .npy codec) and the
// authors' PyTorch state-dict naming. See export.h and tools/reference/authors_naming.md.
#include "apps/export.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "apps/convert.h"
#include "io/dataset.h"
#include "io/inflate.h"
#include "io/json.h"
#include "model/options.h"
#include "model/train.h"

namespace ait {

// ------------------------------------------------------------------ little-endian helpers

namespace {

void put16(std::vector<uint8_t>& o, uint32_t v) {
  o.push_back(uint8_t(v));
  o.push_back(uint8_t(v >> 8));
}
void put32(std::vector<uint8_t>& o, uint32_t v) {
  put16(o, v & 0xFFFF);
  put16(o, v >> 16);
}
uint32_t get16(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8); }
uint32_t get32(const uint8_t* p) { return get16(p) | (get16(p + 2) << 16); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

// ------------------------------------------------------------------ .npy

std::vector<uint8_t> npy_f32(const Shape& shape, const std::vector<float>& values) {
  if (numel(shape) != static_cast<int64_t>(values.size()))
    throw Error("npy: shape " + shape_str(shape) + " does not match " + std::to_string(values.size()) + " values");
  const std::vector<uint8_t> le = StTensor::from_f32(shape, values).bytes;  // little-endian whatever the host
  return write_npy("<f4", shape, le.data(), le.size());
}

// ------------------------------------------------------------------ zip (stored)

namespace {
constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kDosTime = 0, kDosDate = (0 << 9) | (1 << 5) | 1;  // 1980-01-01 00:00: reproducible files
}  // namespace

std::vector<uint8_t> zip_stored(const std::vector<ZipEntry>& entries) {
  if (entries.size() > 65535) throw Error("zip: more than 65535 entries needs zip64");
  std::vector<uint8_t> out, central;
  for (const ZipEntry& e : entries) {
    if (e.name.empty() || e.name.size() > 65535) throw Error("zip: bad entry name '" + e.name + "'");
    if (e.data.size() >= 0xFFFFFFFFull || out.size() >= 0xFFFFFFFFull)
      throw Error("zip: entry '" + e.name + "' needs zip64 (over 4 GiB)");
    uint32_t crc = crc32(e.data.data(), e.data.size());
    uint32_t offset = static_cast<uint32_t>(out.size()), size = static_cast<uint32_t>(e.data.size());
    put32(out, kLocalSig);
    put16(out, 20), put16(out, 0), put16(out, 0), put16(out, kDosTime), put16(out, kDosDate);
    put32(out, crc), put32(out, size), put32(out, size);
    put16(out, static_cast<uint32_t>(e.name.size())), put16(out, 0);
    out.insert(out.end(), e.name.begin(), e.name.end());
    out.insert(out.end(), e.data.begin(), e.data.end());
    put32(central, kCentralSig);
    put16(central, 20), put16(central, 20), put16(central, 0), put16(central, 0);
    put16(central, kDosTime), put16(central, kDosDate);
    put32(central, crc), put32(central, size), put32(central, size);
    put16(central, static_cast<uint32_t>(e.name.size())), put16(central, 0), put16(central, 0);
    put16(central, 0), put16(central, 0), put32(central, 0), put32(central, offset);
    central.insert(central.end(), e.name.begin(), e.name.end());
  }
  if (out.size() + central.size() >= 0xFFFFFFFFull) throw Error("zip: archive needs zip64 (over 4 GiB)");
  uint32_t cd_offset = static_cast<uint32_t>(out.size()), cd_size = static_cast<uint32_t>(central.size());
  out.insert(out.end(), central.begin(), central.end());
  put32(out, kEndSig);
  put16(out, 0), put16(out, 0);
  put16(out, static_cast<uint32_t>(entries.size())), put16(out, static_cast<uint32_t>(entries.size()));
  put32(out, cd_size), put32(out, cd_offset), put16(out, 0);
  return out;
}

std::vector<ZipEntry> unzip_stored(const std::vector<uint8_t>& b, const std::string& source) {
  if (b.size() < 22) throw Error(source + ": not a zip archive (too short)");
  size_t end = std::string::npos;
  for (size_t i = b.size() - 22 + 1; i-- > 0 && b.size() - i <= 22 + 65535;)
    if (get32(b.data() + i) == kEndSig) {
      end = i;
      break;
    }
  if (end == std::string::npos) throw Error(source + ": not a zip archive (no end-of-central-directory record)");
  const uint8_t* e = b.data() + end;
  uint32_t count = get16(e + 10), cd_size = get32(e + 12), cd_offset = get32(e + 16);
  if (get16(e + 4) != 0 || get16(e + 6) != 0 || get16(e + 8) != count)
    throw Error(source + ": multi-disk zip archives are not supported");
  if (uint64_t(cd_offset) + cd_size > end) throw Error(source + ": central directory lies outside the archive");
  std::vector<ZipEntry> out;
  size_t p = cd_offset;
  for (uint32_t k = 0; k < count; ++k) {
    if (p + 46 > uint64_t(cd_offset) + cd_size || get32(b.data() + p) != kCentralSig)
      throw Error(source + ": central directory entry " + std::to_string(k) + " is malformed");
    const uint8_t* c = b.data() + p;
    uint32_t method = get16(c + 10), crc = get32(c + 16), csize = get32(c + 20), usize = get32(c + 24);
    uint32_t nlen = get16(c + 28), xlen = get16(c + 30), clen = get16(c + 32), local = get32(c + 42);
    if (p + 46 + nlen > b.size())
      throw Error(source + ": central directory entry " + std::to_string(k) + " is truncated");
    ZipEntry z;
    z.name.assign(reinterpret_cast<const char*>(c + 46), nlen);
    std::string where = source + ": entry '" + z.name + "'";
    if (method != 0)
      throw Error(where + " is compressed (method " + std::to_string(method) + "); only stored entries are read");
    if (csize != usize) throw Error(where + ": stored entry with different compressed and uncompressed sizes");
    if (uint64_t(local) + 30 > b.size() || get32(b.data() + local) != kLocalSig)
      throw Error(where + ": bad local header");
    const uint8_t* l = b.data() + local;
    uint32_t lnlen = get16(l + 26), lxlen = get16(l + 28);
    if (lnlen != nlen || std::memcmp(l + 30, c + 46, nlen) != 0)
      throw Error(where + ": local header names a different file");
    if ((get16(l + 6) & 8) == 0 && (get32(l + 14) != crc || get32(l + 18) != csize || get32(l + 22) != usize))
      throw Error(where + ": local header disagrees with the central directory");
    uint64_t data_at = uint64_t(local) + 30 + lnlen + lxlen;
    if (data_at + usize > cd_offset) throw Error(where + ": data runs past the central directory");
    z.data.assign(b.begin() + data_at, b.begin() + data_at + usize);
    if (crc32(z.data.data(), z.data.size()) != crc) throw Error(where + ": CRC-32 mismatch");
    out.push_back(std::move(z));
    p += 46 + nlen + xlen + clen;
  }
  return out;
}

// ------------------------------------------------------------------ npz export

namespace {

// Every tensor of the model in spec order: parameters, then the memory buffers.
std::vector<std::pair<std::string, Tensor>> all_tensors(const AiT& model) {
  std::vector<std::pair<std::string, Tensor>> out = model.params();
  for (const Tensor& g : const_cast<AiT&>(model).memory()) out.push_back({g.name(), g});
  return out;
}

Json stats_json(const std::vector<float>& v) {
  Json a = Json::array();
  for (float x : v) a.push_back(x);
  return a;
}

}  // namespace

std::string npz_config_path(const std::string& npz_path) {
  if (ends_with(npz_path, ".npz")) return npz_path.substr(0, npz_path.size() - 4) + ".config.json";
  return npz_path + ".config.json";
}

size_t export_npz(const std::string& checkpoint, const std::string& out) {
  AiT model = AiT::load(checkpoint, cpu());
  std::vector<ZipEntry> entries;
  for (auto& [name, t] : all_tensors(model)) entries.push_back({name + ".npy", npy_f32(t.shape(), t.to_vector())});
  Json cfg = Json::object();
  cfg.set("format", "ait");
  cfg.set("version", "1");
  cfg.set("config", model.config().to_json());
  if (!model.data_mean.empty()) {
    cfg.set("data_mean", stats_json(model.data_mean));
    cfg.set("data_std", stats_json(model.data_std));
  }
  write_file_atomic(out, zip_stored(entries));
  std::string text = cfg.dump() + "\n";
  write_file_atomic(npz_config_path(out), std::vector<uint8_t>(text.begin(), text.end()));
  return entries.size();
}

// ------------------------------------------------------------------ authors' naming

std::vector<AuthorsName> authors_names(const Config& c) {
  std::vector<AuthorsName> v;
  const int64_t D = c.dim, pf = c.patch_features(), inner = c.heads * c.head_dim, m = c.memory_dim;
  const int64_t wm = c.memory_heads * m, TD = c.tokens() * D;
  auto add = [&](const std::string& ours, const std::string& theirs, const Shape& s) {
    v.push_back({ours, theirs, s});
  };
  auto ln = [&](const std::string& ours, const std::string& theirs, int64_t n) {
    add(ours + ".weight", theirs + ".weight", {n});
    add(ours + ".bias", theirs + ".bias", {n});
  };
  auto lin = [&](const std::string& ours, const std::string& theirs, int64_t out, int64_t in, bool bias) {
    add(ours + ".weight", theirs + ".weight", {out, in});
    if (bias) add(ours + ".bias", theirs + ".bias", {out});
  };
  ln("patch_embed.norm_in", "to_patch_embedding.1", pf);
  lin("patch_embed.proj", "to_patch_embedding.2", D, pf, true);
  ln("patch_embed.norm_out", "to_patch_embedding.3", D);
  if (c.question_dim > 0) {
    ln("question_embed.norm_in", "question_to_embedding.0", c.question_dim);
    lin("question_embed.proj", "question_to_embedding.1", D, c.question_dim, true);
    ln("question_embed.norm_out", "question_to_embedding.2", D);
  }
  for (int64_t i = 0; i < c.depth; ++i) {
    std::string o = "layers." + std::to_string(i) + ".", t = "transformer.layers." + std::to_string(i) + ".";
    ln(o + "attn_norm", t + "0.norm", D);
    lin(o + "attn.qkv", t + "0.fn.to_qkv", 3 * inner, D, false);
    lin(o + "attn.out", t + "0.fn.to_out.0", D, inner, true);
    ln(o + "gwl_norm", t + "1.norm", D);
    lin(o + "gwl.fc1", t + "1.fn.fc1", c.mlp_dim, D, true);
    lin(o + "gwl.fc2", t + "1.fn.fc2", D, c.mlp_dim, true);
    ln(o + "gwl.ffn_norm", t + "1.fn.norm", D);
    add(o + "gwl.memory", t + "1.fn.memoryupdate.memory", {c.memory_slots, m});
    lin(o + "gwl.write.q", t + "1.fn.memoryupdate.mha.w_qs", wm, m, false);
    lin(o + "gwl.write.k", t + "1.fn.memoryupdate.mha.w_ks", wm, D, false);
    lin(o + "gwl.write.v", t + "1.fn.memoryupdate.mha.w_vs", wm, D, false);
    lin(o + "gwl.write.out", t + "1.fn.memoryupdate.mha.fc", m, wm, false);
    ln(o + "gwl.write.norm", t + "1.fn.memoryupdate.mha.layer_norm", m);
    lin(o + "gwl.read", t + "1.fn.fc3", D, m, true);
  }
  ln("head.norm", "mlp_head.0", TD);
  lin("head.proj", "mlp_head.1", c.num_classes, TD, true);
  // Their tensors that the forward pass never reads (or that we keep in the config).
  add("", "pos_embedding", {1, c.patch_tokens() + 1, D});
  add("", "cls_token", {1, 1, D});
  add("", "to_patch_embedding_cnn.0.weight", {768, 3, 5, 5});  // hard-coded in their model
  add("", "to_patch_embedding_cnn.0.bias", {768});
  for (int64_t i = 0; i < c.depth; ++i)
    add("", "transformer.layers." + std::to_string(i) + ".1.fn.memoryupdate.beta", {});
  return v;
}

namespace {
bool is_write_out(const std::string& ours) { return ends_with(ours, ".gwl.write.out.weight"); }
bool is_beta(const std::string& theirs) { return ends_with(theirs, ".memoryupdate.beta"); }

// Per row, ours column j·m + f <-> theirs column f·H + j; `to_authors` picks the direction.
std::vector<float> permute_write_out(const std::vector<float>& w, int64_t rows, int64_t H, int64_t m, bool to_authors) {
  if (rows < 0 || H < 1 || m < 1 || static_cast<int64_t>(w.size()) != rows * H * m)
    throw Error("write.out.weight: " + std::to_string(w.size()) + " values, expected " + std::to_string(rows) + "x" +
                std::to_string(H * m));
  std::vector<float> out(w.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < H; ++j)
      for (int64_t f = 0; f < m; ++f) {
        const int64_t ours = r * H * m + j * m + f, theirs = r * H * m + f * H + j;
        if (to_authors) out[theirs] = w[ours];
        else out[ours] = w[theirs];
      }
  return out;
}
}  // namespace

std::vector<float> write_out_to_authors(const std::vector<float>& w, int64_t rows, int64_t H, int64_t m) {
  return permute_write_out(w, rows, H, m, true);
}

std::vector<float> write_out_from_authors(const std::vector<float>& w, int64_t rows, int64_t H, int64_t m) {
  return permute_write_out(w, rows, H, m, false);
}

SafeTensors to_authors(const AiT& model) {
  const Config& c = model.config();
  std::map<std::string, Tensor> ours;
  for (auto& [name, t] : all_tensors(model)) ours[name] = t;
  SafeTensors st;
  st.metadata["format"] = "ait-authors";
  st.metadata["config"] = c.to_json().dump();
  st.metadata["producer"] = "ait-export authors";
  if (!model.data_mean.empty()) {
    st.metadata["data_mean"] = stats_json(model.data_mean).dump();
    st.metadata["data_std"] = stats_json(model.data_std).dump();
  }
  for (const AuthorsName& a : authors_names(c)) {
    std::vector<float> values;
    if (a.ours.empty()) {
      values.assign(static_cast<size_t>(numel(a.shape)), 0.0f);
      if (is_beta(a.theirs)) values[0] = static_cast<float>(c.memory_momentum);
    } else {
      auto it = ours.find(a.ours);
      if (it == ours.end()) throw Error("model has no tensor '" + a.ours + "'");
      if (it->second.shape() != a.shape)
        throw Error("tensor '" + a.ours + "' has shape " + shape_str(it->second.shape()) + ", the mapping expects " +
                    shape_str(a.shape));
      values = it->second.to_vector();
      if (is_write_out(a.ours)) values = write_out_to_authors(values, c.memory_dim, c.memory_heads, c.memory_dim);
    }
    st.add(a.theirs, StTensor::from_f32(a.shape, values));
  }
  return st;
}

AiT from_authors(const SafeTensors& in, const Config& c, Kernels& dev) {
  // DataParallel saves every key under "module."; drop it when every key has it.
  const std::string prefix = "module.";
  bool all_prefixed = !in.tensors.empty();
  for (auto& [name, t] : in.tensors) all_prefixed = all_prefixed && name.compare(0, prefix.size(), prefix) == 0;
  std::map<std::string, const StTensor*> theirs;
  for (auto& [name, t] : in.tensors) theirs[all_prefixed ? name.substr(prefix.size()) : name] = &t;

  AiT model(c, dev, 0);
  std::map<std::string, Tensor> ours;
  for (auto& [name, t] : all_tensors(model)) ours[name] = t;
  std::set<std::string> known;
  for (const AuthorsName& a : authors_names(c)) {
    known.insert(a.theirs);
    auto it = theirs.find(a.theirs);
    if (a.ours.empty()) {
      if (it != theirs.end() && is_beta(a.theirs)) {
        const StTensor& s = *it->second;
        std::vector<float> b = s.dtype == "F32" ? s.f32() : std::vector<float>{};
        if (b.size() != 1 || std::fabs(b[0] - c.memory_momentum) > 1e-6)
          throw Error(in.source + ": tensor '" + a.theirs +
                      "' (the authors' memory momentum) must be one F32 value equal to the config's memory_momentum " +
                      std::to_string(c.memory_momentum));
      }
      continue;
    }
    if (it == theirs.end()) throw Error(in.source + ": tensor '" + a.theirs + "' (ours: '" + a.ours + "') is missing");
    const StTensor& s = *it->second;
    if (s.dtype != "F32")
      throw Error(in.source + ": tensor '" + a.theirs + "' has dtype " + s.dtype + ", expected F32");
    if (s.shape != a.shape)
      throw Error(in.source + ": tensor '" + a.theirs + "' has shape " + shape_str(s.shape) + ", the config needs " +
                  shape_str(a.shape));
    std::vector<float> values = s.f32();
    if (is_write_out(a.ours)) values = write_out_from_authors(values, c.memory_dim, c.memory_heads, c.memory_dim);
    ours.at(a.ours).copy_from(values);
  }
  for (auto& [name, t] : theirs)
    if (!known.count(name))
      throw Error(in.source + ": unexpected tensor '" + name + "' (not part of the authors' model for this config)");
  auto m = in.metadata.find("data_mean"), s = in.metadata.find("data_std");
  if (m != in.metadata.end() && s != in.metadata.end()) {
    Json jm = Json::parse(m->second, in.source + " data_mean"), js = Json::parse(s->second, in.source + " data_std");
    if (jm.size() != static_cast<size_t>(c.channels) || js.size() != jm.size())
      throw Error(in.source + ": data_mean/data_std must have one value per channel");
    for (size_t i = 0; i < jm.size(); ++i) {
      model.data_mean.push_back(static_cast<float>(jm[i].as_number()));
      model.data_std.push_back(static_cast<float>(js[i].as_number()));
    }
  }
  return model;
}

void export_authors(const std::string& checkpoint, const std::string& out) {
  AiT model = AiT::load(checkpoint, cpu());
  write_safetensors(out, to_authors(model));
}

void import_authors(const std::string& input, const std::string& config_path, const std::string& out) {
  SafeTensors st = read_safetensors(input);
  Config c;
  if (!config_path.empty()) {
    std::vector<uint8_t> text = read_file(config_path);
    c.update(Json::parse(reinterpret_cast<const char*>(text.data()), text.size(), config_path), config_path);
  } else if (st.metadata.count("config")) {
    c.update(Json::parse(st.metadata.at("config"), input + " config"), input + " config");
  } else {
    throw Error(input + ": no 'config' in __metadata__; give --config CONFIG.json");
  }
  c.validate();
  AiT model = from_authors(st, c, cpu());
  model.save(out);
}

// ------------------------------------------------------------------ logits

std::vector<float> checkpoint_logits(const std::string& checkpoint, const std::string& dataset, int64_t limit,
                                     int64_t batch_size, int64_t* n_out, int64_t* classes_out) {
  AiT model = AiT::load(checkpoint, cpu());
  Dataset ds = load_dataset(dataset);
  int64_t n = limit > 0 ? std::min(limit, ds.n) : ds.n;
  if (batch_size < 1) throw Error("batch size must be at least 1");
  check_batch_fits(model.config(), batch_size, n, false, "--batch-size");
  std::vector<float> out;
  for (int64_t s = 0; s < n; s += batch_size) {
    std::vector<int64_t> idx;
    for (int64_t i = s; i < std::min(n, s + batch_size); ++i) idx.push_back(i);
    Batch b = make_batch(ds, idx, cpu(), false, nullptr, &model);
    NoGradScope ng;
    ForwardResult r = model.forward(b.images, b.questions, Tensor(), false, false, 0);
    std::vector<float> l = r.logits.to_vector();
    out.insert(out.end(), l.begin(), l.end());
  }
  if (n_out) *n_out = n;
  if (classes_out) *classes_out = model.config().num_classes;
  return out;
}

}  // namespace ait

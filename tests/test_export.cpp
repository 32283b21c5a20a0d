// Export/import: the .npz writer re-read by our own zip and .npy reader, the authors' naming
// round trip (tensors byte for byte, identical logits), the write.out column permutation on a
// hand-made matrix, and the importer's errors.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "apps/convert.h"
#include "apps/export.h"
#include "io/inflate.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;

namespace {

// A file in the running test's temporary directory (removed when the test ends).
std::string tmp_path(const std::string& name) { return test_tmpdir() + "/" + name; }

// A model whose memory has been written once (unit rows), saved with data statistics.
std::string make_checkpoint(const Config& c, const std::string& name) {
  AiT model(c, cpu(), 11);
  Tensor images = random_tensor({4, c.channels, c.image_height, c.image_width}, 3, -2, 2);
  Tensor questions = c.question_dim ? random_tensor({4, c.question_dim}, 4) : Tensor();
  model.commit_memory(model.forward(images, questions, Tensor(), true, false, 0));
  model.data_mean.assign(c.channels, 0.25f);
  model.data_std.assign(c.channels, 0.5f);
  std::string path = tmp_path(name);
  model.save(path);
  return path;
}

std::vector<float> floats(const NpyArray& a) {
  EXPECT_EQ(a.descr, "<f4");
  std::vector<float> v(a.data.size() / 4);
  std::memcpy(v.data(), a.data.data(), v.size() * 4);
  return v;
}

std::vector<float> frozen_logits(const AiT& m, const Tensor& images, const Tensor& questions) {
  NoGradScope ng;
  return m.forward(images, questions, Tensor(), false, false, 0).logits.to_vector();
}

}  // namespace

TEST(ExportTest, NpyHeaderIsVersion1Aligned) {
  std::vector<uint8_t> b = npy_f32({2, 3}, {1, 2, 3, 4, 5, 6});
  ASSERT_GE(b.size(), 10u);
  EXPECT_EQ(b[6], 1);
  EXPECT_EQ(b[7], 0);
  size_t hlen = b[8] | (b[9] << 8);
  EXPECT_EQ((10 + hlen) % 64, 0u);
  std::string h(reinterpret_cast<const char*>(b.data() + 10), hlen);
  EXPECT_NE(h.find("'descr': '<f4'"), std::string::npos) << h;
  EXPECT_NE(h.find("'fortran_order': False"), std::string::npos) << h;
  EXPECT_NE(h.find("'shape': (2, 3)"), std::string::npos) << h;
  EXPECT_EQ(h.back(), '\n');
  EXPECT_NE(
      std::string(reinterpret_cast<const char*>(npy_f32({7}, std::vector<float>(7)).data()) + 10, 60).find("(7,)"),
      std::string::npos);
  EXPECT_NE(std::string(reinterpret_cast<const char*>(npy_f32({}, {1.5f}).data()) + 10, 60).find("'shape': ()"),
            std::string::npos);
  NpyArray a = parse_npy(b, "b");
  EXPECT_EQ(a.shape, (Shape{2, 3}));
  EXPECT_EQ(floats(a), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  NpyArray s = parse_npy(npy_f32({}, {1.5f}), "s");
  EXPECT_TRUE(s.shape.empty());
  EXPECT_EQ(floats(s), std::vector<float>{1.5f});
}

TEST(ExportTest, ZipRoundTripAndCorruption) {
  std::vector<ZipEntry> in = {{"a.npy", {1, 2, 3}}, {"dir/b.npy", {}}, {"c.npy", std::vector<uint8_t>(1000, 7)}};
  std::vector<uint8_t> z = zip_stored(in);
  std::vector<ZipEntry> out = unzip_stored(z, "z");
  ASSERT_EQ(out.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(out[i].name, in[i].name);
    EXPECT_EQ(out[i].data, in[i].data);
  }
  std::vector<uint8_t> bad = z;
  bad[30 + 5] ^= 1;  // first entry's first data byte
  try {
    unzip_stored(bad, "bad.npz");
    FAIL() << "corrupt data accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'a.npy': CRC-32 mismatch"), std::string::npos) << e.what();
  }
  EXPECT_THROW(unzip_stored(std::vector<uint8_t>(z.begin(), z.end() - 5), "cut"), Error);
}

TEST(ExportTest, NpzHoldsEveryTensorExactly) {
  Config c = micro_config(0);
  std::string ckpt = make_checkpoint(c, "npz.safetensors"), npz = tmp_path("x.npz");
  size_t n = export_npz(ckpt, npz);
  AiT model = AiT::load(ckpt, cpu());
  std::vector<ZipEntry> entries = unzip_stored(read_file(npz), npz);
  ASSERT_EQ(entries.size(), n);
  ASSERT_EQ(n, model.params().size() + model.memory().size());
  std::map<std::string, NpyArray> arrays;
  for (const ZipEntry& e : entries) arrays[e.name] = parse_npy(e.data, e.name);
  auto check = [&](const std::string& name, const Tensor& t) {
    auto it = arrays.find(name + ".npy");
    ASSERT_NE(it, arrays.end()) << name;
    EXPECT_EQ(it->second.shape, t.shape()) << name;
    EXPECT_EQ(it->second.descr, "<f4") << name;
    EXPECT_FALSE(it->second.fortran_order) << name;
    std::vector<float> v = t.to_vector();
    ASSERT_EQ(it->second.data.size(), v.size() * 4) << name;
    EXPECT_EQ(std::memcmp(it->second.data.data(), v.data(), v.size() * 4), 0) << name;
  };
  for (auto& [name, t] : model.params()) check(name, t);
  for (const Tensor& g : model.memory()) check(g.name(), g);
  EXPECT_EQ(entries.front().name, "patch_embed.norm_in.weight.npy");  // spec order
  std::vector<uint8_t> cfg = read_file(npz_config_path(npz));
  Json j = Json::parse(reinterpret_cast<const char*>(cfg.data()), cfg.size(), "config");
  EXPECT_EQ(j.at("format").as_string(), "ait");
  EXPECT_EQ(j.at("config").at("dim").as_int(), c.dim);
  EXPECT_EQ(j.at("data_std")[0].as_number(), 0.5);
}

TEST(ExportTest, WriteOutPermutationHandMade) {
  // H = 2 heads, m = 3 features; ours column j·m + f, theirs column f·H + j.
  const int64_t H = 2, m = 3, rows = 2;
  std::vector<float> ours(rows * H * m);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t col = 0; col < H * m; ++col) ours[r * H * m + col] = float(10 * r + col);
  std::vector<float> theirs = write_out_to_authors(ours, rows, H, m);
  // Their columns, in order: (f0,j0) (f0,j1) (f1,j0) (f1,j1) (f2,j0) (f2,j1) = ours 0 3 1 4 2 5.
  EXPECT_EQ(theirs, (std::vector<float>{0, 3, 1, 4, 2, 5, 10, 13, 11, 14, 12, 15}));
  EXPECT_EQ(write_out_from_authors(theirs, rows, H, m), ours);
}

namespace {
void authors_round_trip(const Config& c) {
  std::string ckpt = make_checkpoint(c, "orig.safetensors"), auth = tmp_path("authors.safetensors"),
              cfg = tmp_path("config.json"), back = tmp_path("back.safetensors");
  export_authors(ckpt, auth);
  SafeTensors st = read_safetensors(auth);
  EXPECT_TRUE(st.has("to_patch_embedding.2.weight"));
  EXPECT_TRUE(st.has("transformer.layers.1.1.fn.memoryupdate.mha.fc.weight"));
  EXPECT_EQ(st.get("pos_embedding").shape, (Shape{1, c.patch_tokens() + 1, c.dim}));
  EXPECT_EQ(st.get("to_patch_embedding_cnn.0.weight").shape, (Shape{768, 3, 5, 5}));
  EXPECT_EQ(st.get("transformer.layers.0.1.fn.memoryupdate.beta").f32(), std::vector<float>{0.9f});
  EXPECT_EQ(st.has("question_to_embedding.1.weight"), c.question_dim > 0);
  std::string text = c.to_json().dump();
  write_file_atomic(cfg, std::vector<uint8_t>(text.begin(), text.end()));
  import_authors(auth, cfg, back);

  SafeTensors a = read_safetensors(ckpt), b = read_safetensors(back);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.has(name)) << name;
    EXPECT_EQ(b.get(name).shape, t.shape) << name;
    EXPECT_EQ(b.get(name).bytes, t.bytes) << name;
  }
  EXPECT_EQ(a.metadata.at("data_mean"), b.metadata.at("data_mean"));

  AiT m1 = AiT::load(ckpt, cpu()), m2 = AiT::load(back, cpu());
  Tensor images = random_tensor({3, c.channels, c.image_height, c.image_width}, 21, -2, 2);
  Tensor questions = c.question_dim ? random_tensor({3, c.question_dim}, 22) : Tensor();
  std::vector<float> l1 = frozen_logits(m1, images, questions), l2 = frozen_logits(m2, images, questions);
  ASSERT_EQ(l1.size(), l2.size());
  EXPECT_EQ(std::memcmp(l1.data(), l2.data(), l1.size() * 4), 0);
}
}  // namespace

TEST(ExportTest, AuthorsRoundTripIsExact) { authors_round_trip(micro_config(0)); }
TEST(ExportTest, AuthorsRoundTripIsExactWithQuestion) { authors_round_trip(micro_config(3)); }

TEST(ExportTest, ImportErrorsNameTheTensor) {
  Config c = micro_config(0);
  AiT model(c, cpu(), 5);
  SafeTensors good = to_authors(model);
  good.source = "auth.safetensors";
  EXPECT_NO_THROW(from_authors(good, c, cpu()));
  auto expect_error = [&](SafeTensors st, const std::string& want) {
    try {
      from_authors(st, c, cpu());
      FAIL() << "accepted: " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  {
    SafeTensors st = good;
    st.tensors.erase("transformer.layers.1.1.fn.memoryupdate.mha.w_ks.weight");
    expect_error(
        st,
        "'transformer.layers.1.1.fn.memoryupdate.mha.w_ks.weight' (ours: 'layers.1.gwl.write.k.weight') is missing");
  }
  {
    SafeTensors st = good;
    st.tensors.erase("mlp_head.1.bias");
    st.add("mlp_head.1.bias", StTensor::from_f32({c.num_classes + 1}, std::vector<float>(c.num_classes + 1)));
    expect_error(st, "'mlp_head.1.bias' has shape [6]");
  }
  {
    SafeTensors st = good;
    st.add("transformer.layers.0.1.fn.extra.weight", StTensor::from_f32({1}, {0}));
    expect_error(st, "unexpected tensor 'transformer.layers.0.1.fn.extra.weight'");
  }
  {
    SafeTensors st = good;  // their unused tensors may be absent
    st.tensors.erase("pos_embedding");
    st.tensors.erase("cls_token");
    EXPECT_NO_THROW(from_authors(st, c, cpu()));
  }
  {
    SafeTensors st;  // DataParallel's "module." prefix
    for (auto& [name, t] : good.tensors) st.add("module." + name, t);
    AiT m = from_authors(st, c, cpu());
    EXPECT_EQ(m.param("head.proj.weight").to_vector(), model.param("head.proj.weight").to_vector());
  }
}

// Datasets with an image_index (each image stored once, rows pointing at it) read, train and
// evaluate exactly as the same rows with every image written out per row; crafted indices are
// refused naming the file and the row; files without an index load as before.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "apps/convert.h"
#include "model/train.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;

namespace {

// 61 rows over 13 stored quadrant images (label: the image's quadrant), 3 question features.
Dataset indexed_dataset() {
  const Dataset base = quadrant_dataset(13, 21);
  Dataset ds = base;
  ds.n = 61, ds.question_dim = 3;
  ds.labels.clear();
  Rng rng(4);
  for (int64_t r = 0; r < ds.n; ++r) {
    const int32_t k = int32_t(rng.below(13));
    ds.image_index.push_back(k);
    ds.labels.push_back(base.labels[size_t(k)]);
    for (int j = 0; j < 3; ++j) ds.questions.push_back(rng.uniform(-1.f, 1.f));
  }
  return ds;
}

// The same rows with each row's image copied out, and the indexed file's mean and std.
Dataset expanded(const Dataset& ds) {
  Dataset out = ds;
  out.image_index.clear();
  out.images.clear();
  for (int64_t r = 0; r < ds.n; ++r) {
    const uint8_t* p = ds.row_image(r);
    out.images.insert(out.images.end(), p, p + ds.image_bytes());
  }
  return out;
}

}  // namespace

TEST(ImageIndex, TrainsAndEvaluatesAsExpandedRows) {
  const std::string dir = fresh_tmpdir("index");
  const Dataset built = indexed_dataset();
  // Statistics are over the 13 stored images, not weighted by how many rows show each.
  EXPECT_EQ(built.mean, quadrant_dataset(13, 21).mean);
  EXPECT_EQ(built.std, quadrant_dataset(13, 21).std);
  save_dataset(dir + "/indexed.safetensors", built);
  save_dataset(dir + "/expanded.safetensors", expanded(built));
  const Dataset a = load_dataset(dir + "/indexed.safetensors"), b = load_dataset(dir + "/expanded.safetensors");
  ASSERT_EQ(a.image_count(), 13);
  ASSERT_EQ(a.image_index, built.image_index);
  ASSERT_TRUE(b.image_index.empty());  // a file without image_index: row r shows image r
  ASSERT_EQ(b.image_count(), 61);
  std::vector<int64_t> rows = {60, 0, 7, 7, 33};
  for (const Dataset* d : {&a, &b}) ASSERT_EQ(d->n, 61);
  Batch ba = make_batch(a, rows, cpu(), false, nullptr, nullptr),
        bb = make_batch(b, rows, cpu(), false, nullptr, nullptr);
  EXPECT_EQ(ba.images.to_vector(), bb.images.to_vector());
  EXPECT_EQ(ba.questions.to_vector(), bb.questions.to_vector());

  TrainOptions oa = small_train_options(dir + "/a", dir + "/indexed.safetensors");
  TrainOptions ob = small_train_options(dir + "/b", dir + "/expanded.safetensors");
  oa.epochs = ob.epochs = 2;
  oa.log_every = ob.log_every = 1;
  train(oa, cpu());
  train(ob, cpu());
  expect_same_metrics(dir + "/a", dir + "/b");  // every step's loss and the validation, bit for bit
  expect_same_tensors(dir + "/a/model.safetensors", dir + "/b/model.safetensors");

  AiT model = AiT::load(dir + "/a/model.safetensors", cpu());
  const EvalResult ea = evaluate(model, a, 16, MemoryEval::Frozen), eb = evaluate(model, b, 16, MemoryEval::Frozen);
  EXPECT_EQ(ea.correct, eb.correct);
  EXPECT_EQ(ea.ce, eb.ce);
  NoGradScope no_grad;
  std::vector<int64_t> all(61);
  for (int64_t r = 0; r < 61; ++r) all[size_t(r)] = r;
  Batch fa = make_batch(a, all, cpu(), false, nullptr, &model), fb = make_batch(b, all, cpu(), false, nullptr, &model);
  EXPECT_EQ(model.forward(fa.images, fa.questions, Tensor(), false, false, 0).logits.to_vector(),
            model.forward(fb.images, fb.questions, Tensor(), false, false, 0).logits.to_vector());
}

TEST(ImageIndex, SplitKeepsOnlyTheImagesEachPartShows) {
  Dataset train = indexed_dataset();
  const Dataset orig = train;
  Dataset val = split_dataset(train, 17, 3);
  ASSERT_EQ(val.n + train.n, orig.n);
  EXPECT_LE(val.image_count(), 13);
  EXPECT_LE(train.image_count(), 13);
  validate_dataset(val, "val");
  validate_dataset(train, "train");
  // Rows keep their order: walking the original rows visits each part's rows in turn.
  int64_t iv = 0, it = 0;
  for (int64_t r = 0; r < orig.n; ++r) {
    const bool to_val = iv < val.n && val.labels[size_t(iv)] == orig.labels[size_t(r)] &&
                        std::equal(orig.row_image(r), orig.row_image(r) + 144, val.row_image(iv)) &&
                        val.questions[size_t(iv * 3)] == orig.questions[size_t(r * 3)];
    const Dataset& part = to_val ? val : train;
    int64_t& i = to_val ? iv : it;
    ASSERT_LT(i, part.n) << "row " << r;
    EXPECT_TRUE(std::equal(orig.row_image(r), orig.row_image(r) + 144, part.row_image(i))) << "row " << r;
    EXPECT_EQ(part.questions[size_t(i * 3 + 2)], orig.questions[size_t(r * 3 + 2)]);
    ++i;
  }
  EXPECT_EQ(iv, 17);
  EXPECT_EQ(it, 44);
}

TEST(ImageIndex, CraftedIndicesAreRefusedNamingFileAndRow) {
  const std::string dir = fresh_tmpdir("crafted");
  const Dataset ds = indexed_dataset();
  auto load_with = [&](const std::string& name, const std::function<void(SafeTensors&)>& edit) {
    SafeTensors st = dataset_to_safetensors(ds);
    edit(st);
    const std::string path = dir + "/" + name + ".safetensors";
    write_safetensors(path, st);
    const std::string e = error_of([&] { load_dataset(path); });
    EXPECT_NE(e.find(path), std::string::npos) << e;
    return e;
  };
  auto set_index = [](std::vector<int32_t> v, const std::string& dtype, const Shape& shape) {
    return [v, dtype, shape](SafeTensors& st) {
      st.tensors.erase("image_index");
      if (dtype == "I64") {
        std::vector<int64_t> w(v.begin(), v.end());
        st.add("image_index", StTensor::from_i64(shape, w));
      } else {
        st.add("image_index", StTensor::from_i32(shape, v));
      }
    };
  };
  std::vector<int32_t> idx = ds.image_index;
  idx[7] = 13;  // one past the 13 stored images
  EXPECT_NE(load_with("high", set_index(idx, "I32", {61})).find("row 7 refers to image 13, outside [0, 13)"),
            std::string::npos);
  idx = ds.image_index;
  idx[3] = -1, idx[40] = 99;
  EXPECT_NE(load_with("negative", set_index(idx, "I32", {61})).find("row 3 refers to image -1"), std::string::npos);
  EXPECT_NE(load_with("i64", set_index(ds.image_index, "I64", {61})).find("dtype is I64, expected I32"),
            std::string::npos);
  EXPECT_NE(load_with("rank", set_index(ds.image_index, "I32", {61, 1})).find("image_index"), std::string::npos);
  idx = ds.image_index;
  idx.pop_back();
  EXPECT_NE(load_with("short", set_index(idx, "I32", {60})).find("'labels'"), std::string::npos);
  // Without image_index, images must again be one per row.
  EXPECT_NE(load_with("no-index", [](SafeTensors& st) { st.tensors.erase("image_index"); }).find("labels"),
            std::string::npos);
}

// Training options checked before a run starts (src/model/options.cpp): every number in its
// range with one error naming the option, a batch bounded by the data and a memory estimate,
// and a resumed run refusing --model, --config and --set values that would change its config.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "io/inflate.h"
#include "model/options.h"
#include "model/train.h"
#include "testutil.h"

using namespace ait;
using namespace ait::test;
namespace fs = std::filesystem;

namespace {

// The message of what fn throws, and whether it was an OptionError.
struct Thrown {
  std::string message = "(no error)";
  bool option_error = false;
};
Thrown thrown(const std::function<void()>& fn) {
  Thrown t;
  try {
    fn();
  } catch (const OptionError& e) {
    t.message = e.what(), t.option_error = true;
  } catch (const Error& e) {
    t.message = e.what();
  }
  return t;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

const float kNaN = std::numeric_limits<float>::quiet_NaN(), kInf = std::numeric_limits<float>::infinity();

}  // namespace

TEST(Options, EveryNumberIsRangeChecked) {
  const std::string dir = fresh_tmpdir("numbers");
  const std::string data = write_quadrant_dataset(dir, 20, 1);
  struct Case {
    std::function<void(TrainOptions&)> mutate;
    std::string want;
  };
  const std::vector<Case> cases = {
      {[](TrainOptions& o) { o.lr = kNaN; }, "option --lr: nan is out of range (must be above 0"},
      {[](TrainOptions& o) { o.lr = kInf; }, "option --lr: inf is out of range"},
      {[](TrainOptions& o) { o.lr = -1; }, "option --lr: -1 is out of range"},
      {[](TrainOptions& o) { o.lr = 0; }, "option --lr: 0 is out of range"},
      {[](TrainOptions& o) { o.weight_decay = kNaN; }, "option --weight-decay: nan is out of range"},
      {[](TrainOptions& o) { o.weight_decay = -0.5f; }, "option --weight-decay: -0.5 is out of range"},
      {[](TrainOptions& o) { o.weight_decay = 101; }, "(must be at least 0 and at most 100)"},
      {[](TrainOptions& o) { o.batch_size = 0; }, "option --batch-size: 0 is out of range (must be in [1, 16777216])"},
      {[](TrainOptions& o) { o.batch_size = (int64_t(1) << 24) + 1; }, "option --batch-size: 16777217 is out of range"},
      {[](TrainOptions& o) { o.epochs = 0; }, "option --epochs: 0 is out of range (must be in [1, 1000000])"},
      {[](TrainOptions& o) { o.warmup = -2; }, "option --warmup: -2 is out of range"},
      {[](TrainOptions& o) { o.seed = -1; }, "option --seed: -1 is out of range"},
      {[](TrainOptions& o) { o.log_every = 0; }, "option --log-every: 0 is out of range"},
      {[](TrainOptions& o) { o.limit_train = -3; }, "option --limit: -3 is out of range"},
      {[](TrainOptions& o) { o.stop_after_epochs = -1; }, "option --stop-after: -1 is out of range"},
      {[](TrainOptions& o) { o.out.clear(); }, "option --out is required"},
      {[](TrainOptions& o) { o.overrides.push_back("hopfield_beta=nan"); }, "'hopfield_beta' must be a finite number"},
      {[](TrainOptions& o) { o.overrides.push_back("write_dropout=inf"); }, "'write_dropout' must be a finite number"},
      {[](TrainOptions& o) { o.overrides.push_back("depth=2.5"); }, "'depth' must be an integer, not 2.5"},
      {[](TrainOptions& o) { o.overrides.push_back("dim=1e400"); }, "'dim' must be a finite number"},
      {[](TrainOptions& o) { o.overrides.push_back("dim"); }, "option --set dim: expected KEY=VALUE"},
      {[](TrainOptions& o) { o.model = "huge"; }, "option --model: unknown preset 'huge'"},
  };
  for (const Case& c : cases) {
    TrainOptions o = small_train_options(dir + "/run", data);
    c.mutate(o);
    const Thrown t = thrown([&] { validate_train_options(o); });
    EXPECT_TRUE(t.option_error) << c.want << ": " << t.message;
    EXPECT_TRUE(contains(t.message, c.want)) << "want: " << c.want << "\ngot:  " << t.message;
    // train() checks first: nothing is written.
    EXPECT_EQ(thrown([&] { train(o, cpu()); }).message, t.message);
    EXPECT_FALSE(fs::exists(dir + "/run")) << c.want;
  }
  EXPECT_EQ(thrown([&] { validate_train_options(small_train_options(dir + "/run", data)); }).message, "(no error)");
}

// A value the config refuses is a config error (status 1 on the command line), naming the key
// and its range; a value that is not a number at all is an option error.
TEST(Options, ConfigRangesNameTheKey) {
  const std::string dir = fresh_tmpdir("ranges");
  const std::string data = write_quadrant_dataset(dir, 20, 1);
  TrainOptions o = small_train_options(dir + "/run", data);
  o.overrides.push_back("depth=1000000000");
  Thrown t = thrown([&] { validate_train_options(o); });
  EXPECT_FALSE(t.option_error);
  EXPECT_EQ(t.message, "config: key 'depth' is 1000000000, outside its range [1, 1024]");
  o.overrides.back() = "memory_momentum=1";
  EXPECT_EQ(thrown([&] { validate_train_options(o); }).message,
            "config: key 'memory_momentum' is 1, outside its range (0, 1)");
}

// The estimate scales with the images: a budget of the model plus k images admits a batch of k
// and refuses k + 1, saying k is the most; a batch larger than the data counts as the data.
TEST(Options, BatchIsBoundedByTheDataAndTheMemoryEstimate) {
  Config c = micro_config(0);
  const uint64_t per_image = activation_bytes_per_image(c, true);
  const uint64_t fixed = uint64_t(c.stored_values()) * 4 * 4;  // weights, gradients, two AdamW moments
  EXPECT_EQ(per_image, 2 * activation_bytes_per_image(c, false));
  const int64_t k = 37;
  const uint64_t budget = fixed + uint64_t(k) * per_image;
  EXPECT_EQ(thrown([&] { check_batch_fits(c, k, 1000, true, "--batch-size", budget); }).message, "(no error)");
  EXPECT_EQ(thrown([&] { check_batch_fits(c, 100000000, k, true, "--batch-size", budget); }).message, "(no error)");
  Thrown t = thrown([&] { check_batch_fits(c, 100000000, 1000, true, "--batch-size", budget); });
  EXPECT_TRUE(t.option_error);
  EXPECT_TRUE(contains(t.message, "option --batch-size 100000000: a training step on 1000 image(s) needs about"))
      << t.message;
  EXPECT_TRUE(contains(t.message, "use --batch-size 37 or less")) << t.message;
  t = thrown([&] { check_batch_fits(c, 1, 1000, true, "--batch-size", fixed); });
  EXPECT_TRUE(contains(t.message, "the model does not fit even with one image")) << t.message;

  // The estimate holds at least the attention scores and their softmax, per head and layer.
  Config more_heads = c;
  more_heads.heads = c.heads + 1;
  const uint64_t T = uint64_t(c.tokens());
  EXPECT_GE(activation_bytes_per_image(more_heads, false) - activation_bytes_per_image(c, false),
            uint64_t(c.depth) * 2 * T * T * 4);
  Config deeper = c;
  deeper.depth = c.depth + 1;  // linear in the depth
  const uint64_t one_layer = activation_bytes_per_image(deeper, false) - activation_bytes_per_image(c, false);
  deeper.depth = c.depth + 2;
  EXPECT_EQ(activation_bytes_per_image(deeper, false) - activation_bytes_per_image(c, false), 2 * one_layer);

  // Through validate_train_options: the 30-image dataset bounds a huge --batch-size.
  const std::string dir = fresh_tmpdir("batch");
  const std::string data = write_quadrant_dataset(dir, 30, 2);
  TrainOptions o = small_train_options(dir + "/run", data);
  o.batch_size = 100000000;
  EXPECT_EQ(thrown([&] { validate_train_options(o); }).message,
            "option --batch-size: 100000000 is out of range "
            "(must be in [1, 16777216])");
  o.batch_size = 1 << 24;
  EXPECT_EQ(thrown([&] { validate_train_options(o); }).message, "(no error)");
  t = thrown([&] { validate_train_options(o, 1 << 20); });  // 1 MiB holds the model, not 30 images
  EXPECT_TRUE(t.option_error);
  EXPECT_TRUE(contains(t.message, "a training step on 30 image(s)")) << t.message;
}

// A resumed run keeps its config: --set, --config and --model may restate it, never change it.
TEST(Options, ResumeRefusesAChangedConfig) {
  const std::string dir = fresh_tmpdir("resume");
  const std::string data = write_quadrant_dataset(dir, 20, 3);
  TrainOptions o = small_train_options(dir + "/run", data);
  // A committed run of one epoch: its config is tiny, the dataset's keys and the overrides.
  o.epochs = 1;
  train(o, cpu());
  o.epochs = 2;
  o.resume = dir + "/run";
  EXPECT_EQ(thrown([&] { validate_train_options(o); }).message, "(no error)");  // the same options
  TrainOptions bare = o;
  bare.model.clear(), bare.overrides.clear();
  EXPECT_EQ(thrown([&] { validate_train_options(bare); }).message, "(no error)");  // nothing restated

  TrainOptions changed = o;
  changed.overrides.push_back("dim=32");
  Thrown t = thrown([&] { validate_train_options(changed); });
  EXPECT_TRUE(t.option_error);
  EXPECT_EQ(t.message, "option --set dim=32 contradicts the config of the run in --resume " + o.resume +
                           ": key 'dim' would be 32 against the run's 16 (a resumed run keeps its config; "
                           "leave the option out)");
  changed = o;
  changed.model = "medium";  // the overrides restate every key of medium's but its depth
  t = thrown([&] { validate_train_options(changed); });
  EXPECT_TRUE(contains(t.message, "option --model medium contradicts")) << t.message;
  EXPECT_TRUE(contains(t.message, "key 'depth' would be 6 against the run's 2")) << t.message;
  changed = bare;
  changed.model = "tiny";  // tiny's dim 128 is not the run's 16
  t = thrown([&] { validate_train_options(changed); });
  EXPECT_TRUE(contains(t.message, "option --model tiny contradicts")) << t.message;
  EXPECT_TRUE(contains(t.message, "key 'dim' would be 128 against the run's 16")) << t.message;
  { std::ofstream(dir + "/depth.json") << "{\"depth\": 3}"; }
  changed = o;
  changed.config_json = dir + "/depth.json";
  t = thrown([&] { validate_train_options(changed); });
  EXPECT_TRUE(contains(t.message, "option --config " + dir + "/depth.json contradicts")) << t.message;
  EXPECT_TRUE(contains(t.message, "key 'depth' would be 3 against the run's 2")) << t.message;
  // train() refuses before touching the run folder.
  const auto before = fs::last_write_time(dir + "/run/model.safetensors");
  const std::vector<uint8_t> metrics = read_file(dir + "/run/metrics.jsonl");
  EXPECT_TRUE(thrown([&] { train(changed, cpu()); }).option_error);
  EXPECT_EQ(fs::last_write_time(dir + "/run/model.safetensors"), before);
  EXPECT_EQ(read_file(dir + "/run/metrics.jsonl"), metrics);
}

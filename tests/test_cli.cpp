// Tests for the command lines (src/apps/cli.*): the option parser on its own, and the built
// programs: --help on every program and command, usage errors with status 2, the idx alias,
// and `ait predict --memory-eval`.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cli.h"
#include "apps/convert_cli.h"
#include "io/inflate.h"
#include "testutil.h"

using namespace ait;
using test::fresh_tmpdir;
using test::run_program;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// The UsageError message that parsing `args` against `c` gives, or "(no error)".
std::string usage_error(const cli::Command& c, const std::vector<std::string>& args) {
  try {
    cli::Args a(c, args);
  } catch (const cli::UsageError& e) {
    return e.what();
  }
  return "(no error)";
}

const cli::Command kDemo = {"demo run",
                            "a command for the tests",
                            {{"in", "FILE", "input", cli::kRequired},
                             {"n", "N", "a count"},
                             {"x", "X", "a number"},
                             {"tag", "T", "a tag", cli::kRepeatable},
                             {"fast", "", "a flag"}},
                            {"WHAT"}};

}  // namespace

// ---------------------------------------------------------------------------------------------
// The parser

TEST(CliParser, ValuesFlagsRepeatsAndPositionals) {
  cli::Args a(kDemo, {"go", "--in", "f.txt", "--tag=a", "--fast", "--tag", "b=c", "--n", "-3"});
  EXPECT_FALSE(a.help());
  EXPECT_EQ(a.positionals(), std::vector<std::string>{"go"});
  EXPECT_EQ(a.get("in"), "f.txt");
  EXPECT_EQ(a.all("tag"), (std::vector<std::string>{"a", "b=c"}));
  EXPECT_TRUE(a.has("fast"));
  EXPECT_FALSE(a.has("x"));
  EXPECT_EQ(a.get("x", "dflt"), "dflt");
  EXPECT_EQ(a.integer("n", 7), -3);
  EXPECT_EQ(a.integer("x", 7), 7);                                       // absent: the fallback
  EXPECT_TRUE(cli::Args(kDemo, {"--in", "f", "--bogus", "-h"}).help());  // help wins over errors
}

TEST(CliParser, UsageErrorsNameTheOption) {
  EXPECT_TRUE(contains(usage_error(kDemo, {"w", "--in", "f", "--bogus", "1"}), "unknown option --bogus"));
  EXPECT_TRUE(contains(usage_error(kDemo, {"w", "--in", "f", "--in", "g"}), "--in given more than once"));
  EXPECT_TRUE(contains(usage_error(kDemo, {"w", "--in"}), "--in needs a value"));
  EXPECT_TRUE(contains(usage_error(kDemo, {"w", "--in", "--fast"}), "--in needs a value"));
  EXPECT_TRUE(contains(usage_error(kDemo, {"w", "--in", "f", "--fast=1"}), "--fast is a flag"));
  EXPECT_TRUE(contains(usage_error(kDemo, {"w"}), "missing required option --in FILE"));
  EXPECT_TRUE(contains(usage_error(kDemo, {"--in", "f"}), "missing WHAT"));
  EXPECT_TRUE(contains(usage_error(kDemo, {"w", "v", "--in", "f"}), "unexpected argument 'v'"));
  EXPECT_TRUE(contains(usage_error(kDemo, {"w", "-q", "--in", "f"}), "unknown option '-q'"));
  EXPECT_EQ(usage_error(kDemo, {"w", "--in", "f", "--tag", "1", "--tag", "2"}), "(no error)");
}

TEST(CliParser, NumbersAreParsedInOnePlace) {
  auto err = [](const std::string& value, const std::function<void(const cli::Args&)>& use) {
    try {
      use(cli::Args(kDemo, {"w", "--in", "f", "--n", value, "--x", value}));
    } catch (const cli::UsageError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  auto n = [](const cli::Args& a) { a.integer("n", 0, 1, 100); };
  auto x = [](const cli::Args& a) { a.real("x", 0); };
  EXPECT_EQ(err("100", n), "(no error)");
  EXPECT_EQ(err("12abc", n), "option --n: '12abc' is not an integer");
  EXPECT_EQ(err("1.5", n), "option --n: '1.5' is not an integer");
  EXPECT_EQ(err("99999999999999999999", n), "option --n: 99999999999999999999 is out of range (must be in [1, 100])");
  EXPECT_EQ(err("-99999999999999999999", n), "option --n: -99999999999999999999 is out of range (must be in [1, 100])");
  EXPECT_EQ(err("0", n), "option --n: 0 is out of range (must be in [1, 100])");
  EXPECT_EQ(err("", n), "option --n: '' is not an integer");
  EXPECT_EQ(err("2.5e-3", x), "(no error)");
  EXPECT_EQ(err("nan", x), "option --x: 'nan' is not a finite number");
  EXPECT_EQ(err("1e999", x), "option --x: '1e999' is not a finite number");
  EXPECT_EQ(err("0.1x", x), "option --x: '0.1x' is not a finite number");
  auto lr = [](const cli::Args& a) { a.real("x", 0, 0, 10, /*above_lo=*/true); };
  EXPECT_EQ(err("-1", lr), "option --x: -1 is out of range (must be above 0 and at most 10)");
  EXPECT_EQ(err("0", lr), "option --x: 0 is out of range (must be above 0 and at most 10)");
  EXPECT_EQ(err("10.5", lr), "option --x: 10.5 is out of range (must be above 0 and at most 10)");
  EXPECT_EQ(err("inf", lr), "option --x: 'inf' is not a finite number");
  EXPECT_EQ(err("10", lr), "(no error)");
  EXPECT_EQ(err("-3", [](const cli::Args& a) { a.real("x", 0, 0, HUGE_VAL); }),
            "option --x: -3 is out of range (must be at least 0)");
  cli::Args a(kDemo, {"w", "--in", "f", "--x", "2.5e-3", "--n", "42"});
  EXPECT_DOUBLE_EQ(a.real("x", 0), 2.5e-3);
  EXPECT_EQ(a.integer("n", 0, 1, 100), 42);
}

TEST(CliParser, UsageListsEveryOption) {
  const std::string u = cli::usage(kDemo);
  EXPECT_EQ(u.rfind("usage: demo run WHAT --in FILE [options]\n", 0), 0u) << u;
  for (const char* part : {"--n N", "--x X", "--tag T", "(repeatable)", "--fast", "(required)", "-h, --help"})
    EXPECT_TRUE(contains(u, part)) << part << "\n" << u;
}

TEST(CliParser, ClassListsRefuseEmptyAndRepeatedNames) {
  EXPECT_EQ(parse_class_list("a,b,c", "--classes"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(parse_class_list("one", "--classes"), std::vector<std::string>{"one"});
  EXPECT_TRUE(contains(test::error_of([] { parse_class_list("a,,b", "--classes"); }), "empty class name"));
  EXPECT_TRUE(contains(test::error_of([] { parse_class_list("a,b,", "--classes"); }), "empty class name"));
  std::string e = test::error_of([] { parse_class_list("x,y,x", "--classes"); });
  EXPECT_TRUE(contains(e, "--classes") && contains(e, "'x' appears more than once")) << e;
}

// ---------------------------------------------------------------------------------------------
// The programs

TEST(CliPrograms, HelpOnEveryProgramAndCommand) {
  std::vector<std::pair<std::string, std::string>> runs = {{"ait", "--help"},    {"ait", "-h"},
                                                           {"ait", "help"},      {"ait-convert", "--help"},
                                                           {"ait-export", "-h"}, {"ait-clevr-report", "--help"}};
  for (const char* c : {"train", "eval", "predict", "info", "dump", "convert", "devices", "viz", "plot"})
    runs.push_back({"ait", std::string(c) + " --help"});
  for (const cli::Subcommand& s : convert_program().commands)
    runs.push_back({"ait-convert", s.spec.name.substr(s.spec.name.find(' ') + 1) + " -h"});
  for (const char* c : {"npz", "authors", "import-authors", "logits"})
    runs.push_back({"ait-export", c + std::string(" --help")});
  for (const auto& [program, args] : runs) {
    std::string out;
    EXPECT_EQ(run_program(program, args, &out), 0) << program << " " << args << "\n" << out;
    const std::string word = args.substr(0, args.find(' '));
    const bool command = word != "--help" && word != "-h" && word != "help";
    const std::string name = command ? program + " " + word : program;
    EXPECT_TRUE(contains(out, "usage: " + name)) << program << " " << args << "\n" << out;
    if (command) {
      EXPECT_TRUE(contains(out, "-h, --help")) << out;
    }
  }
}

TEST(CliPrograms, HelpShowsEachCommandsOptions) {
  std::string out;
  ASSERT_EQ(run_program("ait", "predict --help", &out), 0);
  for (const char* o : {"--checkpoint CKPT", "--data DATA", "--count N", "--start I", "--batch-size B",
                        "--memory-eval frozen|update", "--device D"})
    EXPECT_TRUE(contains(out, o)) << o << "\n" << out;
  ASSERT_EQ(run_program("ait", "train -h", &out), 0);
  EXPECT_TRUE(contains(out, "--set KEY=VALUE") && contains(out, "(repeatable)") && contains(out, "--augment")) << out;
  // The folder converter documents its rules.
  ASSERT_EQ(run_program("ait-convert", "folder --help", &out), 0);
  for (const char* rule : {"sub-folder", "sorted", ".png, .pgm, .ppm", "alpha is", "palettes are expanded", "16-bit",
                           "interlaced", "P2/P3", "HxW", "height x width"})
    EXPECT_TRUE(contains(out, rule)) << rule << "\n" << out;
}

TEST(CliPrograms, UsageErrorsExitTwoNamingTheOptionAndCommand) {
  struct Case {
    std::string program, args, command, expect;
  };
  const std::vector<Case> cases = {
      {"ait", "train --data d --out o --bogus 3", "ait train", "unknown option --bogus"},
      {"ait", "eval --checkpoint a --checkpoint b --data d", "ait eval", "--checkpoint given more than once"},
      {"ait", "train --data", "ait train", "--data needs a value"},
      {"ait", "train --data d --out o --epochs many", "ait train", "option --epochs: 'many' is not an integer"},
      {"ait", "predict --checkpoint c --data d --memory-eval later", "ait predict", "'later' is not one of"},
      {"ait", "info", "usage: ait info", "usage: ait info [FILE]"},  // no arguments at all: the usage
      {"ait", "frobnicate", "ait", "unknown command 'frobnicate'"},
      {"ait-convert", "npy --images x --labels y --layout nhwc --out o --colour red", "ait-convert npy",
       "unknown option --colour"},
      {"ait-convert", "folder --input a --input b --out o", "ait-convert folder", "--input given more than once"},
      {"ait-convert", "folder --input a --out o --size 32by32", "ait-convert folder", "--size: '32by32'"},
      {"ait-convert", "triangle --out t --train -5", "ait-convert triangle", "--train: -5 is out of range"},
      {"ait-export", "npz --checkpoint c --out a --out b", "ait-export npz", "--out given more than once"},
      {"ait-export", "logits --checkpoint c --data d --out o --limt 3", "ait-export logits", "unknown option --limt"},
      {"ait-clevr-report", "--checkpoint c --data d --bogus", "ait-clevr-report", "unknown option --bogus"},
      {"ait-clevr-report", "--checkpoint c --data d --data e", "ait-clevr-report", "--data given more than once"},
  };
  for (const Case& c : cases) {
    std::string out;
    EXPECT_EQ(run_program(c.program, c.args, &out), 2) << c.program << " " << c.args << "\n" << out;
    EXPECT_TRUE(contains(out, c.expect)) << c.expect << "\n" << out;
    EXPECT_EQ(out.rfind(c.command, 0), 0u) << "the message starts with the command\n" << out;
  }
}

TEST(CliPrograms, IdxConverterAndItsAliasWriteTheSameFile) {
  const std::string dir = fresh_tmpdir("cli_idx");
  std::vector<uint8_t> images = {0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 5};
  std::vector<uint8_t> labels = {0, 0, 8, 1, 0, 0, 0, 3, 2, 0, 1};
  for (int i = 0; i < 30; ++i) images.push_back(uint8_t(i * 37 % 251));
  write_file_atomic(dir + "/x.idx", images);
  write_file_atomic(dir + "/y.idx.gz", gzip_compress_stored(labels.data(), labels.size()));
  const std::string in = "--images " + dir + "/x.idx --labels " + dir + "/y.idx.gz --classes a,b,c --out ";
  std::string out;
  ASSERT_EQ(run_program("ait-convert", "idx " + in + dir + "/one.safetensors", &out), 0) << out;
  ASSERT_EQ(run_program("ait", "convert idx " + in + dir + "/two.safetensors", &out), 0) << out;
  EXPECT_EQ(read_file(dir + "/one.safetensors"), read_file(dir + "/two.safetensors"));
  Dataset ds = load_dataset(dir + "/one.safetensors");
  EXPECT_EQ(ds.n, 3);
  EXPECT_EQ(ds.height, 2);
  EXPECT_EQ(ds.width, 5);
  EXPECT_EQ(ds.labels, (std::vector<int32_t>{2, 0, 1}));
  EXPECT_EQ(ds.classes, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ds.images, std::vector<uint8_t>(images.begin() + 16, images.end()));
  EXPECT_EQ(run_program("ait", "convert mnist " + in + dir + "/three.safetensors", &out), 2) << out;
  EXPECT_TRUE(contains(out, "'mnist' is not known")) << out;
  std::filesystem::remove_all(dir);
}

namespace {

// The rows `ait predict` printed: index, predicted class, label, probability.
struct Prediction {
  int64_t index;
  std::string predicted, label;
  double probability;
};

std::vector<Prediction> parse_predictions(const std::string& out) {
  std::istringstream in(out);
  std::vector<Prediction> rows;
  std::string line;
  while (std::getline(in, line)) {
    Prediction p;
    std::istringstream f(line);
    if (f >> p.index >> p.predicted >> p.label >> p.probability) rows.push_back(p);
  }
  return rows;
}

}  // namespace

// `ait predict --memory-eval update|frozen` against evaluate() (src/model/train.cpp) on the
// same batches: the same predicted classes (compared as confusion matrices).
TEST(CliPrograms, PredictMemoryEvalUpdateMatchesEvaluate) {
  const std::string dir = fresh_tmpdir("cli_predict");
  const std::string data = test::write_quadrant_dataset(dir, 23, 5);
  const std::string ckpt = test::write_quadrant_checkpoint(dir, 3);
  const std::string args = "predict --device cpu --checkpoint " + ckpt + " --data " + data + " --count 23 ";
  std::string out;
  ASSERT_EQ(run_program("ait", args + "--batch-size 5 --memory-eval update", &out), 0) << out;
  const std::vector<Prediction> update = parse_predictions(out);
  ASSERT_EQ(run_program("ait", args + "--batch-size 5 --memory-eval frozen", &out), 0) << out;
  const std::vector<Prediction> frozen = parse_predictions(out);
  ASSERT_EQ(update.size(), 23u);
  ASSERT_EQ(frozen.size(), 23u);
  for (const auto& [mode, rows] :
       {std::make_pair(MemoryEval::Update, update), std::make_pair(MemoryEval::Frozen, frozen)}) {
    AiT model = AiT::load(ckpt, cpu());
    Dataset ds = load_dataset(data);
    EvalResult r = evaluate(model, ds, 5, mode);
    std::vector<int64_t> confusion(16, 0);
    for (size_t i = 0; i < rows.size(); ++i) {
      EXPECT_EQ(rows[i].index, int64_t(i));
      const auto at = std::find(ds.classes.begin(), ds.classes.end(), rows[i].predicted);
      ASSERT_NE(at, ds.classes.end()) << rows[i].predicted;
      confusion[size_t(ds.labels[i] * 4 + (at - ds.classes.begin()))]++;
    }
    EXPECT_EQ(confusion, r.confusion) << (mode == MemoryEval::Update ? "update" : "frozen");
  }
  double differ = 0;  // the pass reads after its own write, so every batch can differ
  for (size_t i = 0; i < 23; ++i) differ += std::abs(update[i].probability - frozen[i].probability);
  EXPECT_GT(differ, 0.0) << "the committed memory changed nothing";
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// Numbers, checkpoints and resumed runs that the programs refuse

namespace {

// A small dataset and a checkpoint that fits it, in `dir`.
struct Files {
  std::string data, ckpt;
};
Files small_files(const std::string& dir) {
  Files f;
  f.data = test::write_quadrant_dataset(dir, 12, 4);
  f.ckpt = test::write_quadrant_checkpoint(dir, 3);
  return f;
}

}  // namespace

// Every numeric option out of its range is a usage error (status 2) naming the option, and the
// command writes nothing.
TEST(CliPrograms, NumericOptionsAreRangeChecked) {
  const std::string dir = fresh_tmpdir("cli_numbers");
  const Files f = small_files(dir);
  const std::string train = "train --device cpu --data " + f.data + " --out " + dir + "/run ";
  const std::string model = "--checkpoint " + f.ckpt + " --data " + f.data + " --device cpu ";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {train + "--lr nan", "option --lr: 'nan' is not a finite number"},
      {train + "--lr inf", "option --lr: 'inf' is not a finite number"},
      {train + "--lr -1", "option --lr: -1 is out of range (must be above 0 and at most 3.40282e+38)"},
      {train + "--lr 1e39", "option --lr: 1e39 is out of range"},
      {train + "--weight-decay nan", "option --weight-decay: 'nan' is not a finite number"},
      {train + "--weight-decay -0.1", "option --weight-decay: -0.1 is out of range"},
      {train + "--batch-size 99999999999999999999",
       "option --batch-size: 99999999999999999999 is out of range (must be in [1, 16777216])"},
      {train + "--batch-size 100000000", "option --batch-size: 100000000 is out of range"},
      {train + "--epochs 0", "option --epochs: 0 is out of range"},
      {train + "--set hopfield_beta=nan",
       "option --set hopfield_beta=nan: config key 'hopfield_beta' must be a finite"},
      {train + "--set write_dropout=-inf", "config key 'write_dropout' must be a finite number"},
      {"eval " + model + "--batch-size 0", "option --batch-size: 0 is out of range (must be in [1, 16777216])"},
      {"predict " + model + "--count -1", "option --count: -1 is out of range (must be at least 1)"},
      {"predict " + model + "--batch-size 0", "option --batch-size: 0 is out of range"},
      {"viz " + model + "--out " + dir + "/viz --count 0", "option --count: 0 is out of range"},
      {"dump --device cpu --checkpoint " + f.ckpt + " --batch b --out " + dir + "/d.safetensors --lr -1",
       "option --lr: -1 is out of range"},
  };
  for (const auto& [args, want] : cases) {
    std::string out;
    EXPECT_EQ(run_program("ait", args, &out), 2) << args << "\n" << out;
    EXPECT_TRUE(contains(out, want)) << "want: " << want << "\n" << out;
  }
  EXPECT_FALSE(std::filesystem::exists(dir + "/run"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/viz"));
  // A config value out of range is an error in the model's config (status 1), naming the key.
  std::string out;
  EXPECT_EQ(run_program("ait", train + "--set depth=1000000000", &out), 1) << out;
  EXPECT_TRUE(contains(out, "key 'depth' is 1000000000, outside its range [1, 1024]")) << out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/run"));
}

// A checkpoint whose data_std is 0 used to evaluate to NaN with status 0; it is refused, naming
// the file and the key, and so is a data_mean that is not a number.
TEST(CliPrograms, CheckpointNormalisationIsRefused) {
  const std::string dir = fresh_tmpdir("cli_norm");
  const Files f = small_files(dir);
  for (const auto& [key, value] : {std::make_pair("data_std", "[0]"), std::make_pair("data_mean", "[\"x\"]")}) {
    SafeTensors st = read_safetensors(f.ckpt);
    st.metadata["data_mean"] = "[0.5]";
    st.metadata["data_std"] = "[0.25]";
    st.metadata[key] = value;
    const std::string bad = dir + "/bad.safetensors";
    write_safetensors(bad, st);
    std::string out;
    EXPECT_EQ(run_program("ait", "eval --device cpu --checkpoint " + bad + " --data " + f.data, &out), 1) << out;
    EXPECT_TRUE(contains(out, bad + ": __metadata__ " + key + "[0] is ")) << out;
    EXPECT_FALSE(contains(out, "accuracy")) << out;
  }
}

// --resume continues a run with its own config: --model, --config and --set may not change it.
TEST(CliPrograms, ResumeRefusesOptionsThatChangeTheConfig) {
  const std::string dir = fresh_tmpdir("cli_resume");
  const std::string data = test::write_quadrant_dataset(dir, 16, 5);
  const std::string run = dir + "/run";
  const std::string shape = "--set dim=16 --set heads=2 --set head_dim=8 --set mlp_dim=32 --set bottleneck=16 ";
  const std::string base = "train --device cpu --data " + data + " --out " + run + " --epochs 1 ";
  std::string out;
  ASSERT_EQ(run_program("ait", base + shape, &out), 0) << out;
  const std::vector<std::uintmax_t> sizes = {std::filesystem::file_size(run + "/metrics.jsonl")};
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--set dim=32", "option --set dim=32 contradicts the config of the run in --resume " + run +
                           ": key 'dim' would be 32 against the run's 16"},
      {"--model base", "option --model base contradicts the config of the run in --resume " + run +
                           ": key 'dim' would be 768 against the run's 16"},
      {"--model tiny", "key 'dim' would be 128 against the run's 16"},
  };
  for (const auto& [extra, want] : cases) {
    EXPECT_EQ(run_program("ait", base + "--resume " + run + " " + extra, &out), 2) << extra << "\n" << out;
    EXPECT_TRUE(contains(out, want)) << "want: " << want << "\n" << out;
    EXPECT_FALSE(contains(out, "parameters")) << "the run started:\n" << out;
  }
  // Restating the run's options, or none, continues it (here: nothing left to train).
  EXPECT_EQ(run_program("ait", base + shape + "--resume " + run, &out), 0) << out;
  EXPECT_EQ(run_program("ait", base + "--resume " + run, &out), 0) << out;
  EXPECT_FALSE(contains(out, "tiny")) << "the log names a preset the run is not:\n" << out;
  EXPECT_EQ(std::filesystem::file_size(run + "/metrics.jsonl"), sizes[0]);
}

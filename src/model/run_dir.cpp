#include "model/run_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "io/file.h"
#include "io/inflate.h"
#include "model/model.h"

namespace ait {

namespace {

namespace fs = std::filesystem;

const char* const kCurrent = "current";
const char* const kManifest = "checkpoint.json";
const char* const kModel = "model.safetensors";
const char* const kBest = "best.safetensors";
const char* const kState = "train_state.safetensors";
const char* const kMetrics = "metrics.jsonl";

// NNNNNN of a folder named "ckpt-NNNNNN" (at least 6 digits); -1 for any other name.
int64_t generation_of(const std::string& name) {
  if (name.size() < 11 || name.size() > 23 || name.compare(0, 5, "ckpt-") != 0) return -1;
  int64_t g = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    g = g * 10 + (name[i] - '0');
  }
  return g;
}

std::string folder_name(int64_t generation) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "ckpt-%06lld", static_cast<long long>(generation));
  return buf;
}

// The generation `DIR/current` names; 0 when there is no such link. Anything else there is
// not ours to interpret: an error naming it.
int64_t committed_generation(const std::string& dir) {
  const std::string link = dir + "/" + kCurrent;
  const std::string target = read_symlink(link);
  if (target.empty()) {
    struct stat st;
    if (::lstat(link.c_str(), &st) == 0) throw Error(link + ": expected a symbolic link to a ckpt-NNNNNN folder");
    return 0;
  }
  const int64_t g = generation_of(target);
  if (g <= 0) throw Error(link + ": points to '" + target + "', expected a ckpt-NNNNNN folder");
  return g;
}

// The files of the committed set: those present in DIR/current/.
std::vector<std::string> committed_names(const std::string& dir) {
  std::vector<std::string> names;
  for (const char* name : {kModel, kBest, kState, kMetrics})
    if (fs::exists(dir + "/" + kCurrent + "/" + name)) names.push_back(name);
  return names;
}

std::string text_of(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

// Checks a committed folder's files against its manifest; returns the manifest's epoch.
int64_t verify_manifest(const std::string& folder, CommittedRun& run) {
  const std::string path = folder + "/" + kManifest;
  Json m = Json::parse(text_of(read_file(path)), path);
  if (!m.is_object() || !m.has("format") || !m.at("format").is_string() ||
      m.at("format").as_string() != "ait-run-checkpoint")
    throw Error(path + ": not a run checkpoint manifest (format is not 'ait-run-checkpoint')");
  const int64_t epoch = m.at("epoch").as_int(1);
  for (const Json& f : m.at("files").as_array()) {
    const std::string name = f.at("name").as_string();
    const std::string file = folder + "/" + name;
    if (name != kModel && name != kBest && name != kState && name != kMetrics)
      throw Error(path + ": unexpected file '" + name + "'");
    const FileDigest want{static_cast<uint64_t>(f.at("size").as_int(0)),
                          static_cast<uint32_t>(f.at("crc32").as_int(0, 0xffffffffll))};
    const FileDigest got = digest_file(file);
    if (got.size != want.size || got.crc32 != want.crc32)
      throw Error(file + ": " + std::to_string(got.size) + " bytes with CRC-32 " + std::to_string(got.crc32) +
                  ", but " + path + " records " + std::to_string(want.size) + " bytes with CRC-32 " +
                  std::to_string(want.crc32) + " (changed after the checkpoint was committed)");
    if (name == kModel) run.model = file;
    if (name == kBest) run.best = file;
    if (name == kState) run.train_state = file;
    if (name == kMetrics) run.metrics = text_of(read_file(file));
  }
  if (run.model.empty() || run.train_state.empty())
    throw Error(path + ": the manifest lists no " + std::string(run.model.empty() ? kModel : kState));
  return epoch;
}

// metrics.jsonl of the layout before the manifest: the lines of epochs up to `epoch` (lines of
// an epoch a killed run never checkpointed, and a torn last line, are dropped).
std::string committed_lines(const std::string& path, int64_t epoch) {
  std::ifstream in(path);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    try {
      Json j = Json::parse(line, path);
      if (j.is_object() && j.has("epoch") && j.at("epoch").as_number() <= double(epoch)) out += line + "\n";
    } catch (const Error&) {
      break;
    }
  }
  return out;
}

// A run directory of the layout before the manifest: plain files, trusted as they are.
CommittedRun read_plain_run(const std::string& dir) {
  CommittedRun run;
  run.folder = dir;
  run.model = dir + "/" + kModel;
  run.train_state = dir + "/" + kState;
  if (!fs::exists(run.train_state) || !fs::exists(run.model))
    throw Error(dir + ": no committed checkpoint (no " + kCurrent + " link; the run ended before its first epoch, or " +
                "this is not a run directory); start it without --resume");
  run.epoch = read_safetensors(run.train_state).get("epoch").i64().at(0);
  if (fs::exists(dir + "/" + kBest)) run.best = dir + "/" + kBest;
  run.metrics = committed_lines(dir + "/" + kMetrics, run.epoch);
  return run;
}

// The manifest of a folder's files: epoch, then each file's name, size and CRC-32.
std::vector<uint8_t> manifest_of(const std::string& folder, int64_t epoch, const std::vector<std::string>& names) {
  Json files = Json::array();
  for (const std::string& name : names) {
    FileDigest d = digest_file(folder + "/" + name);
    Json f = Json::object();
    f.set("name", name);
    f.set("size", static_cast<uint64_t>(d.size));
    f.set("crc32", static_cast<uint64_t>(d.crc32));
    files.push_back(f);
  }
  Json m = Json::object();
  m.set("format", "ait-run-checkpoint");
  m.set("version", 1);
  m.set("epoch", epoch);
  m.set("files", files);
  std::string text = m.dump() + "\n";
  return std::vector<uint8_t>(text.begin(), text.end());
}

}  // namespace

CommittedRun read_committed_run(const std::string& dir) {
  const int64_t g = committed_generation(dir);
  if (g == 0) return read_plain_run(dir);
  CommittedRun run;
  run.folder = dir + "/" + folder_name(g);
  run.epoch = verify_manifest(run.folder, run);
  return run;
}

std::string committed_model(const std::string& dir) {
  const int64_t g = committed_generation(dir);
  return g == 0 ? read_plain_run(dir).model : dir + "/" + folder_name(g) + "/" + kModel;
}

RunDir::RunDir(const std::string& dir) : dir_(dir) {
  std::error_code ec;
  created_ = fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the run directory: " + ec.message());
  lock_ = std::make_unique<FileLock>(dir + "/lock", "run directory " + dir);
  generation_ = committed_generation(dir);
  removed_ = remove_stale_temporaries(dir);
  remove_uncommitted_folders();
  // A run killed between its first commit and the links to it left them to be made here.
  if (generation_ > 0) publish_names(committed_names(dir), true);
}

RunDir::~RunDir() {
  lock_.reset();
  if (created_ && !committed_) {
    ::unlink((dir_ + "/lock").c_str());
    ::rmdir(dir_.c_str());  // only when nothing else was put there meanwhile
  }
}

// Folders of checkpoints that were never committed (a run killed while writing one), or that
// a killed run committed past but had not removed yet.
void RunDir::remove_uncommitted_folders() {
  std::vector<std::string> stale;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string name = e.path().filename().string();
    const int64_t g = generation_of(name);
    if (g > 0 && g != generation_ && e.is_directory()) stale.push_back(name);
  }
  for (const std::string& name : stale) remove_tree(dir_ + "/" + name);
  removed_.insert(removed_.end(), stale.begin(), stale.end());
}

void RunDir::continue_from(const CommittedRun& run) {
  metrics_ = run.metrics;
  best_ = run.best;
}

void RunDir::log(const Json& line) { metrics_ += line.dump() + "\n"; }

void RunDir::commit(int64_t epoch, const AiT& model, bool improved, const SafeTensors& train_state) {
  const std::string name = folder_name(generation_ + 1), folder = dir_ + "/" + name;
  crash_point(("mkdir " + folder).c_str());
  if (::mkdir(folder.c_str(), 0755) != 0)
    throw Error(folder + ": cannot create the checkpoint folder: " + std::strerror(errno));
  crash_point(("write " + folder + "/" + kModel).c_str());
  model.save(folder + "/" + kModel);
  std::vector<std::string> names = {kModel};
  if (improved || !best_.empty()) {
    link_or_copy(improved ? folder + "/" + kModel : best_, folder + "/" + kBest);
    names.push_back(kBest);
  }
  write_file_durable(folder + "/" + kState, serialize_safetensors(train_state));
  write_file_durable(folder + "/" + kMetrics, std::vector<uint8_t>(metrics_.begin(), metrics_.end()));
  names.push_back(kState);
  names.push_back(kMetrics);
  write_file_durable(folder + "/" + kManifest, manifest_of(folder, epoch, names));
  fsync_directory(folder);
  publish_names(names, false);
  replace_symlink(name, dir_ + "/" + kCurrent);  // the commit
  fsync_directory(dir_);
  const std::string previous = generation_ > 0 ? dir_ + "/" + folder_name(generation_) : "";
  generation_ += 1;
  committed_ = true;
  if (!best_.empty() || improved) best_ = folder + "/" + kBest;
  publish_names(names, true);
  if (!previous.empty()) remove_tree(previous);
}

// DIR/<name> -> current/<name> for each of `names`. Before the first commit the links are made
// where no entry of that name exists (they dangle until `current` does, so the commit makes them
// valid too); after a commit also over plain files (a run directory of the older layout, whose
// files stay readable until then). A name that is already such a link is left alone.
void RunDir::publish_names(const std::vector<std::string>& names, bool over_plain_files) {
  bool changed = false;
  for (const std::string& name : names) {
    const std::string target = std::string(kCurrent) + "/" + name, link = dir_ + "/" + name;
    struct stat st;
    if (read_symlink(link) == target || (!over_plain_files && ::lstat(link.c_str(), &st) == 0)) continue;
    replace_symlink(target, link);
    changed = true;
  }
  if (changed) fsync_directory(dir_);
}

}  // namespace ait

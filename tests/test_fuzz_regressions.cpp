// Replays every saved fuzzer input under tests/fuzz_regressions/<name>/ through the libFuzzer
// target tools/fuzz/fuzz_<name>.cpp, compiled into this test (each target in its own
// namespace, its entry point renamed). The targets check their own properties and abort on a
// violation, so a regression shows up as this test dying (run it under `make asan` to see
// memory errors as well). New crashing inputs from tools/fuzz/build.sh go in those folders.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "../tools/fuzz/memfile.h"
#include "apps/convert.h"
#include "io/dataset.h"
#include "io/idx.h"
#include "io/inflate.h"
#include "io/json.h"
#include "io/safetensors.h"

// Every header the targets include is included above, so the #includes inside the targets
// are no-ops and only their code lands in the namespaces below.
#define LLVMFuzzerTestOneInput ait_fuzz_png_one
namespace fuzz_png {
#include "../tools/fuzz/fuzz_png.cpp"
}
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput ait_fuzz_pnm_one
namespace fuzz_pnm {
#include "../tools/fuzz/fuzz_pnm.cpp"
}
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput ait_fuzz_npy_one
namespace fuzz_npy {
#include "../tools/fuzz/fuzz_npy.cpp"
}
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput ait_fuzz_cifar_one
namespace fuzz_cifar {
#include "../tools/fuzz/fuzz_cifar.cpp"
}
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput ait_fuzz_inflate_one
namespace fuzz_inflate {
#include "../tools/fuzz/fuzz_inflate.cpp"
}
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput ait_fuzz_json_one
namespace fuzz_json {
#include "../tools/fuzz/fuzz_json.cpp"
}
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput ait_fuzz_safetensors_one
namespace fuzz_safetensors {
#include "../tools/fuzz/fuzz_safetensors.cpp"
}
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput ait_fuzz_idx_one
namespace fuzz_idx {
#include "../tools/fuzz/fuzz_idx.cpp"
}
#undef LLVMFuzzerTestOneInput

namespace {

namespace fs = std::filesystem;
using Target = int (*)(const uint8_t*, size_t);

const std::map<std::string, Target>& targets() {
  static const std::map<std::string, Target> t = {
      {"png", fuzz_png::ait_fuzz_png_one},
      {"pnm", fuzz_pnm::ait_fuzz_pnm_one},
      {"npy", fuzz_npy::ait_fuzz_npy_one},
      {"cifar", fuzz_cifar::ait_fuzz_cifar_one},
      {"inflate", fuzz_inflate::ait_fuzz_inflate_one},
      {"json", fuzz_json::ait_fuzz_json_one},
      {"safetensors", fuzz_safetensors::ait_fuzz_safetensors_one},
      {"idx", fuzz_idx::ait_fuzz_idx_one},
  };
  return t;
}

const fs::path kRoot = fs::path(AIT_SOURCE_DIR) / "tests" / "fuzz_regressions";

}  // namespace

// Every folder names a known target (a typo would silently skip its inputs otherwise).
TEST(FuzzRegressions, FoldersNameTargets) {
  ASSERT_TRUE(fs::is_directory(kRoot)) << kRoot;
  for (const auto& e : fs::directory_iterator(kRoot)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    EXPECT_TRUE(targets().count(name)) << "tests/fuzz_regressions/" << name << "/ matches no tools/fuzz/fuzz_*.cpp";
  }
}

// Each target, on the empty input and a few trivial ones, then on every saved input.
TEST(FuzzRegressions, ReplaySavedInputs) {
  int64_t replayed = 0;
  for (const auto& [name, fn] : targets()) {
    for (int mode = 0; mode < 8; ++mode) {
      const uint8_t small[4] = {uint8_t(mode), 0xff, 0, 1};
      for (size_t n = 0; n <= sizeof small; ++n) fn(small, n);
    }
    const fs::path dir = kRoot / name;
    if (!fs::is_directory(dir)) continue;
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path());
    std::sort(files.begin(), files.end());
    for (const fs::path& f : files) {
      SCOPED_TRACE(f.string());
      std::vector<uint8_t> bytes = ait::read_file(f.string());
      EXPECT_EQ(fn(bytes.data(), bytes.size()), 0);
      ++replayed;
    }
  }
  RecordProperty("replayed", int(replayed));
}

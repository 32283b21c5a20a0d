// libFuzzer target: JSON parsing and serialisation. Properties: never crash, only ait::Error
// escapes, and whatever parses dumps to valid JSON that is stable after one normalisation
// (numbers print with 9 significant digits, so the first dump may round).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "io/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ait::Json j;
  try {
    j = ait::Json::parse(reinterpret_cast<const char*>(data), size, "fuzz.json");
  } catch (const ait::Error&) {
    return 0;
  }
  try {
    std::string d1 = j.dump();
    std::string d2 = ait::Json::parse(d1, "dump1").dump();
    std::string d3 = ait::Json::parse(d2, "dump2").dump();
    if (d2 != d3) abort();
  } catch (const ait::Error&) {
    abort();  // our own output must parse
  }
  return 0;
}

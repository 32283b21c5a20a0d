// libFuzzer target: safetensors parsing (and the dataset validation on top of it).
// Properties: never crash, only ait::Error escapes, and a file that parses serialises to a
// file that parses back to the same tensors and metadata.
#include <cstdint>
#include <cstdlib>

#include "io/dataset.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ait::SafeTensors st;
  try {
    st = ait::parse_safetensors(data, size, "fuzz.safetensors");
  } catch (const ait::Error&) {
    return 0;
  }
  for (const auto& kv : st.tensors) {
    try {
      (void)kv.second.f32();
    } catch (const ait::Error&) {
    }
    try {
      (void)kv.second.i32();
    } catch (const ait::Error&) {
    }
    try {
      (void)kv.second.i64();
    } catch (const ait::Error&) {
    }
    try {
      (void)kv.second.u8();
    } catch (const ait::Error&) {
    }
  }
  try {
    std::vector<uint8_t> again = ait::serialize_safetensors(st);
    ait::SafeTensors back = ait::parse_safetensors(again.data(), again.size(), "reserialised");
    if (back.metadata != st.metadata || back.tensors.size() != st.tensors.size()) abort();
    for (const auto& kv : st.tensors) {
      const ait::StTensor& t = back.get(kv.first);
      if (t.dtype != kv.second.dtype || t.shape != kv.second.shape || t.bytes != kv.second.bytes) abort();
    }
  } catch (const ait::Error&) {
    abort();  // a file we accepted must survive a round trip
  }
  try {
    ait::Dataset ds = ait::dataset_from_safetensors(st);
    // Every row's image lies inside the stored pixels (image_index checked on load).
    const size_t per = size_t(ds.channels * ds.height * ds.width), stored = ds.images.size() / per;
    if (ds.images.size() % per != 0 || ds.labels.size() != size_t(ds.n)) abort();
    if (ds.image_index.empty() ? stored != size_t(ds.n) : ds.image_index.size() != size_t(ds.n)) abort();
    for (int32_t k : ds.image_index)
      if (k < 0 || size_t(k) >= stored) abort();
  } catch (const ait::Error&) {
  }
  return 0;
}

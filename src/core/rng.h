// Portable seeded random numbers: the same stream on every platform, compiler and backend.
// Only integer arithmetic feeds the streams; floats are made from the top bits.
#pragma once
#include <cmath>
#include <cstdint>

namespace ait {

// 32-bit integer hash (lowbias32). Used by dropout on both backends (shaders have no 64-bit ints).
inline uint32_t hash32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

// Uniform in [0, 1) for element i of the stream `seed`; the dropout mask is uniform >= p.
inline float hash_uniform(uint32_t seed, uint32_t i) {
  return static_cast<float>(hash32(i * 0x9E3779B9u ^ hash32(seed)) >> 8) * (1.0f / 16777216.0f);
}

// SplitMix64: a small, well-mixed sequential generator for initialisation and shuffling.
class Rng {
public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}
  uint64_t next_u64() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  uint32_t next_u32() { return static_cast<uint32_t>(next_u64() >> 32); }
  // Uniform in [0, 1) with 24 random bits (exactly representable floats).
  float uniform() { return static_cast<float>(next_u64() >> 40) * (1.0f / 16777216.0f); }
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal by Box-Muller in double precision (one value per call).
  float normal() {
    double u1 = (static_cast<double>(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = static_cast<double>(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    return static_cast<float>(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }
  // Uniform integer in [0, n) without modulo bias (n > 0).
  uint64_t below(uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = next_u64();
    while (x >= limit);
    return x % n;
  }
  uint64_t state() const { return state_; }
  void set_state(uint64_t s) { state_ = s; }

private:
  uint64_t state_;
};

}  // namespace ait

#version 450
// fp32 <-> fp16 conversion in integer arithmetic, so that the result is the same on every device
// and needs no 16-bit feature (a driver's float16 conversion may round differently). An fp16
// buffer of n values is a uint[] of (n + 1) / 2 words, value 2w in the low half of word w, 2w + 1
// in the high half (the layout of float16_t[] in a storage buffer on a little-endian device).
// MODE (specialization constant 0, modes.h):
//   AIT_CONVERT_F32_TO_F16: one thread per output word; rounds to nearest, ties to even. Finite
//     values of magnitude >= 65520 become inf; +-inf stay inf; NaN stays NaN (sign and the top 9
//     payload bits kept, quiet bit set); values below the fp16 normal range round to fp16
//     subnormals (gradual underflow), magnitudes <= 2^-25 to a zero of the same sign (fp32
//     subnormals included). An odd n leaves the high half of the last word 0.
//   AIT_CONVERT_F16_TO_F32: one thread per output value; exact (every fp16 value is an fp32 one,
//     subnormals as normal fp32 numbers, NaN payloads kept).
// Bindings: 0 src, 1 dst; push constants give the count and the first word or value of each.
#include "common.glsl"
#include "modes.h"

layout(local_size_x = WG_SIZE) in;
layout(constant_id = 0) const uint MODE = AIT_CONVERT_F32_TO_F16;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint n;        // values converted
  uint src_off;  // F32_TO_F16: first fp32 value; F16_TO_F32: first word (value 2 * src_off)
  uint dst_off;  // F32_TO_F16: first word; F16_TO_F32: first fp32 value
} pc;

layout(binding = 0) readonly buffer Src { uint src[]; };
layout(binding = 1) writeonly buffer Dst { uint dst[]; };

uint f32_to_f16_bits(uint x) {
  uint sign = (x >> 16) & 0x8000u;
  uint e = (x >> 23) & 0xFFu, m = x & 0x7FFFFFu;
  if (e == 0xFFu) return sign | 0x7C00u | (m != 0u ? 0x200u | (m >> 13) : 0u);
  int h_exp = int(e) - 127 + 15;
  if (h_exp >= 31) return sign | 0x7C00u;
  if (h_exp <= 0) {
    if (h_exp < -10) return sign;  // below half the smallest subnormal
    // Subnormal: the 24-bit significand in units of 2^-24, shifted right 14 - h_exp (14..24).
    uint full = m | 0x800000u;
    uint shift = uint(14 - h_exp);
    uint r = full >> shift, rem = full & ((1u << shift) - 1u), half_unit = 1u << (shift - 1u);
    if (rem > half_unit || (rem == half_unit && (r & 1u) != 0u)) r += 1u;  // may carry into the normal range
    return sign | r;
  }
  uint h = sign | (uint(h_exp) << 10) | (m >> 13);
  uint rem = m & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0u)) h += 1u;  // a carry may reach inf: correct
  return h;
}

uint f16_to_f32_bits(uint h) {
  uint sign = (h & 0x8000u) << 16;
  uint e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0x1Fu) return sign | 0x7F800000u | (m << 13);
  if (e != 0u) return sign | ((e + 112u) << 23) | (m << 13);
  if (m == 0u) return sign;
  // Subnormal m * 2^-24: normalise so that the leading 1 lands on bit 10.
  int lead = findMSB(m);  // 0..9
  return sign | (uint(lead + 103) << 23) | ((m << (10 - lead)) & 0x3FFu) << 13;
}

void main() {
  uint i = WG_ID.x * WG_SIZE + gl_LocalInvocationID.x;
  if (MODE == AIT_CONVERT_F32_TO_F16) {
    uint first = 2u * i;
    if (first >= pc.n) return;
    uint lo = f32_to_f16_bits(src[pc.src_off + first]);
    uint hi = first + 1u < pc.n ? f32_to_f16_bits(src[pc.src_off + first + 1u]) : 0u;
    dst[pc.dst_off + i] = lo | (hi << 16);
  } else {
    if (i >= pc.n) return;
    uint word = src[pc.src_off + i / 2u];
    dst[pc.dst_off + i] = f16_to_f32_bits((i & 1u) != 0u ? word >> 16 : word & 0xFFFFu);
  }
}

#version 450
// Top-k gate, one workgroup per row: keep the k' = min(k, cols) largest v = scale * x (equal
// values: the lower column wins), y = softmax over the kept entries, 0 elsewhere.
//
// Selection is exact and deterministic, with no sorting and O(1) shared memory (about 3 KiB):
//  1. Map each v to a 32-bit key whose unsigned order is the float order (-0 is folded into +0
//     so that equal values get equal keys).
//  2. Radix select the k'-th largest key T, 8 bits per pass (4 passes): each pass builds a
//     256-bin histogram (integer shared atomics) of the digits of the keys that match the prefix
//     found so far; a parallel suffix sum over the bins finds the digit where the running count
//     from the top reaches the number still to place. After the passes `need` is how many keys
//     equal to T must be kept.
//  3. Keys > T are kept. If there are at most `need` keys equal to T they are all kept (the
//     usual case: every pass so far was strided and coalesced); otherwise the ties are kept in
//     column order: each thread owns a contiguous span of columns, counts its ties, and an
//     exclusive scan over the threads gives each span its first tie rank.
//  4. Softmax over the kept set (the row maximum is always kept).
// Bindings: 0 x, 1 y.
#include "common.glsl"

layout(local_size_x = WG_SIZE) in;

layout(push_constant) uniform PC {
  AIT_PC_BASE
  uint rows;
  uint cols;
  uint k;
  float scale;
} pc;

layout(binding = 0) readonly buffer X { float x[]; };
layout(binding = 1) writeonly buffer Y { float y[]; };

shared uint hist[256];
shared uint scan[WG_SIZE];
shared float red[WG_SIZE];
shared uint sel_prefix;
shared uint sel_need;
AIT_DEFINE_TREE_REDUCE(tree_sum, ait_add)
AIT_DEFINE_TREE_REDUCE(tree_max, max)

// Inclusive prefix sum of v over the workgroup's threads into scan[]; returns this thread's.
// Every thread must call it (it contains barriers).
uint inclusive_scan(uint v) {
  uint lid = gl_LocalInvocationID.x;
  scan[lid] = v;
  barrier();
  for (uint off = 1u; off < WG_SIZE; off <<= 1) {
    uint add = lid >= off ? scan[lid - off] : 0u;
    barrier();
    scan[lid] += add;
    barrier();
  }
  return scan[lid];
}

uint key_of(float v) {
  uint b = floatBitsToUint(v);
  if (b == 0x80000000u) b = 0u;  // -0 == +0
  return (b & 0x80000000u) != 0u ? ~b : (b | 0x80000000u);
}

void main() {
  uint row = WG_ID.x, lid = gl_LocalInvocationID.x;
  if (row >= pc.rows) return;
  uint base = row * pc.cols, cols = pc.cols;
  uint kk = min(pc.k, cols);
  if (kk == 0u) {
    for (uint c = lid; c < cols; c += WG_SIZE) y[base + c] = 0.0;
    return;
  }

  // 2. radix select
  if (lid == 0) {
    sel_prefix = 0u;
    sel_need = kk;
  }
  uint mask = 0u;
  float vmax = -1.0 / 0.0;
  for (int pass = 0; pass < 4; ++pass) {
    uint shift = uint(24 - 8 * pass);
    hist[lid] = 0u;  // WG_SIZE == 256 bins
    barrier();
    uint prefix = sel_prefix, need = sel_need;
    for (uint c = lid; c < cols; c += WG_SIZE) {
      float v = pc.scale * x[base + c];
      if (pass == 0) vmax = max(vmax, v);
      uint key = key_of(v);
      if ((key & mask) == prefix) atomicAdd(hist[(key >> shift) & 255u], 1u);
    }
    barrier();
    // Inclusive prefix sum over the bins in descending digit order: scan[i] = count of
    // matching keys whose digit is >= 255 - i.
    uint upto = inclusive_scan(hist[255u - lid]);
    uint above = lid > 0u ? scan[lid - 1u] : 0u;  // keys with a larger digit
    if (above < need && need <= upto) {  // exactly one thread
      sel_prefix = prefix | ((255u - lid) << shift);
      sel_need = need - above;
    }
    barrier();
    mask |= 255u << shift;
  }
  uint T = sel_prefix, need = sel_need;

  // 3. ties: all kept when there are no more than needed, else the lowest columns
  uint ties = 0u;
  for (uint c = lid; c < cols; c += WG_SIZE)
    if (key_of(pc.scale * x[base + c]) == T) ++ties;
  inclusive_scan(ties);
  bool ordered = scan[WG_SIZE - 1u] > need;  // uniform
  barrier();
  float m = tree_max(vmax);
  float s = 0.0;
  if (!ordered) {
    for (uint c = lid; c < cols; c += WG_SIZE) {
      float v = pc.scale * x[base + c];
      if (key_of(v) >= T) s += ait_exp(v - m);
    }
    s = tree_sum(s);
    float inv = 1.0 / s;
    for (uint c = lid; c < cols; c += WG_SIZE) {
      float v = pc.scale * x[base + c];
      y[base + c] = key_of(v) >= T ? ait_exp(v - m) * inv : 0.0;
    }
    return;
  }
  uint span = (cols + WG_SIZE - 1u) / WG_SIZE;
  uint c0 = min(cols, lid * span), c1 = min(cols, c0 + span);
  ties = 0u;
  for (uint c = c0; c < c1; ++c)
    if (key_of(pc.scale * x[base + c]) == T) ++ties;
  uint first_rank = inclusive_scan(ties) - ties;  // exclusive

  // 4. softmax over the kept set
  uint rank = first_rank;
  for (uint c = c0; c < c1; ++c) {
    float v = pc.scale * x[base + c];
    uint key = key_of(v);
    bool keep = key > T || (key == T && rank < need);
    if (key == T) ++rank;
    if (keep) s += ait_exp(v - m);
  }
  s = tree_sum(s);
  float inv = 1.0 / s;
  rank = first_rank;
  for (uint c = c0; c < c1; ++c) {
    float v = pc.scale * x[base + c];
    uint key = key_of(v);
    bool keep = key > T || (key == T && rank < need);
    if (key == T) ++rank;
    y[base + c] = keep ? ait_exp(v - m) * inv : 0.0;
  }
}

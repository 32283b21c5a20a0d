// Shared definitions for every ait compute shader.
//
// Every push-constant block starts with AIT_PC_BASE: the workgroup offset of this piece of a
// dispatch. The host splits a logical grid that exceeds maxComputeWorkGroupCount into several
// vkCmdDispatch calls and tells each piece where it starts; shaders use WG_ID instead of
// gl_WorkGroupID so they always see the logical workgroup coordinate.
//
// Device requirements kept by all shaders: Vulkan 1.1, fp32 only, no subgroup operations (so
// no dependence on the subgroup size), at most 16 KiB of shared memory per workgroup (except the
// larger matmul tiles, which the host checks against the device's limit first), and
// 32-bit indexing (a bound range never exceeds maxStorageBufferRange < 2^32 bytes).
#ifndef AIT_COMMON_GLSL
#define AIT_COMMON_GLSL

#extension GL_EXT_control_flow_attributes : enable

#define AIT_PC_BASE uint base_x; uint base_y; uint base_z;
#define WG_ID (gl_WorkGroupID + uvec3(pc.base_x, pc.base_y, pc.base_z))

// Threads per workgroup for the 1-D and row-wise shaders (the host assumes this value).
#define WG_SIZE 256

// Shared-memory tree reduction over WG_SIZE threads. `red` must be a shared float[WG_SIZE].
// Every thread must call it (it contains barriers); every thread gets the result.
#define AIT_DEFINE_TREE_REDUCE(NAME, OP)                                   \
  float NAME(float v) {                                                    \
    uint lid = gl_LocalInvocationID.x;                                     \
    red[lid] = v;                                                          \
    barrier();                                                             \
    [[unroll]] for (uint s = WG_SIZE / 2; s > 0; s >>= 1) {                \
      if (lid < s) red[lid] = OP(red[lid], red[lid + s]);                  \
      barrier();                                                           \
    }                                                                      \
    float r = red[0];                                                      \
    barrier();                                                             \
    return r;                                                              \
  }

// Row-wise shaders pack WG_SIZE / lanes rows into a workgroup, `lanes` threads per row (a
// power of two <= WG_SIZE the host picks from the row length, so short rows do not leave most
// threads idle). Segmented tree reduction over each row's lanes; `lanes` must be uniform and
// every thread of the workgroup must call it; each thread gets its own row's result.
#define AIT_DEFINE_SEG_REDUCE(NAME, OP)                                    \
  float NAME(float v, uint lanes) {                                        \
    uint lid = gl_LocalInvocationID.x;                                     \
    red[lid] = v;                                                          \
    barrier();                                                             \
    for (uint s = lanes >> 1; s > 0; s >>= 1) {                            \
      if ((lid & (lanes - 1u)) < s) red[lid] = OP(red[lid], red[lid + s]); \
      barrier();                                                           \
    }                                                                      \
    float r = red[lid & ~(lanes - 1u)];                                    \
    barrier();                                                             \
    return r;                                                              \
  }

float ait_add(float a, float b) { return a + b; }


// exp with Cody-Waite range reduction and a degree-6 polynomial (the CPU backend's exp_fast):
// a driver's built-in exp may be as loose as 3 + 2|x| ulp, and the balance loss's variance of
// nearly equal gate sums amplifies such error past the cross-check tolerance.
float ait_exp(float x) {
  x = clamp(x, -87.0, 88.0);
  float n = floor(x * 1.44269504088896341 + 0.5);
  float r = x - n * 0.693359375 + n * 2.12194440e-4;
  float p = 1.9875691500e-4;
  p = p * r + 1.3981999507e-3;
  p = p * r + 8.3334519073e-3;
  p = p * r + 4.1665795894e-2;
  p = p * r + 1.6666665459e-1;
  p = p * r + 5.0000001201e-1;
  p = p * r * r + r + 1.0;
  return ldexp(p, int(n));
}

#endif

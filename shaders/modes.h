// Named modes of the compute shaders, shared by the host (src/vulkan/vk_kernels.cpp includes
// this file) and the shaders (GLSL includes it too), so that neither side spells a mode or a
// specialization-constant slot as a bare number. Plain #defines and // comments only: the file
// must stay valid C++ and valid GLSL.
#ifndef AIT_SHADER_MODES_H
#define AIT_SHADER_MODES_H

// elementwise.comp, specialization constant 0 (OP).
#define AIT_ELEMENTWISE_FILL 0
#define AIT_ELEMENTWISE_AXPBY 1
#define AIT_ELEMENTWISE_GELU 2
#define AIT_ELEMENTWISE_GELU_BACKWARD 3

// binary.comp, specialization constant 0 (OP), in the order of ait::BinaryOp (core/kernels.h;
// the host checks that the two agree at compile time).
#define AIT_BINARY_ADD 0
#define AIT_BINARY_SUB 1
#define AIT_BINARY_MUL 2
#define AIT_BINARY_DIV 3

// softmax.comp, l2_normalize.comp and cross_entropy.comp, specialization constant 0 (MODE).
#define AIT_MODE_FORWARD 0
#define AIT_MODE_BACKWARD 1

// layernorm_backward_params.comp, specialization constant 0 (MODE): per-chunk partial sums,
// then the pass that adds the chunks.
#define AIT_LN_PARAMS_PARTIAL 0
#define AIT_LN_PARAMS_FINAL 1

// reduce.comp, specialization constant 0 (MODE): a sum along rows (inner == 1) or down columns.
#define AIT_REDUCE_ROWS 0
#define AIT_REDUCE_COLUMNS 1

// convert_f16.comp, specialization constant 0 (MODE).
#define AIT_CONVERT_F32_TO_F16 0
#define AIT_CONVERT_F16_TO_F32 1

// matmul.comp and matmul_f16.comp (matmul.glsl): the constant_id of each specialization constant (the host fills spec[id]). The
// first five are flags; the last five are the tile geometry from the host's tile table
// (VulkanKernels::matmul_tiles()).
#define AIT_MATMUL_SPEC_TRANS_A 0    // A stored [K, M]
#define AIT_MATMUL_SPEC_TRANS_B 1    // B stored [N, K]
#define AIT_MATMUL_SPEC_VEC_A 2      // A's rows are 16-byte aligned: vec4 loads
#define AIT_MATMUL_SPEC_VEC_B 3      // B's rows are 16-byte aligned: vec4 loads
#define AIT_MATMUL_SPEC_HAS_BIAS 4   // C += bias[n] after alpha and beta
#define AIT_MATMUL_SPEC_TILE_M 5     // outputs per workgroup along M
#define AIT_MATMUL_SPEC_TILE_N 6     // outputs per workgroup along N
#define AIT_MATMUL_SPEC_TILE_K 7     // K step: depth of one shared-memory stage
#define AIT_MATMUL_SPEC_THREADS 8    // threads per workgroup
#define AIT_MATMUL_SPEC_THREADS_N 9  // threads along N (THREADS / THREADS_N along M)
#define AIT_MATMUL_SPEC_COUNT 10

#endif

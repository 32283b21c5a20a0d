#!/usr/bin/env bash
# Builds a self-contained bundle for checking the Vulkan backend on a GPU machine that has no
# compiler or Vulkan SDK of ours: portable binaries (x86-64-v3, static libstdc++), the Vulkan
# loader and the Khronos validation layer from this machine, the golden fixture, the PyTorch
# reference, and run.sh (tools/gpu_run.sh: what it runs is described there).
#   tools/gpu_bundle.sh [OUT_DIR]      (default gpu-bundle/, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-bundle}
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DAIT_NATIVE=OFF -DCMAKE_CXX_FLAGS="-march=x86-64-v3" \
  -DCMAKE_EXE_LINKER_FLAGS="-static-libstdc++ -static-libgcc" >/dev/null
cmake --build build-gpu -j "$(nproc)" --target ait ait-bench ait-vk-matmul-bench ait_tests >/dev/null
rm -rf "$out" && mkdir -p "$out/lib" "$out/layers" "$out/tests" "$out/tools"
cp build-gpu/ait build-gpu/ait-bench build-gpu/ait-vk-matmul-bench build-gpu/ait_tests "$out/"
cp -r tests/golden "$out/tests/" && cp -r tools/reference "$out/tools/"
cp -L "$(ldconfig -p | grep -oE '/[^ ]*libvulkan.so.1$' | head -1)" "$out/lib/libvulkan.so.1"
cp /usr/lib/x86_64-linux-gnu/libVkLayer_khronos_validation.so "$out/layers/"
sed 's|"library_path": "libVkLayer_khronos_validation.so"|"library_path": "./libVkLayer_khronos_validation.so"|' \
  /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >"$out/layers/VkLayer_khronos_validation.json"
cp tools/gpu_run.sh "$out/run.sh"
chmod +x "$out/run.sh"
du -sh "$out"

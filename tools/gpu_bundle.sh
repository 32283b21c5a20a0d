#!/usr/bin/env bash
# Builds a self-contained bundle for checking the Vulkan backend on a GPU machine that has no
# compiler or Vulkan SDK of ours: portable binaries (x86-64-v3, static libstdc++), the Vulkan
# loader and the Khronos validation layer from this machine, the golden fixture, the PyTorch
# reference, and run.sh, which prints the devices, runs the Vulkan tests under validation, the
# Vulkan bench rows, and the same models through PyTorch CUDA for comparison.
#   tools/gpu_bundle.sh [OUT_DIR]      (default gpu-bundle/, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-bundle}
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DAIT_NATIVE=OFF -DCMAKE_CXX_FLAGS="-march=x86-64-v3" \
  -DCMAKE_EXE_LINKER_FLAGS="-static-libstdc++ -static-libgcc" >/dev/null
cmake --build build-gpu -j "$(nproc)" --target ait ait-bench ait_tests >/dev/null
rm -rf "$out" && mkdir -p "$out/lib" "$out/layers" "$out/tests" "$out/tools"
cp build-gpu/ait build-gpu/ait-bench build-gpu/ait_tests "$out/"
cp -r tests/golden "$out/tests/" && cp -r tools/reference "$out/tools/"
cp -L "$(ldconfig -p | grep -oE '/[^ ]*libvulkan.so.1$' | head -1)" "$out/lib/libvulkan.so.1"
cp /usr/lib/x86_64-linux-gnu/libVkLayer_khronos_validation.so "$out/layers/"
sed 's|"library_path": "libVkLayer_khronos_validation.so"|"library_path": "./libVkLayer_khronos_validation.so"|' \
  /usr/share/vulkan/explicit_layer.d/VkLayer_khronos_validation.json >"$out/layers/VkLayer_khronos_validation.json"
cat >"$out/run.sh" <<'EOS'
#!/bin/bash
# Vulkan checks and benchmarks on a GPU machine; PyTorch CUDA on the same models for comparison.
cd "$(dirname "$0")"; H=$PWD
export AIT_SOURCE_DIR=$H
ldconfig -p | grep -q "libvulkan.so.1 " || export AIT_VULKAN_LOADER=$H/lib/libvulkan.so.1
# Headless NVIDIA: the GLX-based ICD needs a display, the EGL one does not.
lib=$(ldconfig -p | grep -oE "/[^ ]*libEGL_nvidia.so.0" | head -1)
if [ -n "$lib" ]; then
  printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" >$H/nvidia_icd.json
  export VK_ICD_FILENAMES=$H/nvidia_icd.json VK_DRIVER_FILES=$H/nvidia_icd.json
fi
export XDG_CACHE_HOME=$H/cache VK_LAYER_PATH=$H/layers
echo "== machine"; nvidia-smi -L 2>&1 | head -2; python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' 2>&1
echo "== ait devices"; ./ait devices
echo "== Vulkan tests (validation layer on)"
AIT_VK_VALIDATION=1 timeout ${TEST_T:-150} ./ait_tests --gtest_filter='VulkanTest.*:*Vulkan*' --gtest_brief=1 2>&1 | grep -vE "^ait vulkan" | tail -25
echo "== ait-bench vulkan"
AIT_VK_VALIDATION=0 AIT_BENCH_VK_DEVICE=vulkan:0 timeout ${BENCH_T:-150} ./ait-bench vulkan
echo "== PyTorch CUDA (reference implementation, float32, eager)"
for c in "small 64 3 32" "tiny 128 1 28"; do
  set -- $c
  python3 - "$1" "$3" "$4" >$H/$1.json <<'PY'
import json, sys
name, ch, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = dict(dim=768, depth=2, heads=12, head_dim=64, mlp_dim=3072, memory_slots=32, memory_dim=32, memory_heads=8, bottleneck=512) \
    if name == "small" else dict(dim=128, depth=2, heads=4, head_dim=32, mlp_dim=256, memory_slots=16, memory_dim=32, memory_heads=4, bottleneck=128)
d.update(channels=ch, image_height=size, image_width=size, patch_size=4, question_dim=0, num_classes=10,
         hopfield_beta=1.0, memory_momentum=0.9, balance_coef=0.01, write_dropout=0.1)
print(json.dumps(d))
PY
  echo "$1 b$2:"; timeout ${TORCH_T:-60} python3 tools/reference/ait_reference.py bench --config $H/$1.json --batch-size $2 --steps 10 --device cuda
done
EOS
chmod +x "$out/run.sh"
du -sh "$out"

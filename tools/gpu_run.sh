#!/bin/bash
# Vulkan checks and benchmarks on a GPU machine, from the bundle tools/gpu_bundle.sh builds.
#   bash run.sh [check] [profile] [tiles] [sweep] [bench]   (default: all, in that order)
# check:   the Vulkan tests under the validation layer (synchronization checks on)
# profile: GPU time per kernel of a recorded `small` training step (AIT_VK_PROFILE), and the
#          step with a barrier between all dispatches against barriers only on hazards
# tiles:   the `small` training step with each large-product matmul tile named in AB_TILES
#          (names of VulkanKernels::matmul_tiles(), passed as AIT_VK_MATMUL_LARGE_TILE),
#          alternating; the faster one is used by `bench` after it
# sweep:   ait-vk-matmul-bench, every matmul tile (by name) and split at the AiT-Small shapes
# bench:   ait-bench vulkan, beside PyTorch CUDA running the same models when the machine has it
cd "$(dirname "$0")"; H=$PWD
export AIT_SOURCE_DIR=$H
ldconfig -p | grep -q "libvulkan.so.1 " || export AIT_VULKAN_LOADER=$H/lib/libvulkan.so.1
# Headless NVIDIA: the GLX-based ICD needs a display, the EGL one does not.
lib=$(ldconfig -p | grep -oE "/[^ ]*libEGL_nvidia.so.0" | head -1)
if [ -n "$lib" ]; then
  printf '{"file_format_version":"1.0.0","ICD":{"library_path":"%s","api_version":"1.3.0"}}\n' "$lib" >$H/nvidia_icd.json
  export VK_ICD_FILENAMES=$H/nvidia_icd.json VK_DRIVER_FILES=$H/nvidia_icd.json
fi
export XDG_CACHE_HOME=$H/cache VK_LAYER_PATH=$H/layers AIT_BENCH_PYTHON=$(command -v python3)
parts=${*:-check profile tiles sweep bench}
echo "== machine"; nvidia-smi -L 2>&1 | head -2
python3 -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))' 2>&1 | tail -1
./ait devices | head -20
for part in $parts; do
  case $part in
  check)
    echo "== Vulkan tests (validation layer on)"
    AIT_VK_VALIDATION=1 timeout ${TEST_T:-150} ./ait_tests --gtest_filter='VulkanTest.*:*Vulkan*:Replay*' --gtest_brief=1 2>&1 |
      grep -vE "^ait vulkan" | tail -25 ;;
  profile)
    echo "== profile: small b64 training step (barrier between all dispatches, so each is timed alone)"
    AIT_VK_PROFILE=1 AIT_VK_BARRIERS=all ./ait-bench --child small vulkan:0 2 5 2>&1 | head -70
    echo "== barriers: all dispatches vs hazards only (small b64 train/eval images/s)"
    for r in ${AB_ROUNDS:-1 2}; do
      for b in all hazards; do echo -n "$b: "; AIT_VK_BARRIERS=$b ./ait-bench --child small vulkan:0 3 5 2>/dev/null; done
    done ;;
  tiles)
    model=${AB_MODEL:-small}
    echo "== large-product matmul tile: $model training step with each of: ${AB_TILES:=matmul128x64t128 matmul64x128t128}"
    results=
    for r in 1 2; do
      for t in $AB_TILES; do
        line=$(AIT_VK_MATMUL_LARGE_TILE=$t ./ait-bench --child $model vulkan:0 3 5 2>/dev/null | tail -1)
        echo "$t: $line"
        results="$results$t $(echo "$line" | grep -oE '"train_images_per_s": [0-9.]+' | grep -oE '[0-9.]+$')"$'\n'
      done
    done
    best=$(printf '%s' "$results" | awk 'NF == 2 { s[$1] += $2; n[$1]++ }
      END { for (t in s) { printf "%s: mean train images/s %.1f\n", t, s[t] / n[t] > "/dev/stderr"; if (s[t] > b) { b = s[t]; bt = t } } print bt }')
    if [ -n "$best" ]; then export AIT_VK_MATMUL_LARGE_TILE=$best; echo "faster: $best (used from here on)"; fi ;;
  sweep)
    echo "== matmul sweep"
    AIT_BENCH_VK_DEVICE=vulkan:0 timeout ${SWEEP_T:-150} ./ait-vk-matmul-bench ${SWEEP_S:-0.03} ;;
  bench)
    echo "== ait-bench vulkan"
    AIT_BENCH_VK_DEVICE=vulkan:0 timeout ${BENCH_T:-200} ./ait-bench vulkan ;;
  esac
done

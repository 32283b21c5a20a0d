#!/usr/bin/env bash
# `make demo`: convert Fashion-MNIST (Debian's dataset-fashion-mnist), train the `tiny` AiT on
# the CPU, and print the test accuracy. Without the package, train on a generated task instead.
set -euo pipefail
build=${1:-build}
ait="$build/ait"
data="$build/data"
mkdir -p "$data"
src=/usr/share/datasets/fashion-mnist
epochs=${AIT_DEMO_EPOCHS:-5}
if [ -f "$src/train-images-idx3-ubyte.gz" ]; then
  [ -f "$data/fashion-mnist-train.safetensors" ] ||
    "$build/ait-convert" idx --images "$src/train-images-idx3-ubyte.gz" --labels "$src/train-labels-idx1-ubyte.gz" \
      --out "$data/fashion-mnist-train.safetensors"
  [ -f "$data/fashion-mnist-test.safetensors" ] ||
    "$build/ait-convert" idx --images "$src/t10k-images-idx3-ubyte.gz" --labels "$src/t10k-labels-idx1-ubyte.gz" \
      --out "$data/fashion-mnist-test.safetensors"
  train="$data/fashion-mnist-train.safetensors"
  test="$data/fashion-mnist-test.safetensors"
  echo "demo: training AiT tiny on Fashion-MNIST (60,000 images), $epochs epochs on the CPU"
else
  echo "demo: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist);"
  echo "demo: training on the generated Triangle task instead"
  "$build/ait-convert" triangle --train 6000 --test 1000 --seed 1 --out "$data/triangle" >/dev/null
  train="$data/triangle-train.safetensors"
  test="$data/triangle-test.safetensors"
fi
start=$(date +%s)
"$ait" train --data "$train" --val "$test" --model tiny --epochs "$epochs" --batch-size 64 --lr 1e-3 \
  --weight-decay 0.05 --seed 0 --device cpu --out "$build/demo-run"
"$ait" eval --checkpoint "$build/demo-run/model.safetensors" --data "$test" --device cpu
echo "demo: total time $(( $(date +%s) - start )) s (training + evaluation)"

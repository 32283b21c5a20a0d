#!/usr/bin/env bash
# `make demo`: train the `tiny` AiT on Fashion-MNIST (Debian's dataset-fashion-mnist) on the CPU
# as a one-cell `ait experiment`, test it once, and draw its learning curves and one picture of
# what the memory slots select. Without the package, the same on the generated Triangle task.
#
# The settings were chosen on a validation split of 5,000 images held out from the 60,000
# training images (README.md, "make demo"); the test split is evaluated once, at the end.
set -euo pipefail
build=${1:-build}
data="$build/data"
out="$build/demo"
rm -rf "$out"  # every demo trains afresh
mkdir -p "$data" "$out"
src=${AIT_DEMO_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}  # another folder: for trying the fallback
epochs=${AIT_DEMO_EPOCHS:-6}
if [ -f "$src/train-images-idx3-ubyte.gz" ]; then
  train="$data/fashion-mnist-train-55k.safetensors"
  val="$data/fashion-mnist-val-5k.safetensors"
  test="$data/fashion-mnist-test.safetensors"
  [ -f "$train" ] && [ -f "$val" ] ||
    "$build/ait-convert" idx --images "$src/train-images-idx3-ubyte.gz" --labels "$src/train-labels-idx1-ubyte.gz" \
      --out "$train" --split 5000 --val-out "$val" --seed 1
  [ -f "$test" ] ||
    "$build/ait-convert" idx --images "$src/t10k-images-idx3-ubyte.gz" --labels "$src/t10k-labels-idx1-ubyte.gz" \
      --out "$test"
  task="Fashion-MNIST (55,000 training, 5,000 validation, 10,000 test images)"
  cell='{"model": "tiny"}'
else
  echo "demo: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist);"
  echo "demo: training on the generated Triangle task instead"
  "$build/ait-convert" triangle --train 7000 --test 1000 --seed 1 --split 1000 \
    --val-out "$data/triangle-val.safetensors" --out "$data/triangle" >/dev/null
  train="$data/triangle-train.safetensors"
  val="$data/triangle-val.safetensors"
  test="$data/triangle-test.safetensors"
  task="the Triangle task (6,000 training, 1,000 validation, 1,000 test images)"
  cell='{"model": "tiny", "set": {"patch_size": 8}}'  # 64 tokens a 64x64 image
fi
abs() { echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"; }
cat >"$out/grid.json" <<JSON
{"data": {"train": "$(abs "$train")", "val": "$(abs "$val")", "test": "$(abs "$test")"},
 "budget": {"epochs": $epochs, "batch_size": 128, "lr": 0.002, "weight_decay": 0.5, "log_every": 50},
 "cells": {"tiny": $cell},
 "seeds": [0]}
JSON
echo "demo: training AiT tiny on $task, $epochs epochs on the CPU"
start=$(date +%s)
"$build/ait" experiment "$out/grid.json" --out "$out" --device cpu
echo "demo: total time $(($(date +%s) - start)) s (training, validation and the test evaluation)"
sed -n '/^## Runs/,$p' "$out/results.md"
"$build/ait" viz --checkpoint "$out/runs/tiny/seed-0/model.safetensors" --data "$test" --out "$out/viz" --count 4 \
  --device cpu >/dev/null
echo "demo: results          $out/results.md"
echo "demo: learning curves  $out/curves.svg"
echo "demo: memory selection $out/viz/layer0_gates.png (one column per memory slot: the patches it wrote)"

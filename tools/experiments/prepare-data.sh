#!/usr/bin/env bash
# Makes the data files of the grids in this folder under BUILD/data (default build/data):
# Fashion-MNIST (Debian's dataset-fashion-mnist) with 5,000 training images held out for
# validation, the Triangle task, and Sort-of-CLEVR with a validation set drawn from other seeds.
#   tools/experiments/prepare-data.sh [BUILD]
set -euo pipefail
build=${1:-build}
convert="$build/ait-convert"
data="$build/data"
mkdir -p "$data"
fm=/usr/share/datasets/fashion-mnist
if [ -f "$fm/train-images-idx3-ubyte.gz" ]; then
  "$convert" idx --images "$fm/train-images-idx3-ubyte.gz" --labels "$fm/train-labels-idx1-ubyte.gz" \
    --out "$data/fm-train-55k.safetensors" --split 5000 --val-out "$data/fm-val-5k.safetensors" --seed 1
  "$convert" idx --images "$fm/t10k-images-idx3-ubyte.gz" --labels "$fm/t10k-labels-idx1-ubyte.gz" \
    --out "$data/fm-test.safetensors"
else
  echo "prepare-data: no Fashion-MNIST (apt-get install dataset-fashion-mnist); skipping it" >&2
fi
"$convert" triangle --train 10000 --test 2000 --seed 0 --split 1000 \
  --val-out "$data/triangle-val.safetensors" --out "$data/triangle"
# Sort-of-CLEVR at the papers' size (9,800 / 200 images, 30 questions each); the validation
# images come from another seed, so no training image is seen again at validation.
"$convert" sort-of-clevr --train 9800 --test 200 --seed 0 --out "$data/soc"
"$convert" sort-of-clevr --train 200 --test 1 --seed 7 --out "$data/socval"
# Non-relational questions only: the diagnostic of docs/results.md.
"$convert" sort-of-clevr --train 3000 --test 200 --seed 3 --questions nonrel --out "$data/socnr"
"$convert" sort-of-clevr --train 200 --test 1 --seed 8 --questions nonrel --out "$data/socnrval"

#!/bin/sh
# Installs the build into a temporary prefix, checks what the package holds, builds
# examples/classify.c against the installed package (find_package(ait), then pkg-config) and
# checks that its logits equal `ait predict --logits` on the same images, bit for bit (both
# print %.9g, which gives back the float exactly).
#
#   tests/install_test.sh SOURCE_DIR BUILD_DIR
set -eu
src=$1
build=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ait-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
fail() { echo "install_test: $*" >&2; exit 1; }

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log"; fail "cmake --install failed"; }

# ---- what the package holds
for f in include/ait.h lib/libait.so.0.1.0 lib/libait.so.0 lib/libait.so lib/libait.a \
         lib/cmake/ait/aitConfig.cmake lib/cmake/ait/aitConfigVersion.cmake lib/cmake/ait/aitTargets.cmake \
         lib/pkgconfig/ait.pc bin/ait bin/ait-convert bin/ait-export bin/ait-clevr-report; do
  [ -e "$prefix/$f" ] || fail "the installed package lacks $f"
done
soname=$(readelf -d "$prefix/lib/libait.so.0.1.0" | sed -n 's/.*Library soname: \[\(.*\)\].*/\1/p')
[ "$soname" = libait.so.0 ] || fail "SONAME is '$soname', expected libait.so.0"
# The shared library exports the C interface and nothing else.
others=$(nm -D --defined-only "$prefix/lib/libait.so" | awk '$2 ~ /^[TDBRVW]$/ && $3 !~ /^ait_/ {print $3}')
[ -z "$others" ] || fail "libait.so exports more than the C interface: $(echo $others | head -c 300)"

# ---- images: three classes of odd-sized (8x12) grey PGMs from a seeded generator
x=12345
for c in a b c; do
  mkdir -p "$tmp/images/$c"
  for i in 1 2 3 4 5; do
    f=$tmp/images/$c/img$i.pgm
    printf 'P5\n12 8\n255\n' >"$f"
    n=0
    while [ $n -lt 96 ]; do
      x=$(( (x * 1103515245 + 12345) % 2147483648 ))
      printf "\\$(printf %03o $(( (x / 65536) % 256 )))" >>"$f"
      n=$((n + 1))
    done
  done
done
files=$(LC_ALL=C ls -d "$tmp"/images/*/*.pgm)
count=$(echo "$files" | wc -l)

# ---- a small trained checkpoint (it stores the training data's normalisation) and `ait predict`
bin=$prefix/bin
"$bin/ait-convert" folder --input "$tmp/images" --out "$tmp/data.safetensors" >/dev/null
# A small model: tiny_select's sizes (tests/golden), the geometry and classes from the data.
printf '{"dim": 16, "depth": 2, "heads": 2, "head_dim": 8, "mlp_dim": 32, "memory_slots": 4, "memory_dim": 8,
 "memory_heads": 2, "bottleneck": 6}\n' >"$tmp/config.json"
"$bin/ait" train --data "$tmp/data.safetensors" --config "$tmp/config.json" \
  --epochs 1 --batch-size 4 --device cpu --out "$tmp/run" >"$tmp/train.log" 2>&1 ||
  { cat "$tmp/train.log"; fail "ait train failed"; }
ckpt=$tmp/run/model.safetensors
"$bin/ait" predict --checkpoint "$ckpt" --data "$tmp/data.safetensors" --count "$count" --batch-size "$count" \
  --logits --device cpu >"$tmp/predict.txt"
sed -n 's/.* logits //p' "$tmp/predict.txt" >"$tmp/want.txt"
[ "$(wc -l <"$tmp/want.txt")" -eq "$count" ] || { cat "$tmp/predict.txt"; fail "ait predict printed no logits"; }

# ---- examples/classify.c, built twice against the installed package, must print the same logits
check_example() {  # $1: the program, $2: how it was built
  # shellcheck disable=SC2086
  "$1" "$ckpt" $files >"$tmp/got.out" || fail "classify ($2) failed"
  sed -n 's/.* logits //p' "$tmp/got.out" >"$tmp/got.txt"
  if ! cmp -s "$tmp/want.txt" "$tmp/got.txt"; then
    diff "$tmp/want.txt" "$tmp/got.txt" >&2 || true
    fail "classify ($2) logits differ from ait predict's"
  fi
  echo "install_test: classify ($2): $count images, logits equal ait predict's"
}

cmake -S "$src/examples" -B "$tmp/example-build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  >"$tmp/example.log" 2>&1 && cmake --build "$tmp/example-build" >>"$tmp/example.log" 2>&1 ||
  { cat "$tmp/example.log"; fail "building examples/ with find_package(ait) failed"; }
check_example "$tmp/example-build/classify" "find_package"

export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
[ "$(pkg-config --modversion ait)" = 0.1.0 ] || fail "pkg-config --modversion ait is not 0.1.0"
# shellcheck disable=SC2046
cc -std=c99 -pedantic-errors -Wall -Wextra -Werror -o "$tmp/classify-pc" "$src/examples/classify.c" \
  $(pkg-config --cflags --libs ait) || fail "building classify.c with pkg-config failed"
LD_LIBRARY_PATH="$prefix/lib" check_example "$tmp/classify-pc" "pkg-config"

# The static library, through pkg-config --static.
# shellcheck disable=SC2046
cc -std=c99 -o "$tmp/classify-static" "$src/examples/classify.c" $(pkg-config --cflags ait) \
  "$prefix/lib/libait.a" $(pkg-config --static --libs-only-l ait | sed 's/-lait//') ||
  fail "linking classify.c with libait.a failed"
check_example "$tmp/classify-static" "libait.a"

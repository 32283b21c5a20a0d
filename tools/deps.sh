#!/usr/bin/env bash
# Installs (or names) the Debian packages a make target needs. Usage: tools/deps.sh GROUP...
# Groups: build (compiler, CMake, Vulkan headers, GLSL compiler), test (GoogleTest, lavapipe,
# validation layers), demo (Fashion-MNIST), bench (OpenBLAS for the comparison, optional).
set -euo pipefail
declare -A group
group[build]="g++ cmake make libvulkan-dev glslc spirv-tools"
group[test]="libgtest-dev mesa-vulkan-drivers vulkan-validationlayers vulkan-tools"
group[demo]="dataset-fashion-mnist"
group[bench]="libopenblas0"
want=()
for g in "$@"; do
  [ -n "${group[$g]+x}" ] || { echo "deps: unknown group '$g'" >&2; exit 2; }
  want+=(${group[$g]})
done
missing=()
for p in "${want[@]}"; do
  s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$s" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: missing packages: ${missing[*]} (no apt-get here: install them with your package manager)" >&2
  exit 1
fi
cmd="apt-get update && apt-get install -y ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages: ${missing[*]}" >&2
  echo "deps: run as root:  $cmd" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
if ! apt-get install -y -q "${missing[@]}"; then
  # dataset-fashion-mnist and libopenblas0 are optional: the demo and bench fall back without them.
  optional=" dataset-fashion-mnist libopenblas0 "
  required=()
  for p in "${missing[@]}"; do [[ "$optional" == *" $p "* ]] || required+=("$p"); done
  if [ ${#required[@]} -gt 0 ]; then apt-get install -y -q "${required[@]}"; fi
  echo "deps: optional packages could not be installed; continuing without them" >&2
fi

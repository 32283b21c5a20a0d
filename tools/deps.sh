#!/usr/bin/env bash
# Installs (or names) the Debian packages a make target needs. Usage: tools/deps.sh GROUP...
# Groups: build (compiler, CMake, Vulkan headers, GLSL compiler), test (GoogleTest, lavapipe,
# validation layers), demo (Fashion-MNIST), bench (OpenBLAS for the comparison, optional).
#
# On Debian (dpkg-query and apt-get present): missing packages are installed when run as root
# (after apt-get update); otherwise the exact command is printed and the exit status is 1.
# Elsewhere the packages cannot be checked: their names are printed and the exit status is 0,
# so that the build goes on and CMake's own checks name whatever is really missing.
set -euo pipefail
declare -A group
group[build]="g++ cmake make libvulkan-dev glslc spirv-tools"
group[test]="libgtest-dev mesa-vulkan-drivers vulkan-validationlayers vulkan-tools"
group[demo]="dataset-fashion-mnist"
group[bench]="libopenblas0"
want=()
for g in "$@"; do
  [ -n "${group[$g]+x}" ] || { echo "deps: unknown group '$g' (known: build test demo bench)" >&2; exit 2; }
  read -ra names <<<"${group[$g]}"
  want+=("${names[@]}")
done
[ ${#want[@]} -eq 0 ] && exit 0

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "deps: no dpkg-query here (not Debian): could not check ${want[*]}" >&2
  echo "deps: continuing; install the equivalents with your package manager if the build asks for them" >&2
  exit 0
fi

missing=()
for p in "${want[@]}"; do
  s=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$s" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "deps: not installed according to dpkg: ${missing[*]}" >&2
  echo "deps: no apt-get here, so nothing was installed; continuing (CMake names what the build lacks)" >&2
  exit 0
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

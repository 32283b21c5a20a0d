#!/usr/bin/env bash
# Builds every tools/fuzz/fuzz_*.cpp as a libFuzzer + ASan + UBSan binary, then runs each one
# for a while and reports executions and crashes.
#
# usage: tools/fuzz/build.sh OUTDIR [SECONDS] [TARGET...]
#   OUTDIR    where the objects, binaries, corpora and crash artifacts go (created)
#   SECONDS   how long to run each target, one after the other (default 60; 0 = build only)
#   TARGET    names such as fuzz_png or png (default: every tools/fuzz/fuzz_*.cpp)
# environment:
#   CXX (default clang++), FUZZ_MAX_LEN (default 16384), FUZZ_RSS_MB (default 2048),
#   FUZZ_NICE (default 10), FUZZ_JOBS (parallel compiles, default 2)
#
# Corpora persist in OUTDIR/corpus/<target>/ and are seeded from tests/fuzz_regressions/<name>/
# (the saved crashing inputs; <name> is the target without "fuzz_"). Crashing inputs land in
# OUTDIR/artifacts/<target>/; copy them to tests/fuzz_regressions/<name>/ so that
# tests/test_fuzz_regressions.cpp replays them. Exit status: 0 when nothing crashed, 1 when a
# target crashed, 2 on a build or usage error.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 1 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
out=$1
secs=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
case "$secs" in ''|*[!0-9]*) echo "fuzz: SECONDS must be a non-negative integer, not '$secs'" >&2; exit 2;; esac
CXX=${CXX:-clang++}
max_len=${FUZZ_MAX_LEN:-16384}
rss_mb=${FUZZ_RSS_MB:-2048}
nice_n=${FUZZ_NICE:-10}
jobs=${FUZZ_JOBS:-2}

if ! command -v "$CXX" >/dev/null 2>&1; then
  echo "fuzz: $CXX not found; libFuzzer needs clang and its runtime:" >&2
  echo "fuzz:   apt-get update && apt-get install -y clang libclang-rt-dev" >&2
  exit 2
fi
mkdir -p "$out/obj" "$out/bin" "$out/corpus" "$out/artifacts"
out=$(cd "$out" && pwd)

# Does this clang have the libFuzzer runtime? (On Debian it is the separate libclang-rt-dev.)
probe="$out/obj/probe"
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' > "$probe.cpp"
if ! "$CXX" -fsanitize=fuzzer,address,undefined "$probe.cpp" -o "$probe" 2>"$probe.log"; then
  cat "$probe.log" >&2
  echo "fuzz: $CXX cannot link -fsanitize=fuzzer; install the clang runtime libraries:" >&2
  echo "fuzz:   apt-get update && apt-get install -y clang libclang-rt-dev" >&2
  exit 2
fi

# The parsers the targets exercise and what they pull in (kept to the I/O layer: no model code).
lib_srcs=(apps/convert io/image io/npy io/dataset io/safetensors io/json io/inflate io/whole_file io/idx)
# fuzz_checkpoint alone also links the model and the CPU tensor backend it runs on.
model_srcs=(core/tensor core/ops cpu/cpu_kernels cpu/gemm cpu/threadpool model/config model/model)
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fno-sanitize-recover=undefined -pthread -I"$root/src")

newest_header=$(ls -t "$root"/src/*/*.h | head -1)
compile() {  # src obj
  local src=$1 obj=$2
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_header" -nt "$obj" ] || [ "$0" -nt "$obj" ]; then
    echo "fuzz: compiling ${src#$root/}"
    "$CXX" "${flags[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$obj"
  fi
}
export -f compile 2>/dev/null || true

targets=()
if [ $# -gt 0 ]; then
  for t in "$@"; do t=${t#fuzz_}; t=${t%.cpp}; targets+=("fuzz_$t"); done
else
  for f in "$root"/tools/fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi
all_srcs=("${lib_srcs[@]}")
case " ${targets[*]} " in *" fuzz_checkpoint "*) all_srcs+=("${model_srcs[@]}");; esac

pids=()
fail=0
for s in "${all_srcs[@]}"; do
  compile "$root/src/$s.cpp" "$out/obj/${s//\//_}.o" &
  pids+=($!)
  if [ ${#pids[@]} -ge "$jobs" ]; then wait "${pids[0]}" || fail=1; pids=("${pids[@]:1}"); fi
done
for p in "${pids[@]}"; do wait "$p" || fail=1; done
[ $fail -eq 0 ] || { echo "fuzz: library build failed" >&2; exit 2; }
objs_of() {  # target: the objects it links
  local s list=("${lib_srcs[@]}")
  [ "$1" = fuzz_checkpoint ] && list+=("${model_srcs[@]}")
  for s in "${list[@]}"; do echo "$out/obj/${s//\//_}.o"; done
}

for t in "${targets[@]}"; do
  src="$root/tools/fuzz/$t.cpp"
  [ -f "$src" ] || { echo "fuzz: no such target $src" >&2; exit 2; }
  mapfile -t objs < <(objs_of "$t")
  bin="$out/bin/$t"
  need=0
  [ -f "$bin" ] && [ ! "$src" -nt "$bin" ] || need=1
  for o in "${objs[@]}"; do [ "$o" -nt "$bin" ] && need=1; done
  if [ $need -eq 1 ]; then
    echo "fuzz: building $t"
    "$CXX" "${flags[@]}" -fsanitize=fuzzer,address,undefined "$src" "${objs[@]}" -o "$bin"
  fi
done
[ "$secs" -gt 0 ] || { echo "fuzz: built ${targets[*]} in $out/bin"; exit 0; }

# ---- run ----
results=()
crashed=0
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  corpus="$out/corpus/$t"
  arts="$out/artifacts/$t"
  mkdir -p "$corpus" "$arts"
  seeds=()
  [ -d "$root/tests/fuzz_regressions/$name" ] && seeds+=("$root/tests/fuzz_regressions/$name")
  len=$max_len
  if [ "$t" = fuzz_checkpoint ]; then  # seeded with the golden checkpoints, which are larger
    cp -n "$root"/tests/golden/*.ckpt.safetensors "$corpus/" 2>/dev/null || true
    len=$(( max_len > 65536 ? max_len : 65536 ))
  fi
  before=$(ls "$arts" | wc -l)
  log="$out/$t.log"
  echo "fuzz: running $t for ${secs}s (log: $log)"
  rc=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    nice -n "$nice_n" "$out/bin/$t" -max_total_time="$secs" -max_len="$len" -rss_limit_mb="$rss_mb" \
    -timeout=25 -print_final_stats=1 -artifact_prefix="$arts/" "$corpus" "${seeds[@]}" >"$log" 2>&1 || rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
  after=$(ls "$arts" | wc -l)
  crashes=$((after - before))
  if [ $rc -ne 0 ] && [ $crashes -eq 0 ]; then crashes=1; fi  # died without leaving an artifact
  [ $crashes -eq 0 ] || crashed=1
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  results+=("$(printf '%-18s %6s %12s %6s %8s' "$t" "$secs" "${execs:-?}" "${cov:-?}" "$crashes")")
  if [ $crashes -ne 0 ]; then
    echo "fuzz: $t CRASHED (exit $rc); new artifacts:" >&2
    ls -t "$arts" | head -n "$((crashes > 0 ? crashes : 1))" | sed "s|^|  $arts/|" >&2
    grep -m1 -A12 'ERROR: \|runtime error\|deadly signal' "$log" >&2 || tail -20 "$log" >&2
  fi
done
echo
printf '%-18s %6s %12s %6s %8s\n' target seconds executions cov crashes
for r in "${results[@]}"; do echo "$r"; done
exit $crashed

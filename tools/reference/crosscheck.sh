#!/usr/bin/env bash
# Cross-checks `BUILD_DIR/ait dump` (spec section 7) against the PyTorch reference on the golden
# fixture in tests/golden/. With /usr/bin/python3 and torch, the reference dumps are regenerated
# (and checked against the committed ones); without, the committed dumps are the expectation.
#
#   tools/reference/crosscheck.sh BUILD_DIR
#   tools/reference/crosscheck.sh --compare CANDIDATE EXPECTED [CKPT] [--tol X] [--label L] [--quiet]
#
# Environment: AIT_REF_PYTHON (the reference's python, default /usr/bin/python3), AIT_DUMP_ARGS (extra arguments for `ait dump`, e.g. "--device vulkan"),
# CROSSCHECK_VERBOSE=1 (one row per tensor), PYTHON (comparer's python, stdlib only).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
golden=$(cd "$here/../../tests/golden" && pwd)
dump_args=(--train-steps 3 --lr 1e-3 --weight-decay 0.01)

compare() {
  "${PYTHON:-python3}" - "$@" <<'PYEOF'
import json, math, os, struct, sys
from array import array

def load(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        code = {"F32": "f", "F64": "d", "I32": "i", "I64": "q"}[info["dtype"]]
        a, b = info["data_offsets"]
        vals = array(code, raw[8 + n + a:8 + n + b])
        if sys.byteorder != "little":
            vals.byteswap()
        if len(vals) != math.prod(info["shape"]):
            raise SystemExit(f"{path}: tensor '{name}' size does not match its shape")
        out[name] = (info["shape"], vals)
    return out

args, tol_all, label = sys.argv[1:], None, ""
while "--tol" in args:
    i = args.index("--tol"); tol_all = float(args[i + 1]); del args[i:i + 2]
quiet = "--quiet" in args
args = [a for a in args if a != "--quiet"]
while "--label" in args:
    i = args.index("--label"); label = args[i + 1]; del args[i:i + 2]
cand, exp = load(args[0]), load(args[1])
ckpt = load(args[2]) if len(args) > 2 else {}

# group: (tolerance, metric); metric 'norm': |a-b|/|b|; 'update' (param.*, with CKPT):
# |a-b| / max(|b-ckpt|, 1e-3 |b|), the error relative to what the steps changed. Absolute |a-b|
# when the denominator is 0 (e.g. a zero gradient).
GROUPS = [("logits", 1e-5, "norm"), ("eval.logits", 1e-5, "norm"), ("loss", 1e-5, "norm"),
          ("loss.ce", 1e-5, "norm"), ("loss.balance", 1e-5, "norm"), ("grad.", 1e-4, "norm"),
          ("memory.final.", 1e-4, "norm"), ("memory.", 1e-5, "norm"), ("step_losses", 1e-4, "norm"),
          ("param.", 1e-3, "update")]

def group_of(name):
    for g, tol, metric in GROUPS:
        if name == g or (g.endswith(".") and name.startswith(g)):
            return g, (tol_all if tol_all is not None else tol), metric
    return name, tol_all if tol_all is not None else 1e-5, "norm"

def error(name, metric):
    (sa, a), (sb, b) = cand[name], exp[name]
    if sa != sb:
        return math.inf, f"shape {sa} vs {sb}"
    if not all(math.isfinite(x) for x in a):
        return math.inf, "non-finite values"
    diff = math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))
    ref = math.sqrt(sum(y * y for y in b))
    if metric == "update" and name[len("param."):] in ckpt:  # the change, floored: float32 ulps
        change = math.sqrt(sum((y - z) ** 2 for y, z in zip(b, ckpt[name[len("param."):]][1])))
        ref = max(change, 1e-3 * ref)
    return (diff / ref if ref > 0 else diff), ""

fail, rows, worst = False, [], {}
for name in sorted(set(cand) | set(exp)):
    if name not in exp or name not in cand:
        rows.append((label, name, name, math.inf, 0, "unexpected tensor" if name in cand else "missing"))
        fail = True
        continue
    g, tol, metric = group_of(name)
    err, note = error(name, metric)
    ok = err <= tol
    fail |= not ok
    row = (label, g + ("*" if g.endswith(".") else ""), name, err, tol, note)
    if os.environ.get("CROSSCHECK_VERBOSE") == "1" or not ok:
        rows.append(row)
    if g not in worst or err > worst[g][3]:
        worst[g] = row
if quiet:  # failures only, then one line
    top = max(worst.values(), key=lambda r: r[3] / r[4] if r[4] else r[3])
    rows.append((label, "ref=golden", top[2], top[3], top[4], "(regenerated reference vs committed dump)"))
elif os.environ.get("CROSSCHECK_VERBOSE") != "1":
    rows = list(worst.values()) + [r for r in rows if r not in worst.values()]
for lab, g, name, err, tol, note in rows:
    status = "ok" if err <= tol else "FAIL"
    print(f"{lab:<14} {g:<14} {name:<40} {err:10.3e} {tol:8.0e}  {status} {note}")
sys.exit(1 if fail else 0)
PYEOF
}

if [ "${1:-}" = --compare ]; then
  shift
  printf '%-14s %-14s %-40s %10s %8s\n' case group "worst tensor" error tol
  compare "$@"
  exit
fi
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR | $0 --compare CANDIDATE EXPECTED [CKPT]" >&2; exit 2; }
ait=$1/ait
[ -x "$ait" ] || { echo "crosscheck: $ait not found; build first (make build)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
torch=0
ref_py=${AIT_REF_PYTHON:-/usr/bin/python3}
if "$ref_py" -c 'import torch' >/dev/null 2>&1; then
  torch=1
else
  echo "crosscheck: $ref_py has no torch; comparing against the committed golden dumps"
fi
status=0
printf '%-14s %-14s %-40s %10s %8s\n' case group "worst tensor" error tol
for ckpt in "$golden"/*.ckpt.safetensors; do
  name=$(basename "$ckpt" .ckpt.safetensors)
  batch=$golden/$name.batch.safetensors
  expected=$golden/$name.dump.safetensors
  if [ $torch = 1 ]; then
    reference=$here/ait_reference.py
    if grep -q '"arch": "coordination"' "$golden/$name.config.json"; then reference=$here/coordination_reference.py; fi
    "$ref_py" "$reference" dump --checkpoint "$ckpt" --batch "$batch" \
      --out "$tmp/$name.ref.safetensors" "${dump_args[@]}"
    # the regenerated reference must still match the committed fixture (else: stale fixture)
    compare "$tmp/$name.ref.safetensors" "$expected" --tol 1e-6 --quiet --label "$name" || status=1
    expected=$tmp/$name.ref.safetensors
  fi
  # shellcheck disable=SC2086
  if ! "$ait" dump --checkpoint "$ckpt" --batch "$batch" --out "$tmp/$name.ait.safetensors" \
      "${dump_args[@]}" ${AIT_DUMP_ARGS:-}; then
    echo "$name: ait dump failed" >&2
    status=1
    continue
  fi
  compare "$tmp/$name.ait.safetensors" "$expected" "$ckpt" --label "$name" || status=1
done
if [ $status = 0 ]; then echo "crosscheck: all passed"; else echo "crosscheck: FAILED"; fi
exit $status

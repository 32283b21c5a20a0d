#!/usr/bin/env bash
# `make crosscheck`, second half: data-parallel training (docs/spec.md §12) with the PyTorch
# reference, checked against one process and against BUILD_DIR/ait. Skipped, with a message, where
# the reference's python has no torch or no gloo backend.
#
#   tools/reference/ddp_check.sh BUILD_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
ref_py=${AIT_REF_PYTHON:-/usr/bin/python3}
[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
if ! "$ref_py" -c 'import torch.distributed as d; assert d.is_available() and d.is_gloo_available()' \
    >/dev/null 2>&1; then
  echo "ddp_check: skipped: $ref_py has no torch with torch.distributed (gloo); apt-get install python3-torch"
  exit 0
fi
exec "$ref_py" "$here/ddp_check.py" "$1"

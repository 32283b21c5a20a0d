#!/usr/bin/python3
"""Checks train_ddp.py (docs/spec.md section 12): 2 gloo replicas x batch 16 against 1 process x
batch 32 for 3 steps in float64, then `ait` on the written run, then the step time of each.

    tools/reference/ddp_check.py BUILD_DIR [--work DIR]

Exit status 0 when every check passes. Everything is written under a temporary folder.
"""
import json, math, os, re, shutil, socket, subprocess, sys, tempfile

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import ait_reference as ref  # noqa: E402
import train_ddp  # noqa: E402

CONFIG = {"channels": 3, "image_height": 8, "image_width": 12, "patch_size": 4, "question_dim": 5, "dim": 16,
          "depth": 2, "heads": 2, "head_dim": 8, "mlp_dim": 24, "num_classes": 3, "memory_slots": 5,
          "memory_dim": 6, "memory_heads": 2, "bottleneck": 11, "hopfield_beta": 1.0, "memory_momentum": 0.9,
          "balance_coef": 0.05, "write_dropout": 0.1}
failures = []


def check(what, err, tol):
    ok = err <= tol
    print(f"  {what:<58} {err:10.3e}  (tol {tol:.0e}) {'ok' if ok else 'FAIL'}", flush=True)
    if not ok:
        failures.append(what)


def make_dataset(path, n, c, h, w, q, classes, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)
    scaled = images.double() / 255
    mean = scaled.mean(dim=(0, 2, 3)).tolist()
    std = scaled.permute(1, 0, 2, 3).reshape(c, -1).std(dim=1, unbiased=False).tolist()
    tensors = {"images": images, "labels": torch.randint(0, classes, (n,), generator=g, dtype=torch.int32)}
    if q:
        tensors["questions"] = torch.randn(n, q, generator=g)
    ref.save_safetensors(path, tensors, {"format": "ait-dataset", "version": "1", "mean": json.dumps(mean),
                                         "std": json.dumps(std), "source": "ddp_check.py random data",
                                         "classes": json.dumps([f"class{i}" for i in range(classes)])})


def train(replicas, args):
    """Starts the replicas as torchrun would (the env:// variables), one process each. torchrun
    itself is not used here: Debian's torch 1.13 launcher fails on Python 3.11 (docs/scale-out.md)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(replicas):
        env = dict(os.environ, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(replicas),
                   LOCAL_WORLD_SIZE=str(replicas), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        procs.append(subprocess.Popen([sys.executable, os.path.join(here, "train_ddp.py")] + args, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=600)[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        outputs = [p.communicate()[0] for p in procs]
        outputs.append("(stopped after 600 s)")
    if any(p.returncode for p in procs) or "(stopped after 600 s)" in outputs:
        sys.exit("ddp_check: train_ddp.py " + " ".join(args) + " failed:\n" + "\n".join(outputs))
    return json.loads([line for line in outputs[0].splitlines() if line.startswith('{"replicas"')][-1])


def rel(a, b):
    return ((a - b).norm() / b.norm().clamp_min(1e-300)).item()


def compare_traces(one, two):
    a, _ = ref.load_safetensors(one)
    b, _ = ref.load_safetensors(two)
    worst = {}
    for name in b:
        group = name.split(".")[0]
        worst[group] = max(worst.get(group, 0.0), rel(a[name], b[name]))
    return worst, a["step_losses"]


def compare_runs(work, common, tag, title):
    print(title)
    train(1, common + ["--out", f"{work}/{tag}1", "--record", f"{work}/{tag}1.rec"])
    train(2, common + ["--out", f"{work}/{tag}2", "--record", f"{work}/{tag}2.rec"])
    worst, losses = compare_traces(f"{work}/{tag}2.rec", f"{work}/{tag}1.rec")
    for group, err in sorted(worst.items()):
        check(f"{group} (worst tensor, relative)", err, 1e-10)
    return losses


def equivalence(work, data, start):
    common = ["--data", data, "--checkpoint", start, "--epochs", "1", "--dtype", "float64", "--lr", "3e-3",
              "--seed", "0"]
    losses = compare_runs(work, common + ["--batch-size", "32"], "even",
                          "2 gloo replicas x batch 16 vs 1 process x batch 32, 3 steps, float64:")
    check(f"steps recorded ({len(losses)})", abs(len(losses) - 3), 0)
    losses = compare_runs(work, common + ["--batch-size", "27"], "odd",
                          "uneven shards: global batch 27 (14 + 13), the last 15 (8 + 7), 4 steps:")
    check(f"steps recorded ({len(losses)})", abs(len(losses) - 4), 0)
    train(2, common + ["--batch-size", "32", "--out", f"{work}/local", "--record", f"{work}/local.rec",
                       "--local-write"])
    local, _ = compare_traces(f"{work}/local.rec", f"{work}/even1.rec")
    print(f"  (for contrast, each replica writing from its own shard: memory differs by {local['memory']:.3e},"
          f" parameters by {local['param']:.3e})")
    check("per-shard writing differs (1e-6 / its memory difference)", 1e-6 / max(local["memory"], 1e-300), 1)


def against_ait(work, ait, data):
    print("ait on the run written by 2 replicas:")
    model_path = f"{work}/even2/model.safetensors"
    model = ref.load_checkpoint(model_path).double()
    _, meta = ref.load_safetensors(model_path)
    norm = json.loads(meta["data_mean"]), json.loads(meta["data_std"])
    images, labels, questions, _, _ = train_ddp.load_dataset(data, torch.float64, *norm)
    images, questions = images.float(), questions.float()  # the batch exactly as `ait dump` reads it
    ref.save_safetensors(f"{work}/batch.safetensors", {"images": images, "labels": labels.int(),
                                                       "questions": questions})
    model.eval()
    with torch.no_grad():
        logits = model(images.double(), questions.double(), write=False)[0]
        ce = torch.nn.functional.cross_entropy(logits, labels).item()
    subprocess.run([ait, "dump", "--checkpoint", model_path, "--batch", f"{work}/batch.safetensors",
                    "--out", f"{work}/ait.dump"], check=True, capture_output=True)
    dumped, _ = ref.load_safetensors(f"{work}/ait.dump")
    check("ait dump eval.logits vs reference logits (relative)", rel(dumped["eval.logits"].double(), logits), 1e-5)
    out = subprocess.run([ait, "eval", "--checkpoint", model_path, "--data", data], capture_output=True, text=True)
    m = re.search(r"cross-entropy ([0-9.]+)", out.stdout)
    err = abs(float(m.group(1)) - ce) if m else math.inf
    check("ait eval cross-entropy vs reference (printed to 4 decimals)", err, 1e-4)
    out = subprocess.run([ait, "train", "--resume", f"{work}/even2", "--out", f"{work}/even2", "--data", data,
                          "--epochs", "2", "--batch-size", "32", "--seed", "0"], capture_output=True, text=True)
    if out.returncode:
        print(out.stdout + out.stderr)
    check("ait train --resume continues the run (exit status)", out.returncode, 0)
    train(2, ["--data", data, "--resume", f"{work}/even2", "--out", f"{work}/even2", "--epochs", "3",
              "--batch-size", "32", "--seed", "0"])
    with open(f"{work}/even2/current/checkpoint.json") as f:
        epoch = json.load(f)["epoch"]
    check("train_ddp.py --resume of ait's run commits epoch 3", abs(epoch - 3), 0)


def timing(work):
    print("step time, float32, same global batch 64 (2 cores shared):")
    data, cfg = f"{work}/time.safetensors", f"{work}/time.json"
    make_dataset(data, 512, 3, 16, 16, 0, 10, 2)
    with open(cfg, "w") as f:
        json.dump({**CONFIG, "image_height": 16, "image_width": 16, "question_dim": 0, "num_classes": 10, "dim": 64,
                   "heads": 4, "head_dim": 16, "mlp_dim": 128, "memory_slots": 16, "memory_dim": 16,
                   "memory_heads": 4, "bottleneck": 64}, f)
    args = ["--data", data, "--config", cfg, "--batch-size", "64", "--max-steps", "8", "--no-checkpoint",
            "--out", f"{work}/time"]
    one, one2, two = train(1, args + ["--threads", "1"]), train(1, args + ["--threads", "2"]), train(2, args)
    print(f"  1 process, 1 thread:             {one['step_ms']:8.1f} ms/step")
    print(f"  1 process, 2 threads:            {one2['step_ms']:8.1f} ms/step")
    print(f"  2 gloo replicas, 1 thread each:  {two['step_ms']:8.1f} ms/step")


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: ddp_check.py BUILD_DIR")
    ait = os.path.join(sys.argv[1], "ait")
    torch.set_num_threads(2)
    work = tempfile.mkdtemp(prefix="ait-ddp-")
    try:
        data, start = f"{work}/data.safetensors", f"{work}/start.safetensors"
        make_dataset(data, 96, 3, 8, 12, 5, 3, 1)
        torch.manual_seed(3)
        ref.save_checkpoint(ref.AiT(ref.check_config(CONFIG)), start)
        equivalence(work, data, start)
        if os.access(ait, os.X_OK):
            against_ait(work, ait, data)
        else:
            print(f"ddp_check: {ait} not built; skipping the ait checks")
            failures.append("ait not built")
        timing(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("ddp_check:", "FAILED " + ", ".join(failures) if failures else "all passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

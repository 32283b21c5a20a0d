#!/usr/bin/python3
"""Data-parallel training of the AiT reference with torch.distributed (docs/spec.md section 12).

Launch with torchrun (or `python3 -m torch.distributed.run`), one process per device:

    torchrun --nproc_per_node 2 tools/reference/train_ddp.py --data train.safetensors \
        --config model.json --out runs/ddp [--epochs E] [--batch-size GLOBAL] ...

gloo on CPUs, NCCL on GPUs. The memory write sees the global batch: every replica gathers the write
keys and values of all replicas' squashed tokens, so N replicas x batch b compute what one process
computes on batch N*b (the gate, the balance loss and the memory update included). The output is a
run directory of spec section 8.1 that `ait eval`, `ait plot` and `ait train --resume` read.
"""
import argparse, json, math, os, sys, time, zlib

import torch
import torch.distributed as dist
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ait_reference as ref  # noqa: E402

NO_GRAD_PARTS = (".write.v.", ".write.out.", ".write.norm.")  # spec 4: these never get a gradient

# ---------------------------------------------------------------- gathering the write's inputs


def _pad_rows(x, rows):
    return x if x.shape[0] == rows else torch.cat([x, x.new_zeros(rows - x.shape[0], *x.shape[1:])])


def gather_rows_plain(x, counts):
    """Concatenates every replica's rows (replica r holds counts[r]), in rank order. No autograd."""
    if len(counts) == 1:
        return x
    rows = max(counts)
    parts = [x.new_empty(rows, *x.shape[1:]) for _ in counts]
    dist.all_gather(parts, _pad_rows(x.contiguous(), rows))
    return torch.cat([p[:c] for p, c in zip(parts, counts)])


class GatherRows(torch.autograd.Function):
    """all_gather with a gradient: the gathered tensor's gradient is summed over the replicas and
    each replica keeps the rows of its own tokens. Every replica computes the same balance loss
    from the gathered set, so the sum is N times the true gradient, which the 1/N average of
    DistributedDataParallel then cancels (the same factor the parameters above the gather get)."""

    @staticmethod
    def forward(ctx, x, counts):
        ctx.counts = counts
        return gather_rows_plain(x, counts)

    @staticmethod
    def backward(ctx, grad):
        counts, rank = ctx.counts, dist.get_rank()
        rows = max(counts)
        padded = torch.stack([_pad_rows(g, rows) for g in grad.split(counts)])
        dist.all_reduce(padded)
        return padded[rank, :counts[rank]].clone(), None


class GlobalBottleneckWrite(ref.BottleneckWrite):
    """The reference's bottleneck write over the tokens of all replicas (spec 2, step 4.4). Keys
    carry the balance gradient back to each replica's own tokens; values carry none (stop-gradient)."""
    token_counts = [0]  # squashed tokens of each replica in this step, set by train_step
    local_only = False  # --local-write: each replica writes from its own shard (the wrong model)

    def forward(self, gamma, xi):
        (M, m), H = gamma.shape, self.H
        counts = self.token_counts if dist.is_initialized() and not self.local_only else [xi.shape[0]]
        keys, values = self.k(xi), self.v(xi).detach()
        if len(counts) > 1:
            keys, values = GatherRows.apply(keys, counts), gather_rows_plain(values, counts)
        N = keys.shape[0]
        Q = self.q(gamma).reshape(M, H, m).transpose(0, 1)
        K = keys.reshape(N, H, m).transpose(0, 1)
        V = values.reshape(N, H, m).transpose(0, 1)
        S = Q @ K.transpose(1, 2) / math.sqrt(m)
        mask = ref.topk_mask(S.detach(), self.topk)
        A = torch.softmax(S.masked_fill(~mask, float("-inf")), dim=-1)
        O = (A @ V).transpose(0, 1).reshape(M, H * m)
        G = self.norm(F.dropout(self.out(O), self.dropout, self.training) + gamma)
        return G, A, mask, S


def make_global(model):
    for layer in model.layers:
        layer.gwl.write.__class__ = GlobalBottleneckWrite
    for name, p in model.named_parameters():
        if any(s in name for s in NO_GRAD_PARTS):
            p.requires_grad_(False)  # DDP then ignores them and AdamW never touches them

# ---------------------------------------------------------------- data, schedule, shuffles


def load_dataset(path, dtype, mean=None, std=None):
    """Spec section 9. Returns normalised images, labels, questions or None, (mean, std), classes."""
    t, meta = ref.load_safetensors(path)
    if meta.get("format") != "ait-dataset" or meta.get("version") != "1":
        raise SystemExit(f"{path}: not an ait-dataset v1 file")
    if mean is None:
        mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    images = t["images"].to(dtype) / 255.0
    shape = (1, len(mean), 1, 1)
    images = (images - torch.tensor(mean, dtype=dtype).reshape(shape)) / torch.tensor(std, dtype=dtype).reshape(shape)
    questions = t["questions"].to(dtype) if "questions" in t else None
    return images, t["labels"].long(), questions, (mean, std), json.loads(meta["classes"])


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & (2**64 - 1)
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
    return state, z ^ (z >> 31)


def epoch_order(n, seed, epoch):
    """The shuffle of spec section 4 (Fisher-Yates from the end, SplitMix64, rejection sampling)."""
    state, order = (seed * 0x9E3779B97F4A7C15 + epoch + 1) & (2**64 - 1), list(range(n))
    for i in range(n - 1, 0, -1):
        limit = 2**64 - 1 - (2**64 - 1) % (i + 1)
        while True:
            state, x = splitmix64(state)
            if x < limit:
                break
        j = x % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def learning_rate(step, total, warmup, base):
    if step < warmup:
        return 1e-5 + (base - 1e-5) * step / warmup
    return 1e-6 + 0.5 * (base - 1e-6) * (1 + math.cos(math.pi * min(1.0, step / total)))


def shard_counts(n, world):
    """Images per replica of a batch of n: as even as possible, the first replicas take the extra."""
    return [n // world + (1 if r < n % world else 0) for r in range(world)]

# ---------------------------------------------------------------- checkpoints and the run directory


def save_model(model, path, norm):
    meta = {"format": "ait", "version": "1", "producer": "tools/reference/train_ddp.py",
            "config": json.dumps(model.c), "data_mean": json.dumps(norm[0]), "data_std": json.dumps(norm[1])}
    ref.save_safetensors(path, {k: v.float() for k, v in model.state_dict().items()}, meta)


def save_train_state(model, opt, path, epoch, seed, best, step):
    tensors = {"adam.step": torch.tensor(step, dtype=torch.int64), "epoch": torch.tensor(epoch, dtype=torch.int64),
               "seed": torch.tensor(seed, dtype=torch.int64), "best_accuracy": torch.tensor(best, dtype=torch.float32)}
    for name, p in model.named_parameters():
        st = opt.state.get(p, {})
        for key, moment in (("m", "exp_avg"), ("v", "exp_avg_sq")):
            zeros = torch.zeros_like(p, dtype=torch.float32)  # never stepped, or no gradient (spec 8)
            tensors[f"adam.{key}.{name}"] = st[moment].float() if moment in st else zeros
    ref.save_safetensors(path, tensors, {"format": "ait-train-state", "note": "written by train_ddp.py"})


def load_train_state(model, opt, path):
    t, meta = ref.load_safetensors(path)
    if meta.get("format") != "ait-train-state":
        raise SystemExit(f"{path}: not an ait-train-state file")
    step = int(t["adam.step"])
    for name, p in model.named_parameters():
        if p.requires_grad and step > 0:
            opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": t[f"adam.m.{name}"].to(p.dtype).clone(),
                            "exp_avg_sq": t[f"adam.v.{name}"].to(p.dtype).clone()}
    return int(t["epoch"]), int(t["seed"]), float(t["best_accuracy"]), step


def fsync_write(path, data):
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def commit(out, files, epoch):
    """Spec 8.1: a new ckpt-NNNNNN folder with a manifest, then the `current` link is swapped."""
    os.makedirs(out, exist_ok=True)
    current = os.path.join(out, "current")
    old = os.readlink(current) if os.path.islink(current) else None
    folder = "ckpt-%06d" % ((int(old.split("-")[1]) if old else 0) + 1)
    os.makedirs(os.path.join(out, folder))
    manifest = []
    for name, write in files:
        path = os.path.join(out, folder, name)
        write(path + ".tmp")
        with open(path + ".tmp", "rb") as f:
            data = f.read()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        manifest.append({"name": name, "size": len(data), "crc32": zlib.crc32(data)})
    doc = {"format": "ait-run-checkpoint", "version": 1, "epoch": epoch, "files": manifest}
    fsync_write(os.path.join(out, folder, "checkpoint.json"), (json.dumps(doc) + "\n").encode())
    tmp = current + ".tmp.%d" % os.getpid()
    os.symlink(folder, tmp)
    os.replace(tmp, current)
    for name, _ in files:
        link = os.path.join(out, name)
        if not os.path.islink(link):
            if os.path.exists(link):
                os.remove(link)
            os.symlink(os.path.join("current", name), link)
    if old and os.path.isdir(os.path.join(out, old)):
        for name in os.listdir(os.path.join(out, old)):
            os.remove(os.path.join(out, old, name))
        os.rmdir(os.path.join(out, old))


def read_run(run):
    """The committed model, train state and metrics lines of an ait run directory."""
    folder = os.path.join(run, "current") if os.path.islink(os.path.join(run, "current")) else run
    metrics = os.path.join(folder, "metrics.jsonl")
    lines = open(metrics).read() if os.path.exists(metrics) else ""
    return os.path.join(folder, "model.safetensors"), os.path.join(folder, "train_state.safetensors"), lines

# ---------------------------------------------------------------- training


def evaluate(model, images, labels, questions, batch=256):
    """Frozen-memory accuracy and cross-entropy (spec 2, the default of `ait eval`)."""
    model.eval()
    correct, ce = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            q = None if questions is None else questions[i:i + batch]
            logits = model(images[i:i + batch], q, write=False)[0]
            ce += F.cross_entropy(logits, labels[i:i + batch], reduction="sum").item()
            correct += int((logits.argmax(1) == labels[i:i + batch]).sum())
    model.train()
    return correct / len(labels), ce / len(labels)


def train_step(ddp, model, opt, batch, counts, world, rank):
    """One step on a global batch; this replica trains on its shard. Returns the global
    (loss, ce, balance, correct) of the batch."""
    images, labels, questions = batch
    n, first = sum(counts), sum(counts[:rank])
    mine = slice(first, first + counts[rank])
    GlobalBottleneckWrite.token_counts = [c * model.T for c in counts]
    opt.zero_grad(set_to_none=True)
    q = None if questions is None else questions[mine]
    logits, balance, _ = ddp(images[mine], q, write=True)
    ce_sum = F.cross_entropy(logits, labels[mine], reduction="sum")
    (ce_sum * (world / n) + balance).backward()  # DDP averages over the replicas: CE over the n images
    opt.step()
    stats = torch.stack([ce_sum.detach(), (logits.argmax(1) == labels[mine]).sum().to(ce_sum.dtype)])
    if world > 1:
        dist.all_reduce(stats)
    ce = stats[0].item() / n
    return ce + balance.item(), ce, balance.item(), int(stats[1].item())


def start_model(args, data_norm, data_keys, dtype):
    """From --resume DIR, --checkpoint FILE or --config JSON (+ --seed). Returns the model, the
    normalisation to train with, the train state to load (or None) and the metrics lines so far."""
    state, lines, norm = None, "", data_norm
    if args.resume:
        path, state, lines = read_run(args.resume)
    else:
        path = args.checkpoint
    if path:
        model = ref.load_checkpoint(path)
        _, meta = ref.load_safetensors(path)
        if "data_mean" in meta:
            norm = (json.loads(meta["data_mean"]), json.loads(meta["data_std"]))
    else:
        with open(args.config) as f:
            c = json.load(f)
        c.update(data_keys)  # as `ait train` does: the data decide C, H, W, q and K
        torch.manual_seed(args.seed)
        model = ref.AiT(ref.check_config(c))
    changed = {k: v for k, v in model.c.items() if k in ref.LATER_KEYS and v != ref.LATER_KEYS[k]}
    if changed:  # the global write and the memory all-reduce assume the default AiT
        raise SystemExit(f"train_ddp.py: trains the default AiT only, not {changed}")
    return model.to(dtype), norm, state, lines


def record(path, model, losses):
    """float64 trace for the equivalence check: step losses, parameters, memory."""
    out = {"step_losses": torch.tensor(losses, dtype=torch.float64)}
    out.update({"param." + n: p.detach().double() for n, p in model.named_parameters()})
    out.update({f"memory.{i}": l.gwl.memory.detach().double() for i, l in enumerate(model.layers)})
    ref.save_safetensors(path, out)


def run_epoch(ctx, epoch, step):
    """Trains one epoch; returns the next global step and the epoch's metrics line."""
    a, model, n = ctx["args"], ctx["model"], len(ctx["train"][1])
    order = torch.tensor(epoch_order(n, a.seed, epoch))
    sums, seen, t0 = [0.0, 0.0, 0.0, 0], 0, time.perf_counter()
    for first in range(0, n, a.batch_size):
        if a.max_steps and step >= a.max_steps:
            break
        idx = order[first:first + a.batch_size]
        batch = tuple(None if t is None else t[idx] for t in ctx["train"][:3])
        lr = learning_rate(step, ctx["total"], ctx["warmup"], a.lr)
        for g in ctx["opt"].param_groups:
            g["lr"] = lr
        torch.manual_seed(a.seed * 1000003 + step)  # same dropout mask on every replica; resumable
        ts = time.perf_counter()
        loss, ce, bal, correct = train_step(ctx["ddp"], model, ctx["opt"], batch, shard_counts(len(idx), ctx["world"]),
                                            ctx["world"], ctx["rank"])
        if ctx["device"].type == "cuda":
            torch.cuda.synchronize()
        ctx["step_times"].append(time.perf_counter() - ts)
        ctx["losses"].append(loss)
        for i, v in enumerate((loss * len(idx), ce * len(idx), bal * len(idx), correct)):
            sums[i] += v
        seen, step = seen + len(idx), step + 1
        if step % a.log_every == 0 or first + a.batch_size >= n:
            ctx["lines"].append({"kind": "step", "epoch": epoch + 1, "step": step, "loss": sums[0] / seen,
                                 "ce": sums[1] / seen, "balance": sums[2] / seen, "accuracy": sums[3] / seen,
                                 "lr": lr, "images_per_s": seen / (time.perf_counter() - t0)})
    seconds = time.perf_counter() - t0
    return step, {"kind": "epoch", "epoch": epoch + 1, "loss": sums[0] / max(seen, 1), "ce": sums[1] / max(seen, 1),
                  "balance": sums[2] / max(seen, 1), "accuracy": sums[3] / max(seen, 1),
                  "images_per_s": seen / seconds, "seconds": seconds}


def checkpoint(ctx, epoch, line, step):
    """Validation (rank 0), then the commit of spec 8.1; the other replicas wait at a barrier."""
    a, model = ctx["args"], ctx["model"]
    if ctx["rank"] == 0:
        acc, ce = evaluate(model, *ctx["val"][:3])
        line.update(val_ce=ce, val_accuracy=acc)
        ctx["lines"].append(line)
        improved = float(torch.tensor(acc, dtype=torch.float32)) > ctx["best"]
        ctx["best"] = max(ctx["best"], float(torch.tensor(acc, dtype=torch.float32)))
        metrics = "".join(json.dumps(x) + "\n" if isinstance(x, dict) else x for x in ctx["lines"])
        best_src = None if improved else os.path.realpath(os.path.join(a.out, "best.safetensors"))
        files = [("model.safetensors", lambda p: save_model(model, p, ctx["norm"])),
                 ("best.safetensors", lambda p: save_model(model, p, ctx["norm"]) if improved or not
                  os.path.exists(best_src) else open(p, "wb").write(open(best_src, "rb").read())),
                 ("train_state.safetensors",
                  lambda p: save_train_state(model, ctx["opt"], p, epoch + 1, a.seed, ctx["best"], step)),
                 ("metrics.jsonl", lambda p: fsync_write(p, metrics.encode()))]
        commit(a.out, files, epoch + 1)
        print(f"epoch {epoch + 1}: loss {line['loss']:.4f} accuracy {line['accuracy']:.4f} "
              f"val_accuracy {acc:.4f} -> {a.out}", flush=True)
    if ctx["world"] > 1:
        dist.barrier()


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="training dataset (spec 9)")
    ap.add_argument("--val", help="validation dataset (default: the training data)")
    start = ap.add_mutually_exclusive_group(required=True)
    start.add_argument("--config", help="JSON file with the 19 config keys: a fresh model (PyTorch init)")
    start.add_argument("--checkpoint", help="an ait checkpoint (spec 6) to start from; fresh optimiser")
    start.add_argument("--resume", help="an ait run directory (spec 8.1) to continue: model, AdamW state, epoch")
    ap.add_argument("--out", required=True, help="run directory to write (spec 8.1)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64, help="GLOBAL batch, split over the replicas")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=-1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="first N training images only")
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--max-steps", type=int, default=0, help="stop after this many steps of the run (tests)")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per process (default 2 / replicas, >= 1)")
    ap.add_argument("--record", help="write a float64 trace (step losses, parameters, memory) here (rank 0)")
    ap.add_argument("--local-write", action="store_true",
                    help="for contrast only: write memory from each replica's shard alone (not the global batch)")
    ap.add_argument("--no-checkpoint", action="store_true", help="write no run directory (timing)")
    return ap.parse_args(argv)


def setup(args):
    """Process group (gloo / NCCL) from torchrun's environment; a plain run is one replica."""
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    device = torch.device(args.device)
    if args.device == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.set_num_threads(args.threads or max(1, 2 // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    if world > 1:
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    return world, rank, device


def main(argv=None):
    args = parse_args(argv)
    world, rank, device = setup(args)
    dtype = getattr(torch, args.dtype)
    train = load_dataset(args.data, dtype)
    keys = {"channels": train[0].shape[1], "image_height": train[0].shape[2], "image_width": train[0].shape[3],
            "question_dim": 0 if train[2] is None else train[2].shape[1], "num_classes": len(train[4])}
    model, norm, state, lines = start_model(args, train[3], keys, dtype)
    if norm != train[3]:  # the checkpoint's normalisation wins (spec 9)
        train = load_dataset(args.data, dtype, *norm)
    train = tuple(t.to(device) if torch.is_tensor(t) else t for t in train)
    if args.limit:
        train = (train[0][:args.limit], train[1][:args.limit], None if train[2] is None else train[2][:args.limit])
    val = load_dataset(args.val, dtype, *norm) if args.val else train
    val = tuple(t.to(device) if torch.is_tensor(t) else t for t in val[:3])
    make_global(model)
    GlobalBottleneckWrite.local_only = args.local_write
    model.to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False) if world > 1 else model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                            betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
    epoch, best, step = 0, -1.0, 0
    if state:
        epoch, seed, best, step = load_train_state(model, opt, state)
        if seed != args.seed:
            raise SystemExit(f"--resume {args.resume}: the run used --seed {seed}, not {args.seed}")
    n = len(train[1])
    total = -(-n // args.batch_size) * args.epochs
    ctx = {"args": args, "model": model, "ddp": ddp, "opt": opt, "train": train, "val": val, "norm": norm,
           "world": world, "rank": rank, "device": device, "total": total, "best": best,
           "warmup": args.warmup if args.warmup >= 0 else min(total // 20, 500),
           "lines": [lines] if lines else [], "losses": [], "step_times": []}
    model.train()
    for e in range(epoch, args.epochs):
        step, line = run_epoch(ctx, e, step)
        if not args.no_checkpoint:
            checkpoint(ctx, e, line, step)
        if args.max_steps and step >= args.max_steps:
            break
    if rank == 0:
        if args.record:
            record(args.record, model, ctx["losses"])
        times = ctx["step_times"][1:] or ctx["step_times"]
        print(json.dumps({"replicas": world, "global_batch": args.batch_size, "steps": len(ctx["step_times"]),
                          "step_ms": 1000 * sum(times) / max(len(times), 1), "dtype": args.dtype}), flush=True)
    if world > 1:
        dist.barrier()  # leave together: a gloo peer that closes its sockets first can leave the other spinning
        dist.destroy_process_group()


if __name__ == "__main__":
    try:
        main()
    except (OSError, ValueError, KeyError) as err:  # bad files or options: one line, no traceback
        sys.exit(f"train_ddp.py: error: {err}")

#!/usr/bin/python3
"""Readable PyTorch reference of the AiT interchange spec (docs/spec.md, v1).

One module per spec block; module names follow spec section 6, so state_dict() keys are the
checkpoint's tensor names. Subcommands: init, dump, bench, selfcheck (see --help and README.md).
"""
import argparse, json, math, os, resource, struct, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIG_KEYS = ["channels", "image_height", "image_width", "patch_size", "question_dim", "dim",
               "depth", "heads", "head_dim", "mlp_dim", "num_classes", "memory_slots",
               "memory_dim", "memory_heads", "bottleneck", "hopfield_beta", "memory_momentum",
               "balance_coef", "write_dropout"]
FLOAT_KEYS = {"hopfield_beta", "memory_momentum", "balance_coef", "write_dropout"}
# Keys after the first 19 (spec section 1): absent means this default, and a config JSON names
# them only when they differ from it.
LATER_KEYS = {"arch": "ait", "memory_mode": "ema", "self_attention": 1, "hopfield_read": 1, "topk_write": 1}
NAMED_VALUES = {"arch": ("ait", "vit"), "memory_mode": ("ema", "reset", "learned")}

# ---------------------------------------------------------------- safetensors (little-endian)
DTYPES = {"F32": torch.float32, "F64": torch.float64, "I32": torch.int32, "I64": torch.int64,
          "U8": torch.uint8}
SIZES = {"F32": 4, "F64": 8, "I32": 4, "I64": 8, "U8": 1}
assert sys.byteorder == "little"


def save_safetensors(path, tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        code = next(c for c, dt in DTYPES.items() if dt == t.dtype)
        data = t.numpy().tobytes()
        header[name] = {"dtype": code, "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad so the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def load_safetensors(path):
    """Returns ({name: tensor}, metadata). Rejects headers that lie about sizes."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: too short")
    n = struct.unpack("<Q", raw[:8])[0]
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} exceeds file")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, info in header.items():
        dt = DTYPES[info["dtype"]]
        begin, end = info["data_offsets"]
        count = math.prod(info["shape"])
        if not (0 <= begin <= end <= len(data)) or end - begin != count * SIZES[info["dtype"]]:
            raise ValueError(f"{path}: tensor '{name}' has bad data_offsets")
        buf = bytearray(data[begin:end])
        t = torch.frombuffer(buf, dtype=dt) if count else torch.empty(0, dtype=dt)
        tensors[name] = t.reshape(info["shape"])
    return tensors, metadata

# ---------------------------------------------------------------- model (spec section 2)


def patchify(images, p):
    """[B, C, H, W] -> [B, T0, p*p*C]; row-major patches, feature (r*p + c)*C + ch (spec 2.1)."""
    B, C, H, W = images.shape
    x = images.reshape(B, C, H // p, p, W // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(B, (H // p) * (W // p), p * p * C)


class Embed(nn.Module):
    """LN_out(Linear_proj(LN_in(x))): patch embedding (2.2) and question token (2.3)."""
    def __init__(self, n_in, dim):
        super().__init__()
        self.norm_in, self.proj, self.norm_out = nn.LayerNorm(n_in), nn.Linear(n_in, dim), nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm_out(self.proj(self.norm_in(x)))


class Attention(nn.Module):
    def __init__(self, dim, heads, head_dim):
        super().__init__()
        self.h, self.e = heads, head_dim
        self.qkv = nn.Linear(dim, 3 * heads * head_dim, bias=False)
        self.out = nn.Linear(heads * head_dim, dim)

    def forward(self, x):
        B, T, _ = x.shape
        q, k, v = (t.reshape(B, T, self.h, self.e).transpose(1, 2)
                   for t in self.qkv(x).split(self.h * self.e, dim=-1))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.e), dim=-1)
        return self.out((a @ v).transpose(1, 2).reshape(B, T, self.h * self.e))


def topk_mask(scores, k):
    """Boolean mask of the k' = min(k, N) largest entries of each row; ties: lower index wins."""
    kk = min(k, scores.shape[-1])
    order = torch.sort(-scores, dim=-1, stable=True).indices[..., :kk]
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, order, True)


def cv2(x):
    """Squared coefficient of variation, unbiased variance; 0 for a single entry (spec 3)."""
    if x.numel() <= 1:
        return x.sum() * 0
    return x.var(unbiased=True) / (x.mean() ** 2 + 1e-10)


class BottleneckWrite(nn.Module):
    """Top-k bottleneck attention from memory rows (queries) to squashed tokens; returns G."""
    def __init__(self, dim, m, heads, k, dropout):
        super().__init__()
        self.H, self.m, self.topk, self.dropout = heads, m, k, dropout
        self.q = nn.Linear(m, heads * m, bias=False)
        self.k = nn.Linear(dim, heads * m, bias=False)
        self.v = nn.Linear(dim, heads * m, bias=False)
        self.out = nn.Linear(heads * m, m, bias=False)
        self.norm = nn.LayerNorm(m, eps=1e-6)

    def forward(self, gamma, xi):
        (M, m), N, H = gamma.shape, xi.shape[0], self.H
        Q = self.q(gamma).reshape(M, H, m).transpose(0, 1)   # [H, M, m], head-major features
        K = self.k(xi).reshape(N, H, m).transpose(0, 1)      # [H, N, m]
        V = self.v(xi).reshape(N, H, m).transpose(0, 1)
        S = Q @ K.transpose(1, 2) / math.sqrt(m)             # [H, M, N]
        mask = topk_mask(S.detach(), self.topk)
        A = torch.softmax(S.masked_fill(~mask, float("-inf")), dim=-1)
        O = (A @ V).transpose(0, 1).reshape(M, H * m)        # concat heads, head-major
        G = self.norm(F.dropout(self.out(O), self.dropout, self.training) + gamma)
        return G, A, mask, S


class GlobalWorkspace(nn.Module):
    """'gwl': FFN -> squash -> bottleneck write -> memory update -> Hopfield read; returns U + R.
    Ablations (spec 2.6): memory_mode reset (the caller does not commit) or learned (memory is a
    parameter, no write), hopfield_read=0 (returns U), topk_write=0 (k' = B*T)."""
    def __init__(self, c):
        super().__init__()
        D, m = c["dim"], c["memory_dim"]
        self.beta, self.mu = c["hopfield_beta"], c["memory_momentum"]
        self.learned, self.hopfield = c["memory_mode"] == "learned", bool(c["hopfield_read"])
        self.fc1, self.fc2 = nn.Linear(D, c["mlp_dim"]), nn.Linear(c["mlp_dim"], D)
        self.ffn_norm = nn.LayerNorm(D)
        if self.learned:
            self.memory = nn.Parameter(torch.randn(c["memory_slots"], m))
        else:
            self.register_buffer("memory", torch.randn(c["memory_slots"], m))
            k = c["bottleneck"] if c["topk_write"] else sys.maxsize
            self.write = BottleneckWrite(D, m, c["memory_heads"], k, c["write_dropout"])
        if self.hopfield:
            self.read = nn.Linear(m, D)

    def forward(self, z, write, gamma_read=None):
        B, T, D = z.shape
        U = self.ffn_norm(self.fc2(F.gelu(self.fc1(z))))
        aux = {"xi": U.reshape(B * T, D), "balance": z.new_zeros(())}
        gamma_r = self.memory
        if write and not self.learned:
            G, A, mask, S = self.write(self.memory, aux["xi"])
            new = self.mu * self.memory + (1 - self.mu) * G.detach()
            new = new / new.norm(dim=1, keepdim=True)
            gamma_r = new
            aux.update(new_memory=new, mask=mask, scores=S.detach())
            for j in range(A.shape[0]):   # counts term: no gradient (a boolean count)
                aux["balance"] = aux["balance"] + cv2(A[j].sum(0)) + cv2(mask[j].sum(0).to(A.dtype))
        if gamma_read is not None:        # selfcheck only: hold the read memory fixed
            gamma_r = gamma_read
        if not self.hopfield:
            return U, aux
        Y = self.read(gamma_r)                                   # [M, D]
        R = torch.softmax(self.beta * U @ Y.t(), dim=-1) @ Y     # [B, T, D]
        return U + R, aux


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attn_norm = nn.LayerNorm(c["dim"])
        # self_attention=0 (the authors' SA=False): the attention is the identity after its norm
        self.attn = Attention(c["dim"], c["heads"], c["head_dim"]) if c["self_attention"] else nn.Identity()
        self.gwl_norm = nn.LayerNorm(c["dim"])
        self.gwl = GlobalWorkspace(c)

    def forward(self, x, write, gamma_read=None):
        x = x + self.attn(self.attn_norm(x))
        y, aux = self.gwl(self.gwl_norm(x), write, gamma_read)
        return x + y, aux


class Head(nn.Module):
    def __init__(self, n_in, classes):
        super().__init__()
        self.norm, self.proj = nn.LayerNorm(n_in), nn.Linear(n_in, classes)

    def forward(self, x):
        return self.proj(self.norm(x.flatten(1)))


class AiT(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c, p = c, c["patch_size"]
        assert c["image_height"] % p == 0 and c["image_width"] % p == 0
        self.T = (c["image_height"] // p) * (c["image_width"] // p) + (1 if c["question_dim"] else 0)
        self.patch_embed = Embed(p * p * c["channels"], c["dim"])
        if c["question_dim"]:
            self.question_embed = Embed(c["question_dim"], c["dim"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["depth"]))
        self.head = Head(self.T * c["dim"], c["num_classes"])

    def forward(self, images, questions=None, write=False, commit=True, gamma_read=None):
        """write=True: training pass (or memory_eval=update); write=False: memory_eval=frozen.
        Returns logits, balance loss (times balance_coef), per-layer aux dicts."""
        x = self.patch_embed(patchify(images, self.c["patch_size"]))
        if self.c["question_dim"]:
            x = torch.cat([self.question_embed(questions)[:, None], x], dim=1)
        auxes = []
        for i, layer in enumerate(self.layers):
            x, aux = layer(x, write, None if gamma_read is None else gamma_read[i])
            auxes.append(aux)
        if write and commit and self.c["memory_mode"] == "ema":
            for layer, aux in zip(self.layers, auxes):  # a new tensor, not in place: W_q's gradient
                layer.gwl.memory = aux["new_memory"]    # uses the gamma read (spec 4)
        balance = self.c["balance_coef"] * sum(a["balance"] for a in auxes)
        return self.head(x), balance, auxes

    def set_write_dropout(self, p):
        for layer in self.layers:
            if hasattr(layer.gwl, "write"):
                layer.gwl.write.dropout = p

    def memory_buffers(self):
        """The memories the checkpoint keeps as buffers (none when learned)."""
        return [] if self.c["memory_mode"] == "learned" else [layer.gwl.memory for layer in self.layers]


class VitBlock(nn.Module):
    """Pre-norm block of the ViT baseline (spec 2.7): attention, then a GELU feed-forward."""
    def __init__(self, c):
        super().__init__()
        D = c["dim"]
        self.attn_norm, self.attn = nn.LayerNorm(D), Attention(D, c["heads"], c["head_dim"])
        self.ffn_norm = nn.LayerNorm(D)
        self.ffn = nn.Module()
        self.ffn.fc1, self.ffn.fc2 = nn.Linear(D, c["mlp_dim"]), nn.Linear(c["mlp_dim"], D)

    def forward(self, x):
        x = x + self.attn(self.attn_norm(x))
        return x + self.ffn.fc2(F.gelu(self.ffn.fc1(self.ffn_norm(x))))


class ViT(nn.Module):
    """arch=vit (spec 2.7): embedding and question token as the AiT's, class token, learned
    position embedding over all T+1 tokens, L pre-norm blocks, LN + Linear on the class token."""
    def __init__(self, c):
        super().__init__()
        self.c, p, D = c, c["patch_size"], c["dim"]
        self.T = (c["image_height"] // p) * (c["image_width"] // p) + (1 if c["question_dim"] else 0)
        self.patch_embed = Embed(p * p * c["channels"], D)
        if c["question_dim"]:
            self.question_embed = Embed(c["question_dim"], D)
        self.pos_embedding = nn.Parameter(torch.randn(1, self.T + 1, D))
        self.cls_token = nn.Parameter(torch.randn(1, 1, D))
        self.layers = nn.ModuleList(VitBlock(c) for _ in range(c["depth"]))
        self.head = nn.Module()
        self.head.norm, self.head.proj = nn.LayerNorm(D), nn.Linear(D, c["num_classes"])

    def forward(self, images, questions=None, write=False, commit=True, gamma_read=None):
        x = self.patch_embed(patchify(images, self.c["patch_size"]))
        if self.c["question_dim"]:
            x = torch.cat([self.question_embed(questions)[:, None], x], dim=1)
        x = torch.cat([self.cls_token.expand(x.shape[0], 1, -1), x], dim=1) + self.pos_embedding
        for block in self.layers:
            x = block(x)
        return self.head.proj(self.head.norm(x[:, 0])), x.new_zeros(()), []

    def set_write_dropout(self, p):
        pass

    def memory_buffers(self):
        return []


def build_model(c):
    return ViT(c) if c["arch"] == "vit" else AiT(c)

# ---------------------------------------------------------------- checkpoints and batches


def check_config(c):
    if not set(CONFIG_KEYS) <= set(c) <= set(CONFIG_KEYS) | set(LATER_KEYS):
        raise ValueError(f"config keys differ from spec: missing {set(CONFIG_KEYS) - set(c)}, "
                         f"extra {set(c) - set(CONFIG_KEYS) - set(LATER_KEYS)}")
    out = {k: (float(c[k]) if k in FLOAT_KEYS else int(c[k])) for k in CONFIG_KEYS}
    for k, default in LATER_KEYS.items():
        v = c.get(k, default)
        if v not in (NAMED_VALUES[k] if k in NAMED_VALUES else (0, 1)):
            raise ValueError(f"config key '{k}' is {v!r}")
        out[k] = v
    return out


def config_json(c):
    """The config as spec section 1 writes it: the later keys only where not at their default."""
    return json.dumps({k: v for k, v in c.items() if k not in LATER_KEYS or v != LATER_KEYS[k]})


def save_checkpoint(model, path):
    meta = {"format": "ait", "version": "1", "producer": "tools/reference/ait_reference.py",
            "config": config_json(model.c)}
    save_safetensors(path, {k: v.float() for k, v in model.state_dict().items()}, meta)


def load_checkpoint(path, build=None):
    """The checkpoint's model, every tensor checked against what `build(config dict)` makes
    (default: this file's AiT or ViT)."""
    tensors, meta = load_safetensors(path)
    if meta.get("format") != "ait" or meta.get("version") != "1":
        raise ValueError(f"{path}: not an ait v1 checkpoint")
    config = json.loads(meta["config"])
    model = build(config) if build else build_model(check_config(config))
    want = model.state_dict()
    for name in sorted(set(want) | set(tensors)):
        if name not in tensors or name not in want:
            raise ValueError(f"{path}: tensor '{name}' is {'missing' if name in want else 'unexpected'}")
        if tensors[name].dtype != torch.float32 or tensors[name].shape != want[name].shape:
            raise ValueError(f"{path}: tensor '{name}' has wrong dtype or shape")
    model.load_state_dict(tensors)
    return model


def load_batch(path, dtype):
    b, _ = load_safetensors(path)
    return b["images"].to(dtype), b["labels"].long(), b["questions"].to(dtype) if "questions" in b else None


def loss_of(model, images, labels, questions, **kw):
    logits, balance, auxes = model(images, questions, write=True, **kw)
    ce = F.cross_entropy(logits, labels)
    return ce + balance, ce, balance, logits, auxes

# ---------------------------------------------------------------- subcommands


def dump(ckpt, batch, steps=0, lr=1e-4, wd=0.01, dtype=torch.float64, on_pass=None):
    """Spec section 7. Returns {name: float32 tensor}; on_pass(auxes) sees every training pass."""
    model = load_checkpoint(ckpt).to(dtype)
    model.set_write_dropout(0.0)
    images, labels, questions = load_batch(batch, dtype)
    out = {}
    model.eval()
    with torch.no_grad():
        out["eval.logits"] = model(images, questions, write=False)[0]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    losses = []
    for step in range(max(steps, 1)):
        opt.zero_grad(set_to_none=True)   # a parameter without gradient keeps grad None: untouched
        loss, ce, balance, logits, auxes = loss_of(model, images, labels, questions)
        loss.backward()
        losses.append(loss.detach())
        if on_pass:
            on_pass(auxes)
        if step == 0:
            out.update({"logits": logits, "loss": loss, "loss.ce": ce, "loss.balance": balance})
            for name, p in model.named_parameters():
                out["grad." + name] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
            for i, aux in enumerate(auxes):
                if "new_memory" in aux:
                    out[f"memory.{i}"] = aux["new_memory"].clone()
        if steps:
            opt.step()
    if steps:
        out["step_losses"] = torch.stack(losses)
        out.update({"param." + n: p for n, p in model.named_parameters()})
        out.update({f"memory.final.{i}": g for i, g in enumerate(model.memory_buffers())})
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def bench(c, batch_size, steps, threads, device="cpu", seconds=0.0, warmup=1):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device(device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    model = build_model(c).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    images = torch.randn(batch_size, c["channels"], c["image_height"], c["image_width"], device=dev)
    labels = torch.randint(0, c["num_classes"], (batch_size,), device=dev)
    questions = torch.randn(batch_size, c["question_dim"], device=dev) if c["question_dim"] else None

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss_of(model, images, labels, questions)[0].backward()
        opt.step()

    def eval_step():
        with torch.no_grad():
            model(images, questions, write=False)
    result = {"batch_size": batch_size, "steps": steps, "threads": threads, "device": device}
    for name, fn, mode in (("train", train_step, model.train), ("eval", eval_step, model.eval)):
        mode()
        for _ in range(warmup):  # first-use allocation, library heuristics, clocks ramping up
            fn()
        sync()
        t0 = time.perf_counter()
        done = 0
        while done < steps or time.perf_counter() - t0 < seconds:
            for _ in range(steps):  # launched back to back, synchronised once per round
                fn()
            sync()
            done += steps
        dt = time.perf_counter() - t0
        result[f"{name}_images_per_s"] = batch_size * done / dt
        result[f"{name}_ms_per_step"] = 1000 * dt / done
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if dev.type == "cuda":
        result["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(result))


def naive_write(wr, gamma, xi, mu):
    """Loop-by-loop bottleneck write and balance terms of one layer (selfcheck's second opinion)."""
    (M, m), N = gamma.shape, xi.shape[0]
    heads, balance = [], 0.0
    for j in range(wr.H):
        rows = slice(j * m, (j + 1) * m)
        Kt, Vt = xi @ wr.k.weight[rows].t(), xi @ wr.v.weight[rows].t()
        O, load, count = torch.zeros(M, m, dtype=gamma.dtype), [0.0] * N, [0] * N
        for r in range(M):
            q = wr.q.weight[rows] @ gamma[r]
            s = [(float(q @ Kt[t]) / math.sqrt(m), t) for t in range(N)]
            top = sorted(s, key=lambda st: (-st[0], st[1]))[:min(wr.topk, N)]
            w = [math.exp(v - top[0][0]) for v, _ in top]
            for wi, (_, t) in zip(w, top):
                O[r] += wi / sum(w) * Vt[t]
                load[t] += wi / sum(w)
                count[t] += 1
        heads.append(O)
        for x in (load, count):
            mean = sum(x) / N
            balance += 0.0 if N == 1 else sum((v - mean) ** 2 for v in x) / (N - 1) / (mean ** 2 + 1e-10)
    y = torch.cat(heads, 1) @ wr.out.weight.t() + gamma
    y = (y - y.mean(1, keepdim=True)) / torch.sqrt(y.var(1, unbiased=False, keepdim=True) + 1e-6)
    new = mu * gamma + (1 - mu) * (y * wr.norm.weight + wr.norm.bias)
    return new / new.norm(dim=1, keepdim=True), balance


def selfcheck(ckpt, batch, entries=4, h=1e-5):
    """float64 checks: finite differences vs autograd (read memory held at the written gamma',
    which is what stopgrad means), memory update vs loops, zero grads, frozen-eval independence."""
    torch.manual_seed(0)
    model = load_checkpoint(ckpt).double()
    model.set_write_dropout(0.0)
    images, labels, questions = load_batch(batch, torch.float64)
    c, fails = model.c, []

    def check(what, err, tol):
        print(f"  {what:<48} {err:10.3e}  (tol {tol:.0e}) {'ok' if err <= tol else 'FAIL'}")
        if not err <= tol:
            fails.append(what)
    print(f"selfcheck {ckpt}")
    # patch order and tie rule
    p, (B, C, H, W) = c["patch_size"], images.shape
    loops = torch.tensor([[[images[b, ch, ty * p + r, tx * p + cc] for r in range(p) for cc in range(p)
                            for ch in range(C)] for ty in range(H // p) for tx in range(W // p)] for b in range(B)])
    check("patch order vs loops", (patchify(images, p) - loops).abs().max().item(), 0)
    tie = topk_mask(torch.tensor([[1., 2., 2., 0., 2.]]), 2).tolist()
    check("tie rule (lower index wins)", float(tie != [[False, True, True, False, False]]), 0)
    # one training pass, nothing committed
    loss, ce, bal, logits, auxes = loss_of(model, images, labels, questions, commit=False)
    loss.backward()
    gam, naive_bal = [a["new_memory"] for a in auxes], 0.0
    for i, (layer, aux) in enumerate(zip(model.layers, auxes)):
        with torch.no_grad():
            new, b = naive_write(layer.gwl.write, layer.gwl.memory, aux["xi"], c["memory_momentum"])
        naive_bal += b
        check(f"memory.{i} update vs loops (max abs)", (new - gam[i]).abs().max().item(), 1e-12)
        check(f"memory.{i} rows unit norm", (gam[i].norm(dim=1) - 1).abs().max().item(), 1e-12)
    check("balance vs loops (rel)", abs(bal.item() - c["balance_coef"] * naive_bal) / max(bal.item(), 1e-30), 1e-10)
    for name, prm in model.named_parameters():
        if any(s in name for s in (".write.v.", ".write.out.", ".write.norm.")):
            check(f"{name} grad is None", float(prm.grad is not None), 0)
    # finite differences, central, a few entries per parameter
    print(f"  finite differences, h {h}, read memory held at gamma': |fd - g| / max(max|g|, 1e-3)")
    gen = torch.Generator().manual_seed(1)
    flips = 0
    with torch.no_grad():
        for name, prm in model.named_parameters():
            g = prm.grad.reshape(-1) if prm.grad is not None else torch.zeros(prm.numel(), dtype=prm.dtype)
            idx = [int(g.abs().argmax())] + torch.randint(0, prm.numel(), (entries - 1,), generator=gen).tolist()
            err, flat = 0.0, prm.view(-1)
            for i in idx:
                f = []
                for sign in (1, -1):
                    flat[i] += sign * h
                    out = loss_of(model, images, labels, questions, commit=False, gamma_read=gam)
                    flips += sum(int((a["mask"] != b["mask"]).any()) for a, b in zip(out[4], auxes))
                    f.append(out[0].item())
                    flat[i] -= sign * h
                err = max(err, abs((f[0] - f[1]) / (2 * h) - g[i].item()))
            scale = g.abs().max().item()
            check(f"fd {name}", err / max(scale, 1e-3), 1e-6)
    check("top-k selection changes during fd", flips, 0)
    # frozen eval: each prediction depends on its own image only; update mode does not
    model.eval()
    with torch.no_grad():
        qs = lambda i: None if questions is None else questions[i:i + 1]
        full = model(images, questions)[0]
        alone = torch.cat([model(images[i:i + 1], qs(i))[0] for i in range(B)])
        check("frozen eval.logits batch vs alone", (full - alone).abs().max().item(), 1e-12)
        upd = model(images, questions, write=True, commit=False)[0]
        upd1 = torch.cat([model(images[i:i + 1], qs(i), write=True, commit=False)[0] for i in range(B)])
        print(f"  (memory_eval=update, batch vs alone, for contrast: {(upd - upd1).abs().max().item():.3e})")
    print("selfcheck:", "FAILED " + ", ".join(fails) if fails else "all passed")
    return not fails


def add_init_dump_commands(sub, init_help):
    """The init and dump subcommands with their options, as every reference script takes them."""
    a = sub.add_parser("init", help=init_help)
    a.add_argument("--config", required=True)
    a.add_argument("--seed", type=int, required=True)
    a.add_argument("--out", required=True)
    a = sub.add_parser("dump", help="spec section 7 cross-check dump")
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--batch", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--train-steps", type=int, default=0)
    a.add_argument("--lr", type=float, default=1e-4)
    a.add_argument("--weight-decay", type=float, default=0.01)
    a.add_argument("--dtype", choices=["float64", "float32"], default="float64")


def run_init(args, check_config, build_model, save_checkpoint):
    """init: the config checked, the model built under --seed, saved as a checkpoint."""
    with open(args.config) as f:
        c = check_config(json.load(f))
    torch.manual_seed(args.seed)
    save_checkpoint(build_model(c), args.out)


def run_dump(args, dump, producer):
    """dump: the section 7 tensors computed in --dtype, saved with the producer's name."""
    out = dump(args.checkpoint, args.batch, args.train_steps, args.lr, args.weight_decay,
               getattr(torch, args.dtype))
    save_safetensors(args.out, out, {"producer": producer, "dtype": args.dtype})


def main(argv=None):
    torch.set_num_threads(2)
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    add_init_dump_commands(sub, "PyTorch-default initialisation -> spec checkpoint")
    a = sub.add_parser("bench", help="time training steps and eval passes (float32)")
    a.add_argument("--config", required=True)
    a.add_argument("--batch-size", type=int, required=True)
    a.add_argument("--steps", type=int, required=True)
    a.add_argument("--threads", type=int, default=2)
    a.add_argument("--device", default="cpu", help="cpu or cuda")
    a.add_argument("--seconds", type=float, default=0.0,
                   help="repeat rounds of --steps steps until this long has been measured")
    a.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    a = sub.add_parser("selfcheck", help="finite differences and invariants on a checkpoint")
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--batch", required=True)
    args = ap.parse_args(argv)
    if args.cmd == "init":
        run_init(args, check_config, build_model, save_checkpoint)
    elif args.cmd == "dump":
        run_dump(args, dump, "tools/reference/ait_reference.py")
    elif args.cmd == "bench":
        with open(args.config) as f:
            c = check_config(json.load(f))
        bench(c, args.batch_size, args.steps, args.threads, args.device, args.seconds, args.warmup)
    else:
        sys.exit(0 if selfcheck(args.checkpoint, args.batch) else 1)


if __name__ == "__main__":
    main()

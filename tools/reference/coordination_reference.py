#!/usr/bin/python3
"""PyTorch reference of the Coordination baseline, arch=coordination (docs/spec.md section 13).

The shared-workspace Transformer of Goyal et al. (2022) as the spec pins it: one layer whose
parameters every one of the `depth` steps reuses; in each step the tokens compete (top-k) to write
into M workspace slots, the slots are updated by attention, an MLP and LSTM-like gates, and the
updated slots are broadcast back to every token. Module names follow the checkpoint names of
section 13. Subcommands: init, dump (the section 7 dump, float64 by default).
"""
import argparse, json, math, os, sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ait_reference import (Embed, add_init_dump_commands, load_safetensors, patchify, run_dump, run_init,  # noqa: E402
                           save_safetensors, topk_mask)
import ait_reference  # noqa: E402

INT_KEYS = ["channels", "image_height", "image_width", "patch_size", "question_dim", "dim", "depth",
            "heads", "head_dim", "mlp_dim", "num_classes", "memory_slots", "memory_dim", "bottleneck",
            "workspace_mlp_layers"]
FLOAT_KEYS = ["write_dropout"]


def check_config(c):
    """The keys this architecture reads, typed; refuses what section 13 refuses."""
    if c.get("arch") != "coordination":
        raise ValueError(f"config arch is {c.get('arch')!r}, expected 'coordination'")
    out = dict(c)
    out.update({k: int(c[k]) for k in INT_KEYS})
    out.update({k: float(c[k]) for k in FLOAT_KEYS})
    if out["heads"] * out["head_dim"] != out["dim"]:
        raise ValueError("arch=coordination needs heads * head_dim == dim")
    return out


def position_table(T, D, dtype=torch.float64):
    """sigmoid(1) * PE: column c is sin (c even) or cos (c odd) of t * 10000^(-2c/D)."""
    t = torch.arange(T, dtype=dtype)[:, None]
    c = torch.arange(D, dtype=dtype)[None, :]
    angle = t * torch.pow(torch.tensor(10000.0, dtype=dtype), -2.0 * c / D)
    pe = torch.where(c.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return pe / (1.0 + math.exp(-1.0))


class GateInput(nn.Module):
    """Per image: proj(mean over tokens of relu(scale * x)), [B, 2D]."""
    def __init__(self, D):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(D))
        self.proj = nn.Linear(D, 2 * D)

    def forward(self, xp):
        return self.proj(torch.relu(self.scale * xp).mean(dim=1))


class GateMemory(nn.Module):
    """A separate linear map per slot: out[b, s] = x[b, s] @ weight[s].T + bias[s]."""
    def __init__(self, M, D):
        super().__init__()
        a = 1.0 / math.sqrt(2 * D)
        self.weight = nn.Parameter(torch.empty(M, 2 * D, D).uniform_(-a, a))
        self.bias = nn.Parameter(torch.empty(M, 2 * D).uniform_(-a, a))

    def forward(self, x):
        return torch.einsum("bsi,soi->bso", x, self.weight) + self.bias


class Workspace(nn.Module):
    """The shared global workspace of one layer step: write (top-k), slot update, broadcast."""
    def __init__(self, c):
        super().__init__()
        D, h, dk = c["dim"], c["heads"], c["memory_dim"]
        self.h, self.dk, self.topk, self.mlp_layers = h, dk, c["bottleneck"], c["workspace_mlp_layers"]
        self.input = nn.Linear(D, D)
        # No key bias: it adds q·b to a whole row of scores, which the softmax cancels.
        self.q, self.k, self.v = nn.Linear(D, h * dk), nn.Linear(D, h * dk, bias=False), nn.Linear(D, D)
        self.write_norm = nn.LayerNorm(D)
        self.mlp = nn.Linear(D, D)
        self.mlp_norm = nn.LayerNorm(D)
        self.gate_input = GateInput(D)
        self.gate_memory = GateMemory(c["memory_slots"], D)
        self.input_gate_bias = nn.Parameter(torch.zeros(1))
        self.forget_gate_bias = nn.Parameter(torch.ones(1))
        self.on_write_scores = None  # make_golden: sees every write's scores (near-tie check)

    def attend(self, queries, keys, topk):
        """Heads of softmax(Q Kᵀ) V, no 1/sqrt scale; with topk, each row keeps its k' largest
        weights and the rest are zeroed, without renormalising. [B, R, D]."""
        B, R, _ = queries.shape
        N = keys.shape[1]
        Q = self.q(queries).reshape(B, R, self.h, self.dk).transpose(1, 2)
        K = self.k(keys).reshape(B, N, self.h, self.dk).transpose(1, 2)
        V = self.v(keys).reshape(B, N, self.h, -1).transpose(1, 2)
        S = Q @ K.transpose(-1, -2)
        P = torch.softmax(S, dim=-1)
        if topk:
            if self.on_write_scores:
                self.on_write_scores(S.detach())
            P = P * topk_mask(S.detach(), self.topk).to(P.dtype)
        return (P @ V).transpose(1, 2).reshape(B, R, -1)

    def forward(self, x, slots):
        xp = self.input(x)                                            # [B, T, D]
        written = self.write_norm(slots + self.attend(slots, xp, topk=True))
        mlp = written
        for _ in range(self.mlp_layers):                              # one map, applied n times
            mlp = torch.relu(self.mlp(mlp))
        candidate = self.mlp_norm(written + mlp)
        gates = self.gate_memory(torch.tanh(slots)) + self.gate_input(xp)[:, None, :]
        i_gate, f_gate = gates.chunk(2, dim=-1)
        new_slots = (torch.sigmoid(i_gate + self.input_gate_bias) * torch.tanh(candidate)
                     + torch.sigmoid(f_gate + self.forget_gate_bias) * slots)
        return self.attend(xp, new_slots, topk=False), new_slots


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        D = c["dim"]
        self.dropout = c["write_dropout"]
        self.attn_norm = nn.LayerNorm(D)
        self.workspace = Workspace(c)
        self.ffn_norm = nn.LayerNorm(D)
        self.fc1, self.fc2 = nn.Linear(D, c["mlp_dim"]), nn.Linear(c["mlp_dim"], D)

    def forward(self, x, slots):
        read, slots = self.workspace(self.attn_norm(x), slots)
        x = x + F.dropout(read, self.dropout, self.training)
        y = self.fc2(torch.relu(self.fc1(self.ffn_norm(x))))
        return x + F.dropout(y, self.dropout, self.training), slots


class Head(nn.Module):
    def __init__(self, D, K):
        super().__init__()
        self.proj = nn.Linear(D, K)

    def forward(self, x):
        return self.proj(x)


class Coordination(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c, p, D = c, c["patch_size"], c["dim"]
        self.patch_embed = Embed(p * p * c["channels"], D)
        if c["question_dim"]:
            self.question_embed = Embed(c["question_dim"], D)
        self.cls_token = nn.Parameter(torch.randn(D))
        self.layer = Layer(c)
        self.head = Head(D, c["num_classes"])

    def tokens(self, images, questions=None):
        """[cls, question, patches] + the scaled sinusoidal position table, [B, T, D]."""
        x = self.patch_embed(patchify(images, self.c["patch_size"]))
        if self.c["question_dim"]:
            x = torch.cat([self.question_embed(questions)[:, None], x], dim=1)
        B, _, D = x.shape
        x = torch.cat([self.cls_token.expand(B, 1, D), x], dim=1)
        return x + position_table(x.shape[1], D, x.dtype)

    def forward(self, images, questions=None):
        x = self.tokens(images, questions)
        slots = torch.eye(self.c["memory_slots"], self.c["dim"], dtype=x.dtype).expand(x.shape[0], -1, -1)
        for _ in range(self.c["depth"]):
            x, slots = self.layer(x, slots)
        return self.head(x[:, 0])


def save_checkpoint(model, path):
    meta = {"format": "ait", "version": "1", "producer": "tools/reference/coordination_reference.py",
            "config": json.dumps(model.c)}
    save_safetensors(path, {k: v.float() for k, v in model.state_dict().items()}, meta)


def load_checkpoint(path):
    return ait_reference.load_checkpoint(path, lambda config: Coordination(check_config(config)))


def dump(ckpt, batch, steps=0, lr=1e-4, wd=0.01, dtype=torch.float64, on_write_scores=None):
    """Spec section 7 for arch=coordination: no memory tensors, loss.balance = 0, dropout off."""
    model = load_checkpoint(ckpt).to(dtype)
    model.layer.dropout = 0.0
    model.layer.workspace.on_write_scores = on_write_scores
    b, _ = load_safetensors(batch)
    images, labels = b["images"].to(dtype), b["labels"].long()
    questions = b["questions"].to(dtype) if "questions" in b else None
    out = {}
    model.eval()
    with torch.no_grad():
        out["eval.logits"] = model(images, questions)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    losses = []
    for step in range(max(steps, 1)):
        opt.zero_grad(set_to_none=True)
        logits = model(images, questions)
        ce = F.cross_entropy(logits, labels)
        ce.backward()
        losses.append(ce.detach())
        if step == 0:
            out.update({"logits": logits, "loss": ce, "loss.ce": ce, "loss.balance": ce.new_zeros(())})
            for name, p in model.named_parameters():
                out["grad." + name] = p.grad.clone() if p.grad is not None else torch.zeros_like(p)
        if steps:
            opt.step()
    if steps:
        out["step_losses"] = torch.stack(losses)
        out.update({"param." + n: p for n, p in model.named_parameters()})
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def main(argv=None):
    torch.set_num_threads(2)
    ap = argparse.ArgumentParser(description=__doc__)
    add_init_dump_commands(ap.add_subparsers(dest="cmd", required=True), "PyTorch initialisation -> checkpoint")
    args = ap.parse_args(argv)
    if args.cmd == "init":
        run_init(args, check_config, Coordination, save_checkpoint)
    else:
        run_dump(args, dump, "tools/reference/coordination_reference.py")


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The ViT baseline (docs/spec.md 2.7) against the authors' own ViT (vit_org.py of
github.com/yuweisunn/associative-transformer), in float64.

Their module is built with the checkpoint's config and loads our weights under their names with
strict=True (every tensor present, every shape equal, nothing left over); its logits are compared
with those of ait_reference.py's ViT and, given --dump, with `ait dump`'s eval.logits.

    vit_authors_check.py --authors DIR --checkpoint CKPT --batch BATCH [--dump DUMP]

DIR holds vit_org.py; it imports einops, which must be importable (PYTHONPATH). The authors'
model has no question token, so the checkpoint must have question_dim = 0.
"""
import argparse, os, sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ait_reference as ref  # noqa: E402


def authors_name(name):
    """Our tensor name (spec 6) -> the key of vit_org.ViT's state_dict."""
    fixed = {"patch_embed.norm_in": "to_patch_embedding.1", "patch_embed.proj": "to_patch_embedding.2",
             "patch_embed.norm_out": "to_patch_embedding.3", "head.norm": "mlp_head.0", "head.proj": "mlp_head.1"}
    if name in ("pos_embedding", "cls_token"):
        return name
    prefix, kind = name.rsplit(".", 1)
    if prefix in fixed:
        return f"{fixed[prefix]}.{kind}"
    _, i, part = prefix.split(".", 2)  # layers.<i>.<part>
    block = {"attn_norm": "0.norm", "attn.qkv": "0.fn.to_qkv", "attn.out": "0.fn.to_out.0",
             "ffn_norm": "1.norm", "ffn.fc1": "1.fn.net.0", "ffn.fc2": "1.fn.net.3"}[part]
    return f"transformer.layers.{i}.{block}.{kind}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--authors", required=True)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--batch", required=True)
    ap.add_argument("--dump")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.Tensor.cuda = lambda self, *a, **k: self  # their forward makes its aux loss with .cuda()
    sys.path.insert(0, args.authors)
    import vit_org  # noqa: E402

    ours = ref.load_checkpoint(args.checkpoint).double().eval()
    c = ours.c
    if c["arch"] != "vit" or c["question_dim"]:
        raise SystemExit(f"{args.checkpoint}: needs arch=vit and question_dim=0")
    theirs = vit_org.ViT(image_size=(c["image_height"], c["image_width"]), patch_size=c["patch_size"],
                         num_classes=c["num_classes"], dim=c["dim"], depth=c["depth"], heads=c["heads"],
                         mlp_dim=c["mlp_dim"], channels=c["channels"], dim_head=c["head_dim"]).double().eval()
    tensors, _ = ref.load_safetensors(args.checkpoint)
    theirs.load_state_dict({authors_name(k): v.double() for k, v in tensors.items()}, strict=True)
    n_theirs = sum(p.numel() for p in theirs.parameters())
    n_ours = sum(p.numel() for p in ours.parameters())
    print(f"parameters: theirs {n_theirs}, ours {n_ours}")

    images, _, _ = ref.load_batch(args.batch, torch.float64)
    with torch.no_grad():
        want = theirs(images)[0]
        got = ours(images)[0]
    fails = []

    def check(what, a, b, tol):
        err = ((a - b).norm() / b.norm()).item()
        ok = err <= tol
        print(f"  {what:<44} {err:10.3e}  (tol {tol:.0e}) {'ok' if ok else 'FAIL'}")
        if not ok:
            fails.append(what)
    check("reference ViT logits vs authors' (float64)", got, want, 1e-12)
    if args.dump:
        dumped, _ = ref.load_safetensors(args.dump)
        check("ait dump eval.logits vs authors' (float32)", dumped["eval.logits"].double(), want, 1e-5)
    if n_theirs != n_ours:
        fails.append("parameter count")
    print("vit authors check:", "FAILED " + ", ".join(fails) if fails else "all passed")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()

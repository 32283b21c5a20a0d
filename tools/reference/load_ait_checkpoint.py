#!/usr/bin/python3
"""Example for PyTorch users: load an ait.cpp checkpoint (spec names, docs/spec.md
section 6) into the reference module of ait_reference.py and print frozen-memory eval logits
(memory_eval=frozen: the memory is read, never written) for images of a dataset file.

    load_ait_checkpoint.py --checkpoint CKPT --data DATA.safetensors [--limit N]
                           [--compare LOGITS.npy]

DATA is the project's dataset file (images U8 [N, C, H, W], labels, optional questions F32).
Images are scaled to [0, 1] and normalised per channel with the checkpoint's data_mean /
data_std metadata when present (what `ait eval` and `ait predict` use), else with the
dataset's mean / std metadata. --compare takes the C++ logits of the same images
(`ait-export logits --checkpoint CKPT --data DATA --out LOGITS.npy --limit N`) and prints the
largest absolute difference.
"""
import argparse, json, os, sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ait_reference as ref  # noqa: E402


def load_images(data_path, ckpt_meta, limit):
    tensors, meta = ref.load_safetensors(data_path)
    images = tensors["images"][:limit].to(torch.float32) / 255.0
    if "data_mean" in ckpt_meta and "data_std" in ckpt_meta:
        mean, std = json.loads(ckpt_meta["data_mean"]), json.loads(ckpt_meta["data_std"])
    else:
        mean, std = json.loads(meta["mean"]), json.loads(meta["std"])
    mean = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    inv_std = 1.0 / torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)  # as the C++ side does
    questions = tensors["questions"][:limit].to(torch.float32) if "questions" in tensors else None
    return (images - mean) * inv_std, tensors["labels"][:limit].long(), questions


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--compare", help="C++ logits (.npy) of the same images")
    args = ap.parse_args()
    torch.set_num_threads(2)

    model = ref.load_checkpoint(args.checkpoint).eval()  # checks every name, shape and dtype
    _, ckpt_meta = ref.load_safetensors(args.checkpoint)
    images, labels, questions = load_images(args.data, ckpt_meta, args.limit)
    with torch.no_grad():
        logits = model(images, questions, write=False)[0]  # frozen memory: nothing is written

    torch.set_printoptions(precision=5, sci_mode=False, linewidth=160)
    for i, row in enumerate(logits):
        print(f"{i:4d} label {int(labels[i])} predicted {int(row.argmax())}  {row.tolist()}")
    print(f"accuracy {float((logits.argmax(1) == labels).float().mean()):.4f} on {len(labels)} images")
    if args.compare:
        import numpy
        theirs = torch.from_numpy(numpy.load(args.compare))
        if theirs.shape != logits.shape:
            sys.exit(f"{args.compare}: shape {tuple(theirs.shape)}, expected {tuple(logits.shape)}")
        print(f"max |logit difference| vs {args.compare}: {(theirs - logits).abs().max().item():.3e}")


if __name__ == "__main__":
    main()

"""Initializing a ~1B-parameter transformer: linen model.init, abstract shapes, nnx.

A decoder-only transformer (vocabulary 32000, width 2048, 16 blocks of a fused (d, 3d)
QKV kernel, a (d, d) output, (d, 4d) and (4d, d) MLP kernels, LayerNorms; untied
embedding and head: 0.94B parameters, 3.8 GB in float32), written once for Flax linen
and once for nnx, with lecun_normal kernels (Flax's default, a truncated normal) and
normal(0.02) embeddings from ``jax.nn.initializers`` or from ``jaxinit``. Five ways to
get its parameters:

* ``linen init``: ``model.init(key, tokens)``, eager (Flax's default);
* ``linen jit(init)``: ``jax.jit(model.init)(key, tokens)``;
* ``abstract + jit``: ``jax.eval_shape(model.init, ...)`` for the shapes (no memory),
  then one jitted function that draws every leaf from its shape: the pattern for
  initializing straight into a sharding (``out_shardings``), with no forward pass;
* ``nnx eager``: ``Model(rngs=nnx.Rngs(0))`` (nnx's default);
* ``nnx jit``: ``nnx.jit(lambda: Model(rngs=nnx.Rngs(0)))()``.

Each runs once in a fresh subprocess: time is wall time from the call to the last
parameter ready (compilation included, as a user sees it), memory is peak RSS (VmHWM)
minus RSS after imports, as a multiple of the parameter bytes.

    python benchmarks/bench_transformer_init.py            # 0.94B parameters
    python benchmarks/bench_transformer_init.py --quick    # 4 blocks of width 512
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys

CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp
import flax.linen as nn
from flax import nnx
import jaxinit

library, method = sys.argv[1], sys.argv[2]
vocab, width, depth = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
heads = max(1, width // 128)
lib = jax.nn.initializers if library == "jax" else jaxinit
kernel_init, embed_init = lib.lecun_normal(), lib.normal(0.02)

def attention(qkv):
    q, k, v = jnp.split(qkv, 3, axis=-1)
    split = lambda t: t.reshape(*t.shape[:-1], heads, width // heads)
    q, k, v = split(q), split(k), split(v)
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(jnp.float32(width // heads))
    mask = jnp.tril(jnp.ones((q.shape[1], q.shape[1]), bool))
    logits = jnp.where(mask, logits, jnp.float32(-1e9))
    out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(logits, axis=-1), v)
    return out.reshape(*out.shape[:-2], width)

class Block(nn.Module):
    @nn.compact
    def __call__(self, x):
        h = nn.Dense(3 * width, kernel_init=kernel_init, name="qkv")(nn.LayerNorm()(x))
        x = x + nn.Dense(width, kernel_init=kernel_init, name="out")(attention(h))
        h = nn.Dense(4 * width, kernel_init=kernel_init, name="up")(nn.LayerNorm()(x))
        return x + nn.Dense(width, kernel_init=kernel_init, name="down")(jax.nn.gelu(h))

class LinenModel(nn.Module):
    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(vocab, width, embedding_init=embed_init)(tokens)
        for _ in range(depth):
            x = Block()(x)
        return nn.Dense(vocab, kernel_init=kernel_init, name="head")(nn.LayerNorm()(x))

class NnxBlock(nnx.Module):
    def __init__(self, rngs):
        dense = lambda i, o: nnx.Linear(i, o, kernel_init=kernel_init, rngs=rngs)
        self.norm1, self.norm2 = nnx.LayerNorm(width, rngs=rngs), nnx.LayerNorm(width, rngs=rngs)
        self.qkv, self.out = dense(width, 3 * width), dense(width, width)
        self.up, self.down = dense(width, 4 * width), dense(4 * width, width)

class NnxModel(nnx.Module):
    def __init__(self, rngs):
        self.embed = nnx.Embed(vocab, width, embedding_init=embed_init, rngs=rngs)
        self.blocks = nnx.List([NnxBlock(rngs) for _ in range(depth)])
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.head = nnx.Linear(width, vocab, kernel_init=kernel_init, rngs=rngs)

def from_abstract(abstract, key):
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    out = []
    for i, (path, leaf) in enumerate(leaves):
        name = jax.tree_util.keystr(path)
        k = jax.random.fold_in(key, i)
        if "embedding" in name:
            out.append(embed_init(k, leaf.shape, leaf.dtype))
        elif "kernel" in name:
            out.append(kernel_init(k, leaf.shape, leaf.dtype))
        elif "scale" in name:
            out.append(jnp.ones(leaf.shape, leaf.dtype))
        else:
            out.append(jnp.zeros(leaf.shape, leaf.dtype))
    return jax.tree.unflatten(treedef, out)

def rss(field):
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field)) * 1024

key, tokens = jax.random.key(0), jnp.zeros((1, 8), jnp.int32)
model = LinenModel()
base = rss("VmRSS")
start = time.perf_counter()
if method == "linen init":
    params = model.init(key, tokens)
elif method == "linen jit(init)":
    params = jax.jit(model.init)(key, tokens)
elif method == "abstract + jit":
    abstract = jax.eval_shape(model.init, key, tokens)
    params = jax.jit(lambda k: from_abstract(abstract, k))(key)
elif method == "nnx eager":
    params = nnx.state(NnxModel(nnx.Rngs(0)))
elif method == "nnx jit":
    params = nnx.state(nnx.jit(lambda: NnxModel(nnx.Rngs(0)))())
jax.block_until_ready(params)
seconds = time.perf_counter() - start
peak = rss("VmHWM")
leaves = jax.tree.leaves(params)
nbytes = sum(x.nbytes for x in leaves)
print(json.dumps({"seconds": seconds, "extra": (peak - base) / nbytes,
                  "params": sum(x.size for x in leaves), "bytes": nbytes}))
"""

METHODS = ["linen init", "linen jit(init)", "abstract + jit", "nnx eager", "nnx jit"]


def run(library: str, method: str, vocab: int, width: int, depth: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, library, method, str(vocab), str(width), str(depth)],
        capture_output=True, text=True,
    )
    if out.returncode:
        sys.exit(f"{library} / {method} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=32000)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--quick", action="store_true", help="4 blocks of width 512")
    args = parser.parse_args(argv)
    if args.quick:
        args.vocab, args.width, args.depth = 8000, 512, 4
    import jax

    print(
        f"# Transformer init, vocabulary {args.vocab}, width {args.width}, {args.depth} "
        f"blocks, float32: jax {jax.__version__} on {jax.default_backend()}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    print(
        "| method | jax.nn.initializers (s) | jaxinit (s) | jax extra peak RSS / params "
        "| jaxinit extra peak RSS / params | parameters |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for method in args.methods.split(","):
        theirs, ours = (
            run(lib, method, args.vocab, args.width, args.depth) for lib in ("jax", "jaxinit")
        )
        print(
            f"| {method} | {theirs['seconds']:.2f} | {ours['seconds']:.2f} | "
            f"{theirs['extra']:.2f} | {ours['extra']:.2f} | "
            f"{ours['params'] / 1e9:.3f}B ({ours['bytes'] / 1e9:.2f} GB) |",
            flush=True,
        )


if __name__ == "__main__":
    main()

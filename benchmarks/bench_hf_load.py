"""Streaming a sharded Llama-shaped HF checkpoint into an abstract nnx model: time and memory.

Question: what does `jaxinit.stream_pretrained` (each device's slice read straight from
the safetensors shards into its sharding, one leaf at a time) cost against the usual
`safetensors.numpy.load_file` of every shard followed by `jax.device_put` of each
(transposed) tensor? And on 8 simulated devices, does each device hold only its 1/8?

The checkpoint is written once by this script: TinyLlama-1.1B's shapes (22 layers,
hidden 2048, MLP 5632, 32 heads / 4 KV heads, vocab 32000, untied head), bfloat16 (a
finite bit pattern, not trained values), in shards of at most 500 MB with
`model.safetensors.index.json`. It is read once before timing, so every run reads from
the page cache. Each measurement runs in a fresh subprocess; peak RSS is VmHWM from
/proc (`resource.getrusage(...).ru_maxrss` where there is no /proc; on Linux ru_maxrss
carries over from the parent across fork+exec). On the CPU backend the loaded arrays
themselves live in host memory, so the table also shows the peak above the model's own
bytes: the host memory the load needs on top of its result. The one-device rows use the
backend present (on an accelerator the loaded arrays are not host memory); the 8-device
rows use simulated CPU devices.

    python benchmarks/bench_hf_load.py [--repeats 1] [--path /tmp/jaxinit_hf_llama_1b] [--scan]
    python benchmarks/bench_hf_load.py --layers 4      # a smaller checkpoint (~0.3B)
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
SHAPE = dict(vocab=32000, hidden=2048, heads=32, kv_heads=4, inter=5632, eps=1e-5,
             theta=10000.0)

CHILD = r"""
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P
method, path, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
scan = sys.argv[4] == "scan"
import jaxinit, safetensors.numpy
from tests.hf_models import LlamaForCausalLM

from benchmarks.timing import peak_rss_mb as rss_mb

abstract = nnx.eval_shape(lambda: LlamaForCausalLM(config, scan=scan, rngs=nnx.Rngs(0)))
rules = jaxinit.hf.rules("llama", abstract)
n = jax.device_count()
mesh = jax.make_mesh((n,), ("x",))

def retype(v):  # bfloat16 like the checkpoint; with n devices, every matrix sharded n ways
    sharding = None
    if n > 1:  # embeddings on the vocab axis, kernels on their last axis, norms replicated
        spec = P() if v.ndim == 1 else (P("x", None) if v.shape[0] == config["vocab"]
                                        else P(None, "x"))
        sharding = NamedSharding(mesh, spec)
    return jax.ShapeDtypeStruct(v.shape, jnp.bfloat16, sharding=sharding)

nnx.update(abstract, jax.tree.map(retype, nnx.state(abstract)))
base = rss_mb()
start = time.perf_counter()
if method == "stream":
    model, report = jaxinit.stream_pretrained(abstract, path, rules=rules,
                                              on_unexpected="error")
    params = nnx.state(model)
else:  # load every shard, then device_put each tensor (transposed where the layout says;
    # a scanned target's per-layer tensors np.stack-ed first)
    index = json.load(open(f"{path}/model.safetensors.index.json"))
    loaded = {}
    for shard in sorted(set(index["weight_map"].values())):
        loaded.update(safetensors.numpy.load_file(f"{path}/{shard}"))
    targets = {"/".join(map(str, p)): v.get_value()
               for p, v in nnx.to_flat_state(nnx.state(abstract))}
    import re
    params, stacks = {}, {}
    for key, array in loaded.items():
        for regex, template, transform in rules:
            m = re.fullmatch(regex, key)
            if m:
                break
        if template is None:
            continue
        name = m.expand(template)
        host = transform(array) if transform is not None else array
        layer = re.fullmatch(r"(.*)\[(\d+)\]", name)
        if layer:
            stacks.setdefault(layer.group(1), {})[int(layer.group(2))] = host
            continue
        assert host.shape == targets[name].shape
        params[name] = jax.device_put(host, getattr(targets[name], "sharding", None))
    del loaded
    for name, layers in stacks.items():
        host = np.stack([layers[i] for i in sorted(layers)])
        assert host.shape == targets[name].shape
        params[name] = jax.device_put(host, getattr(targets[name], "sharding", None))
    del stacks, host
jax.block_until_ready(params)
elapsed = time.perf_counter() - start
leaves = jax.tree.leaves(params)
total = sum(x.nbytes for x in leaves)
per_device = {}
for x in leaves:
    for s in x.addressable_shards:
        per_device[str(s.device)] = per_device.get(str(s.device), 0) + s.data.nbytes
print(json.dumps({"seconds": elapsed, "peak_mb": rss_mb(), "base_mb": base,
                  "total_bytes": total, "max_device_bytes": max(per_device.values()),
                  "devices": len(per_device)}))
"""


def config(layers: int) -> dict:
    return dict(SHAPE, layers=layers)


def write_checkpoint(path: pathlib.Path, cfg: dict, shard_bytes: int = 500 * 10**6) -> None:
    import numpy as np

    sys.path.insert(0, str(REPO))
    import jax.numpy as jnp

    from jaxinit._src.pretrained.hf_export import _write_shard

    if (path / "model.safetensors.index.json").is_file():
        return
    path.mkdir(parents=True, exist_ok=True)
    h, kv = cfg["hidden"], cfg["hidden"] // cfg["heads"] * cfg["kv_heads"]
    shapes = {"model.embed_tokens.weight": (cfg["vocab"], h)}
    for i in range(cfg["layers"]):
        pre = f"model.layers.{i}."
        shapes.update({pre + "self_attn.q_proj.weight": (h, h),
                       pre + "self_attn.k_proj.weight": (kv, h),
                       pre + "self_attn.v_proj.weight": (kv, h),
                       pre + "self_attn.o_proj.weight": (h, h),
                       pre + "mlp.gate_proj.weight": (cfg["inter"], h),
                       pre + "mlp.up_proj.weight": (cfg["inter"], h),
                       pre + "mlp.down_proj.weight": (h, cfg["inter"]),
                       pre + "input_layernorm.weight": (h,),
                       pre + "post_attention_layernorm.weight": (h,)})
    shapes.update({"model.norm.weight": (h,), "lm_head.weight": (cfg["vocab"], h)})
    groups: list[list[str]] = [[]]
    size = 0
    for key, shape in shapes.items():
        nbytes = 2 * math.prod(shape)
        if groups[-1] and size + nbytes > shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append(key)
        size += nbytes
    weight_map = {}
    for i, keys in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        entries = []
        for j, key in enumerate(keys):  # finite bfloat16 bit patterns, cheap to make
            bits = (np.arange(math.prod(shapes[key]), dtype=np.uint16) * 7 + j) & 0x3FFF
            entries.append((key, None, bits.view(jnp.bfloat16).reshape(shapes[key]), ()))
        _write_shard(path / name, entries)
        weight_map.update(dict.fromkeys(keys, name))
    total = sum(2 * math.prod(s) for s in shapes.values())
    (path / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))


def run(method: str, path: pathlib.Path, cfg: dict, devices: int, scan: bool) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if devices > 1:  # simulated CPU devices; one device is whatever backend is present
        env.update(JAX_PLATFORMS="cpu",
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
    layers = "scan" if scan else "list"
    out = subprocess.run([sys.executable, "-c", CHILD, method, str(path), json.dumps(cfg),
                          layers], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--layers", type=int, default=22)
    parser.add_argument("--path", default=None)
    parser.add_argument("--scan", action="store_true",
                        help="also into a scanned target (layers stacked on axis 0)")
    args = parser.parse_args()
    cfg = config(args.layers)
    path = pathlib.Path(args.path or f"/tmp/jaxinit_hf_llama_{args.layers}l")
    write_checkpoint(path, cfg)
    size = 0
    for f in sorted(path.glob("*.safetensors")):
        size += f.stat().st_size
        with open(f, "rb") as fh:  # warm the page cache without growing this process
            while fh.read(1 << 24):
                pass
    shards = len(list(path.glob("*.safetensors")))
    print(f"{size / 2**30:.2f} GiB bfloat16 in {shards} shards, {args.layers} layers, "
          f"{args.repeats} run(s) each (medians)\n")
    print("| layers | devices | method | time (s) | time ratio | peak RSS above imports (MB) "
          "| ratio | peak above the model's bytes (MB) | ratio "
          "| max per-device bytes / (total/n) |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for scan, devices in itertools.product((False, True) if args.scan else (False,), (1, 8)):
        rows = {}
        for method in ("baseline", "stream"):
            runs = [run(method, path, cfg, devices, scan) for _ in range(args.repeats)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            med["extra_mb"] = med["peak_mb"] - med["base_mb"]
            med["over_model_mb"] = med["extra_mb"] - med["total_bytes"] / 2**20
            rows[method] = med
        b = rows["baseline"]
        for method, r in rows.items():
            label = ("load_file every shard + device_put" if method == "baseline"
                     else "jaxinit.stream_pretrained")
            if method == "baseline" and scan:
                label = "load_file every shard + np.stack + device_put"
            share = r["max_device_bytes"] / (r["total_bytes"] / r["devices"])
            print(f"| {'scanned' if scan else 'list'} | {devices} | {label} "
                  f"| {r['seconds']:.2f} | {r['seconds'] / b['seconds']:.2f} "
                  f"| {r['extra_mb']:.0f} | {r['extra_mb'] / b['extra_mb']:.2f} "
                  f"| {r['over_model_mb']:.0f} | {r['over_model_mb'] / b['over_model_mb']:.2f} "
                  f"| {share:.3f} |", flush=True)


if __name__ == "__main__":
    main()

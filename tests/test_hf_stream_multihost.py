"""stream_pretrained across two processes under jax.distributed (a localhost coordinator,
4 CPU devices each): each process reads only the slices its own devices hold, about half
the checkpoint, and every shard it holds equals the file's block.

The two workers run in subprocesses with a 120 s limit; on a timeout both are killed.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
from safetensors.numpy import save_file

WORKER = textwrap.dedent(r"""
    import json, sys
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec as P
    from safetensors.numpy import load_file
    import jaxinit

    port, pid, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=pid,
                               initialization_timeout=60)
    assert jax.device_count() == 8 and jax.local_device_count() == 4
    mesh = jax.make_mesh((8,), ("x",))
    oracle = {**load_file(f"{path}/model-00001-of-00002.safetensors"),
              **load_file(f"{path}/model-00002-of-00002.safetensors")}
    spec = {"embed": P("x", None), "q": P(None, "x"), "o": P("x", None)}
    target = {k: jax.ShapeDtypeStruct(v.shape[::-1] if k != "embed" else v.shape, v.dtype,
                                      sharding=NamedSharding(mesh, spec[k]))
              for k, v in oracle.items()}
    rules = [("embed", "embed", None), ("(q|o)", r"\1", jaxinit.layout.linear)]
    params, report = jaxinit.stream_pretrained(target, path, rules=rules)
    checked = 0
    for k, array in params.items():
        full = oracle[k] if k == "embed" else oracle[k].T
        for shard in array.addressable_shards:
            np.testing.assert_array_equal(np.asarray(shard.data), full[shard.index])
            checked += shard.data.nbytes
    try:  # export needs every value in this process: refused with the parameter's name
        jaxinit.save_hf(params, f"{path}/export-{pid}", rules=rules, config={})
        refused = ""
    except jaxinit.PretrainedError as e:
        refused = str(e)
    print("RESULT " + json.dumps({"bytes_read": report.bytes_read, "checked": checked,
                                  "local_devices": len(params["q"].addressable_shards),
                                  "refused": refused}))
    jax.distributed.shutdown()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_each_process_reads_only_its_devices_slices(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"embed": rng.standard_normal((64, 16)).astype(np.float32),
              "q": rng.standard_normal((32, 16)).astype(np.float32),
              "o": rng.standard_normal((16, 32)).astype(np.float32)}
    save_file({"embed": arrays["embed"]}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({"q": arrays["q"], "o": arrays["o"]},
              tmp_path / "model-00002-of-00002.safetensors")
    weight_map = {"embed": "model-00001-of-00002.safetensors",
                  "q": "model-00002-of-00002.safetensors", "o": "model-00002-of-00002.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    total = sum(a.nbytes for a in arrays.values())
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
           "JAX_PLATFORMS": "cpu", "PYTHONPATH": repo}
    port = _free_port()
    workers = [subprocess.Popen([sys.executable, "-c", WORKER, str(port), str(pid), str(tmp_path)],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for pid in range(2)]
    outputs = []
    deadline = time.monotonic() + 120  # both workers together
    try:
        for w in workers:
            outputs.append(w.communicate(timeout=max(1.0, deadline - time.monotonic()))[0])
    finally:
        for w in workers:  # never leave a worker waiting on its peer
            if w.poll() is None:
                w.kill()
                w.communicate()
    results = []
    for w, out in zip(workers, outputs, strict=True):
        assert w.returncode == 0, out[-3000:]
        line = next(x for x in out.splitlines() if x.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT "):]))
    for r in results:
        assert r["local_devices"] == 4
        assert r["bytes_read"] == total // 2  # exactly this process's half
        assert r["checked"] == total // 2  # and every byte it holds equals the file's block
        assert "save_hf: parameter 'embed' is spread over several processes" in r["refused"]

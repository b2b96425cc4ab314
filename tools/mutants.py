"""Mutation testing of the core modules with mutmut, one module at a time.

Each module is mutated in its own scratch copy of the repository (``mutants-work/<module>``)
and checked only against the test files that cover it (``MODULES`` below), so a run is
bounded and one module's results never mix with another's. mutmut changes one operator,
constant or call at a time; a mutant is *killed* when a test fails on it and *survives*
when every covering test still passes. Survivors are either missing tests or equivalent
mutants (no observable change); docs/mutants.md lists the equivalent ones with reasons.

Usage (``make mutants`` runs every module; not part of ``make test``)::

    python tools/mutants.py fans gain        # some modules
    python tools/mutants.py --list           # the module -> test files mapping
    python tools/mutants.py --survivors fans # diffs of the surviving mutants of a finished run

The summary line per module (total, killed, survived, timeout, other) is printed at the
end and written to ``mutants-work/<module>/summary.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutants-work"
SRC = "jaxinit/_src"
# Test runs at once (of one module's mutants), at nice 19: on a busy machine they take
# only idle CPU time.
CHILDREN = os.environ.get("MUTANTS_CHILDREN", "2")
# Imported by the fork server once; none of them starts a thread or an XLA backend.
PRELOAD = ["numpy", "scipy.stats", "scipy.integrate", "jax", "jax.numpy", "flax.linen",
           "flax.nnx", "optax", "pytest"]

# module (path under jaxinit/_src, without .py) -> the test files that cover it.
MODULES: dict[str, list[str]] = {
    "core/fans": ["tests/test_mutant_kills_fans.py", "tests/test_combinators.py"],
    "core/gain": ["tests/test_gain.py", "tests/test_mutant_kills_gain.py"],
    "compose/paths": ["tests/test_mutant_kills_paths.py"],
    "core/sampling": ["tests/test_mutant_kills_sampling.py", "tests/test_golden_values.py"],
    "compose/tree": ["tests/test_mutant_kills_tree.py", "tests/test_tree.py"],
    "compose/combinators": ["tests/test_combinators.py"],
    "schemes/orthogonal": ["tests/test_orthogonal.py"],
    "schemes/standard": ["tests/test_schemes.py", "tests/test_golden_values.py",
                         "tests/test_parity.py"],
    "pretrained/formats": ["tests/test_pretrained_formats.py"],
    "pretrained/merge": ["tests/test_pretrained_load.py"],
    "pretrained/plan": ["tests/test_mutant_kills_plan.py", "tests/test_pretrained_load.py"],
    "pretrained/layout": ["tests/test_mutant_kills_layout.py", "tests/test_pretrained_torch.py",
                          "tests/test_pretrained_load.py"],
    "params/mup": ["tests/test_mup.py", "tests/test_mup_depth_tied.py"],
    "diagnose/lsuv": ["tests/test_mutant_kills_lsuv.py", "tests/test_lsuv.py"],
    "compare/stats": ["tests/test_compare_stats.py", "tests/test_mutant_kills_stats.py"],
    "pretrained/hf_rules": ["tests/test_hf_gpt2.py", "tests/test_hf_llama.py"],
}

# Statuses as mutmut 3 records them (exit code of the test run on the mutant). pytest's
# exit code 2 is a collection error: the mutant breaks the import of jaxinit (a function
# run at import time, such as the gain quadrature nodes, raises), so every test fails;
# mutmut calls it "interrupted", here it counts as killed.
KILLED = {1, 2, 3}
SURVIVED = {0}
TIMEOUT = {36, -24, 24, 152, 255}


def _write_config(work: Path, module: str) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(pyproject + _config(module, MODULES[module]))
    (work / "preload.txt").write_text("\n".join(PRELOAD) + "\n")


def _config(module: str, tests: list[str]) -> str:
    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["jaxinit"]\n'
        f'only_mutate = ["{SRC}/{module}.py"]\n'
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:xdist", "-x", "-q", "-m", "not sharded and not slow"]\n'
        # Forking a process whose XLA runtime has started (test modules make keys at
        # import) deadlocks now and then: fork each mutant from a server that has only
        # imported the libraries (single-threaded), never collected the tests.
        'process_isolation = "forkserver"\n'
        'forkserver_warmup = "import"\n'
        'preload_modules_file = "preload.txt"\n'
        "use_git_change_detection = false\n"
        # Forked test runs recompile what the stats run had cached: allow for it.
        "timeout_multiplier = 15.0\n"
        "timeout_constant = 10.0\n"
    )


def prepare(module: str) -> Path:
    """A fresh scratch copy with only this module's tests and a mutmut config for them."""
    work = WORK / module.replace("/", "_")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "jaxinit", work / "jaxinit", ignore=ignore)
    shutil.copytree(ROOT / "tests", work / "tests", ignore=ignore)
    missing = [t for t in MODULES[module] if not (ROOT / t).exists()]
    if missing:
        raise SystemExit(f"mutants.py: test files {missing} for module {module!r} do not exist")
    _write_config(work, module)
    return work


def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the mutated copy, never the checkout, must be imported
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"
    env["JAX_PLATFORMS"] = "cpu"
    env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"  # a thread-free fork server
    # Mutants mostly trace the same programs: a persistent compilation cache avoids
    # recompiling them in every forked test run.
    env["JAX_COMPILATION_CACHE_DIR"] = str(work / "jax-cache")
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    return env


def summarize(
    module: str, earlier: dict[str, int] | None = None, verified: dict[str, int] | None = None
) -> dict[str, int]:
    """Counts by status; ``earlier`` holds the verdicts of a previous run that a recheck
    (of only its survivors and timeouts) updates; ``verified`` those of --verify."""
    work = WORK / module.replace("/", "_")
    meta = work / "mutants" / SRC / f"{module}.py.meta"
    latest = json.loads(meta.read_text())["exit_code_by_key"]
    codes = {**latest, **(earlier or {})}
    codes.update({k: v for k, v in latest.items() if v is not None})
    verified = {**(earlier_verified(work)), **(verified or {})}
    codes.update(verified)
    survivors = sorted(k for k, v in codes.items() if v in SURVIVED)
    summary = {
        "total": len(codes),
        "killed": sum(v in KILLED for v in codes.values()),
        "survived": len(survivors),
        "timeout": sum(v in TIMEOUT for v in codes.values()),
    }
    summary["not_checked"] = sum(v is None for v in codes.values())
    summary["other"] = summary["total"] - summary["killed"] - summary["survived"]
    summary["other"] -= summary["timeout"] + summary["not_checked"]
    record = {**summary, "survivors": survivors, "codes": codes, "verified": verified}
    (work / "summary.json").write_text(json.dumps(record, indent=1))
    return summary


def earlier_verified(work: Path) -> dict[str, int]:
    path = work / "summary.json"
    return json.loads(path.read_text()).get("verified", {}) if path.exists() else {}


def recheck(module: str) -> dict[str, int]:
    """Rerun the survivors, timeouts and unchecked mutants of a run against the current
    tests (the verdicts of the others stand)."""
    work = WORK / module.replace("/", "_")
    record = json.loads((work / "summary.json").read_text())
    names = [k for k, v in record["codes"].items() if v in SURVIVED | TIMEOUT | {None}]
    shutil.rmtree(work / "tests")
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    _write_config(work, module)
    if names:
        mutmut(work, "run", "--max-children", CHILDREN, *names)
    return summarize(module, record["codes"])


def mutmut(work: Path, *args: str, capture: bool = False) -> str:
    exe = Path(sys.executable).with_name("mutmut")
    cmd = ["nice", "-n", "19", str(exe), *args]
    done = subprocess.run(
        cmd, cwd=work, env=_env(work), check=False, text=True, capture_output=capture
    )
    return done.stdout if capture else ""


def survivors(module: str) -> None:
    work = WORK / module.replace("/", "_")
    names = json.loads((work / "summary.json").read_text())["survivors"]
    for name in names:
        print(mutmut(work, "show", name, capture=True))


def verify(module: str, names: list[str]) -> dict[str, int]:
    """Run *all* of the module's test files against each named mutant.

    mutmut runs a mutant only against the tests that called its function while the
    tests ran; a function called once at import (gain's quadrature nodes) is credited to
    whichever test ran first. This reruns such mutants against every mapped test file;
    the verdicts (pytest's exit codes) replace mutmut's in summary.json.
    """
    work = WORK / module.replace("/", "_")
    record = json.loads((work / "summary.json").read_text())
    shutil.copytree(ROOT / "tests", work / "mutants" / "tests", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__"))  # the current tests
    verdicts = {}
    for name in names:
        env = {**_env(work), "MUTANT_UNDER_TEST": name}
        cmd = ["nice", "-n", "19", sys.executable, "-m", "pytest", "-p", "no:xdist", "-x", "-q",
               "-m", "not sharded and not slow", *MODULES[module]]
        done = subprocess.run(cmd, cwd=work / "mutants", env=env, check=False,
                              capture_output=True, text=True)
        verdicts[name] = done.returncode
        print(f"{name}: pytest exit code {done.returncode}", flush=True)
    return summarize(module, record["codes"], verdicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"modules under {SRC} (default: all)")
    parser.add_argument("--list", action="store_true", help="print the module -> tests mapping")
    parser.add_argument("--survivors", action="store_true", help="show surviving mutants")
    parser.add_argument(
        "--verify", nargs="+", metavar="MUTANT",
        help="run all of one module's test files against these mutants",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue an interrupted run of the modules"
    )
    parser.add_argument(
        "--recheck", action="store_true", help="rerun the survivors of a finished run"
    )
    args = parser.parse_args()
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        parser.error(f"unknown modules {unknown}; expected some of {list(MODULES)}")
    if args.list:
        for m in modules:
            print(f"{m}: {' '.join(MODULES[m])}")
        return
    if args.survivors:
        for m in modules:
            survivors(m)
        return
    if args.verify:
        if len(modules) != 1:
            parser.error("--verify needs exactly one module")
        print(f"{modules[0]}: {verify(modules[0], args.verify)}")
        return
    results = {}
    for m in modules:
        start = time.monotonic()
        if args.recheck:
            summary = recheck(m)
        elif args.resume:
            work = WORK / m.replace("/", "_")
            _write_config(work, m)
            mutmut(work, "run", "--max-children", CHILDREN)
            summary = summarize(m)
        else:
            mutmut(prepare(m), "run", "--max-children", CHILDREN)
            summary = summarize(m)
        results[m] = {**summary, "seconds": round(time.monotonic() - start)}
        print(f"{m}: {results[m]}", flush=True)
    for m, r in results.items():
        print(f"{m}: {r}")


if __name__ == "__main__":
    main()

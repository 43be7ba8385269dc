# The two commands a newcomer needs: `make demo` and `make test`.
# Both create (or reuse) .venv with Python 3.10 and install the project into it.
PYTHON310 ?= env PYENV_VERSION=3.10.13 python3.10
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
NB_STAMP := $(VENV)/.installed-neurobench
RUNS := runs

.PHONY: demo test lint venv clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON310) -m venv $(VENV)
	@$(PY) -c 'import sys; assert sys.version_info[:2] == (3, 10), "need Python 3.10"'
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# the tests also cross-check our NeuroBench metrics against NeuroBench itself (optional extra)
$(NB_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[neurobench]'
	@touch $(NB_STAMP)

demo: $(STAMP)
	@mkdir -p $(RUNS)
	$(PY) export/digits_mnist_cnn.py --out-dir $(RUNS) --checkpoint-dir $(RUNS)
	$(VENV)/bin/bitsnn-verify $(RUNS)/digits-mnist-cnn.pt $(RUNS)/digits-mnist-cnn.net \
		--dataset digits --lava-samples 32 --json $(RUNS)/verify.json
	$(VENV)/bin/bitsnn-run $(RUNS)/digits-mnist-cnn.net --engine lava --precision fixed \
		--dataset digits --batch-size 32 --json $(RUNS)/lava-run.json
	$(VENV)/bin/bitsnn-energy $(RUNS)/digits-mnist-cnn.net --engine lava --dataset digits \
		--samples 64 --batch-size 32 --json $(RUNS)/energy.json --csv $(RUNS)/energy.csv \
		--plot $(RUNS)/energy.png
	@echo "artifacts: $(RUNS)/digits-mnist-cnn.pt (ANN), $(RUNS)/digits-mnist-cnn.net (netx)," \
		"$(RUNS)/verify.json, $(RUNS)/lava-run.json, $(RUNS)/energy.{json,csv,png}"

test: $(NB_STAMP)
	$(VENV)/bin/ruff check lava_bitsnn tests benchmarks export
	BITSNN_REQUIRE_NEUROBENCH=1 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check lava_bitsnn tests benchmarks export

clean:
	rm -rf $(RUNS) .pytest_cache

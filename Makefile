# Quick start: `make demo` and `make test`; each creates .venv when missing and installs into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo demo-smoke test test-configs test-docs mutants check-oldest lint table benchmark reproduce-cifar wheelhouse gpu-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[dev,export]'
	touch $@ $(VENV)/.installed

# The main job on generated data (3-5 min on 2 cores; see README): outputs/demo/report.md.
# Run it again after an interruption: it continues where it stopped.
demo: $(VENV)/.installed
	$(BIN)/python tools/demo.py

demo-smoke: $(VENV)/.installed
	$(BIN)/python tools/demo.py --smoke

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

# Every shipped config trained 2 iterations and evaluated at its real size, fp32 and bf16 (where the
# CPU has bf16 units), on generated data in its own format: outputs/test_configs/report.md (CI runs it).
test-configs: $(VENV)/.installed-dev
	$(BIN)/python bench/test_configs.py

# Every command README.md and docs/*.md show, run as written on generated data (schedules capped at
# two iterations), in outputs/test_docs/ (CI runs it); the docs' marks say what is skipped and why.
test-docs: $(VENV)/.installed-dev
	$(BIN)/python bench/test_docs.py

# Mutation testing (mutmut 3) of the modules whose numbers users trust, each against the test files
# that import it: outputs/mutants/report.md (the survivors, curated in docs/mutants.md). Minutes per
# module, not part of make test. ARGS="--only engine/schedule.py" runs some.
mutants: $(VENV)/.installed-dev
	$(BIN)/pip install -q -e '.[mutants]'
	$(BIN)/python bench/mutants.py $(ARGS)

# The oldest torch / torchvision the README claims, in a venv of their own: each task's smoke config
# (the smoke demo: classification and detection; the segmentation smoke on its data).
OLDEST := torch==2.4.0 torchvision==0.19.0
check-oldest:
	test -x .venv-oldest/bin/python || $(PYTHON) -m venv .venv-oldest
	.venv-oldest/bin/pip install $(OLDEST) -e .
	.venv-oldest/bin/python -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
	.venv-oldest/bin/python tools/demo.py --smoke --out outputs/oldest/demo
	.venv-oldest/bin/python tools/train_segmentation.py --config configs/segmentation/smoke.yaml \
	    data.root=outputs/oldest/demo/data/segmentation output_dir=outputs/oldest/segmentation \
	    "data.classes=[background,circle,square,triangle,cross,ring]"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check backbones bench classification detection engine experiments segmentation tools tests

table: $(VENV)/.installed
	$(BIN)/python tools/model_table.py

# The CIFAR-10 depth study as measured on a CPU (needs the data: see docs/results/cifar10/).
reproduce-cifar: $(VENV)/.installed
	$(BIN)/python tools/reproduce.py cifar10 --depths 20,56 --schedule short --epochs 3 --jobs 2

benchmark: $(VENV)/.installed
	$(BIN)/python bench/benchmark.py backbone

# Wheels an offline GPU node lacks (INSTALLED=its pip list --format=freeze; default: the lent H200's).
wheelhouse: $(VENV)/.installed
	$(BIN)/python bench/wheelhouse.py $(if $(INSTALLED),--installed $(INSTALLED))

# On a GPU node (no venv there: its python3 has torch; missing packages come from wheelhouse/):
# stages a-f, outputs/gpu_check/report.md. ARGS="--only b,f" reruns some.
gpu-check:
	PYTHONPATH=. python3 bench/gpu_check.py $(ARGS)

clean:
	rm -rf $(VENV) outputs .pytest_cache

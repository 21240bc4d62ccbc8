# Every target that runs chroma depends on `install`, so each works from a clean clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Quieter TensorFlow start-up; CUDA probing on CPU-only machines is noise.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: install test test-all demo leaderboard benchmark clean

# make reproduce-<paper> [SCALE=smoke|paper] [COCO=/data/coco] [DATA=spec] [ASSETS="name=path ..."] [STRATEGY=...] [TPU=address] [PRECISION=...] [JIT=1]
# ASSETS: where this machine keeps pretrained networks, one --asset each (`chroma reproduce --help` lists the names).
SCALE ?= smoke
STRATEGY ?= default
PRECISION ?= auto

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# One pytest worker per core (-n auto): the suite is mostly TensorFlow tracing, one thread's work at a time.
# Tests that share a session fixture's subprocess run on one worker (xdist_group, --dist loadgroup).
# `make test` is the fast tier; `make test-all` adds the tests marked slow (tests/README.md), and is what CI runs.
PYTEST := $(BIN)/pytest -q -n auto --dist loadgroup

test: install
	$(PYTEST) -m "not slow"

test-all: install
	$(PYTEST)

demo: install
	$(BIN)/chroma demo

reproduce-%: install
	$(BIN)/chroma reproduce $* --scale $(SCALE) --strategy $(STRATEGY) --precision $(PRECISION) \
		$(if $(COCO),--coco $(COCO)) $(if $(DATA),--data $(DATA)) $(if $(TPU),--tpu $(TPU)) $(foreach asset,$(ASSETS),--asset $(asset)) \
		$(if $(filter 1,$(JIT)),--jit)

# make leaderboard [SCALE=smoke|paper] [COCO=/data/coco] [ASSETS="name=path ..."]: scores what the reproductions left
# under runs/ (run them first), baseline0 and gray on one evaluation set; writes runs/leaderboard/<scale>/.
leaderboard: install
	$(BIN)/chroma leaderboard --scale $(SCALE) $(if $(COCO),--coco $(COCO)) $(foreach asset,$(ASSETS),--asset $(asset))

# make benchmark [ARGS="--only pix2pix --precision float32 ..."]: paper-size train steps, input pipeline, colorize;
# ~15 minutes on 2 CPU cores. Options and what each figure means: benchmarks/README.md.
benchmark: install
	$(BIN)/python benchmarks/train_step.py $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info

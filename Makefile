# Two commands on a fresh machine: `make demo` (the main job on the embedded demo cohort) and
# `make test`. Both create .venv and install neurossl into it on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch here; on a GPU node set TORCH_SPEC to the CUDA build you want.
TORCH_SPEC ?= torch==2.13.0
PROFILE ?= demo
RUN_DIR ?= runs/$(PROFILE)
NEUROSSL := $(BIN)/neurossl

# Empty: every objective of the registry (neurossl.objectives; `neurossl objectives` lists them).
# Set it to run fewer, e.g. make demo OBJECTIVES="mae slmae".
OBJECTIVES ?=
STAGE_ARGS = --profile $(PROFILE) --run-dir $(RUN_DIR) --splits splits/$(PROFILE) \
  $(foreach o,$(OBJECTIVES),--objective $(o))

.PHONY: install demo data pretrain evaluate paper test lab clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Thin aliases of `neurossl demo` (neurossl/pipeline.py): each stage skips what is complete and
# resumes an interrupted pretraining, so any of them can be rerun after an interruption.
demo: install
	$(NEUROSSL) demo $(STAGE_ARGS)

data: install
	$(NEUROSSL) demo $(STAGE_ARGS) --until data

pretrain: install
	$(NEUROSSL) demo $(STAGE_ARGS) --until pretrained

evaluate: install
	$(NEUROSSL) demo $(STAGE_ARGS) --until evaluation

# The notebooks, executed headlessly: figures and tables under paper/.
paper: install
	$(NEUROSSL) paper --profile $(PROFILE) --data $(RUN_DIR) --splits splits/$(PROFILE) \
	  $(foreach o,$(OBJECTIVES),--objective $(o))

test: install
	$(BIN)/python -m pytest -q

# JupyterLab at the repository root, from the same .venv (the dev extra installs the lab extra's
# JupyterLab and ipywidgets); lab/ configures it: the .py notebooks open as notebooks and saving
# one leaves the committed pair unchanged. LAB_ARGS passes more options (e.g. --no-browser).
LAB_PORT ?= 8888
LAB_ARGS ?=
lab: install
	$(BIN)/jupyter lab --config=lab/jupyter_lab_config.py --port=$(LAB_PORT) \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

clean-demo:
	rm -rf $(RUN_DIR)

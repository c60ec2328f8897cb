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

.PHONY: install demo test clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: install
	$(NEUROSSL) demo-data --out $(RUN_DIR)/cohort --profile $(PROFILE)
	$(NEUROSSL) curate $(RUN_DIR)/cohort --report $(RUN_DIR)/curation.csv --profile $(PROFILE)
	$(NEUROSSL) preprocess $(RUN_DIR)/cohort --curation $(RUN_DIR)/curation.csv --cache $(RUN_DIR)/cache --profile $(PROFILE)
	$(NEUROSSL) splits make --scans $(RUN_DIR)/cohort/scans.tsv --out splits/$(PROFILE) --profile $(PROFILE)
	$(NEUROSSL) splits audit splits/$(PROFILE)
	$(NEUROSSL) summary $(RUN_DIR) --splits splits/$(PROFILE)

test: install
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf $(RUN_DIR)

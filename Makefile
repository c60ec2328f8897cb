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

OBJECTIVES ?= mae slmae jepa vcr_jepa simclr dino_mim moe_jepa
FINETUNE ?= slmae vcr_jepa
TABLE7 ?= mae slmae jepa vcr_jepa
ENCODERS = $(OBJECTIVES:%=$(RUN_DIR)/pretrain/%)

.PHONY: install demo data pretrain evaluate paper test lab clean-demo

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: data pretrain evaluate paper
	$(NEUROSSL) summary $(RUN_DIR) --splits splits/$(PROFILE)

data: install
	$(NEUROSSL) demo-data --out $(RUN_DIR)/cohort --profile $(PROFILE)
	$(NEUROSSL) curate $(RUN_DIR)/cohort --report $(RUN_DIR)/curation.csv --profile $(PROFILE)
	$(NEUROSSL) preprocess $(RUN_DIR)/cohort --curation $(RUN_DIR)/curation.csv --cache $(RUN_DIR)/cache --profile $(PROFILE)
	$(NEUROSSL) splits make --scans $(RUN_DIR)/cohort/scans.tsv --out splits/$(PROFILE) --profile $(PROFILE)
	$(NEUROSSL) splits audit splits/$(PROFILE)

# One run folder per objective; a finished run (its exported encoder) is not trained again, an
# interrupted one resumes from its last checkpoint.
pretrain: $(ENCODERS:%=%/encoder.safetensors)

$(RUN_DIR)/pretrain/%/encoder.safetensors:
	$(NEUROSSL) pretrain --objective $* --profile $(PROFILE) --cache $(RUN_DIR)/cache \
	  --splits splits/$(PROFILE) --run-dir $(RUN_DIR)/pretrain/$* --resume

# Frozen probes of every encoder and its random twin on every task, ResNet50-3D from scratch,
# few-shot curves; fine-tuning of the FINETUNE encoders on the glioma task (CPU budget), and of
# the TABLE7 encoders on NC vs AD's first fold (the fine-tuned half of the paper's Table 7).
evaluate: $(RUN_DIR)/eval/results.csv

$(RUN_DIR)/eval/results.csv: $(ENCODERS:%=%/encoder.safetensors)
	rm -rf $(RUN_DIR)/eval $(RUN_DIR)/eval.tmp
	$(NEUROSSL) evaluate $(ENCODERS:%=--encoder %) --baseline random --baseline resnet50 \
	  --mode frozen --fewshot --profile $(PROFILE) --cache $(RUN_DIR)/cache \
	  --splits splits/$(PROFILE) --out $(RUN_DIR)/eval.tmp
	$(NEUROSSL) evaluate $(FINETUNE:%=--encoder $(RUN_DIR)/pretrain/%) --baseline random \
	  --mode finetune --task glioma_grade2_vs_34 --profile $(PROFILE) --cache $(RUN_DIR)/cache \
	  --splits splits/$(PROFILE) --out $(RUN_DIR)/eval.tmp
	$(NEUROSSL) evaluate $(TABLE7:%=--encoder $(RUN_DIR)/pretrain/%) --baseline random \
	  --mode finetune --task cognition_nc_vs_ad --set evaluate.max_folds=1 --profile $(PROFILE) \
	  --cache $(RUN_DIR)/cache --splits splits/$(PROFILE) --out $(RUN_DIR)/eval.tmp
	mv $(RUN_DIR)/eval.tmp $(RUN_DIR)/eval

# The notebooks, executed headlessly: figures and tables under paper/.
paper: install
	$(NEUROSSL) paper --profile $(PROFILE) --data $(RUN_DIR) --splits splits/$(PROFILE)

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

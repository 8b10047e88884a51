# The README's two commands:  `make run` (set up + the test profile) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
OUTDIR ?= results
NFLANG := build/nf-lang/language-server-all.jar
NEXTFLOW := build/nextflow/bin/nextflow

.PHONY: setup run test nf-lang clean

$(VENV)/.installed: python/pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first and pinned: an open range would pull a multi-GB CUDA build
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e "python[test]"
	touch $@

$(NFLANG):
	bash .ci/get-nf-lang.sh

# Nextflow 24.10.0 from Maven Central for the runtime tests; without Java/Maven they skip
$(NEXTFLOW):
	bash .ci/get-nextflow.sh || echo "nextflow: not installed; the tests marked nextflow will skip"

setup: $(VENV)/.installed $(NFLANG) $(NEXTFLOW)

run: setup
	$(VENV)/bin/fatescope run --profile test --outdir $(OUTDIR)

test: setup
	PATH="$(abspath $(VENV))/bin:$(abspath build/nextflow/bin):$$PATH" $(PY) -m pytest

clean:
	rm -rf $(VENV) build $(OUTDIR)

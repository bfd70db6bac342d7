# Two commands on a fresh machine: `make quick` (small paper) and `make test` (test suite).
# Both create the project's environment in .venv first if it is missing or out of date.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: env quick paper tex tex-if-possible test lint clean-quick resources

env: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

# The small profile: E1 and E2 at reduced size on the embedded mnist10k sample, CPU only;
# then its PDF. TeX is installed first where it can be (apt-get as root or with passwordless
# sudo); elsewhere the figures and tables are built and a note says the PDF was skipped.
quick: env tex-if-possible
	$(BIN)/snakemake --profile profiles/quick
	@if command -v latexmk >/dev/null 2>&1; then \
		$(BIN)/snakemake --profile profiles/quick results/paper/paper.pdf; \
	else \
		echo "latexmk not found: figures and tables are built, the PDF is not (make tex installs TeX)"; \
	fi

# The whole paper as configured in config.yaml, and its PDF (needs TeX: `make tex`).
paper: env
	$(BIN)/snakemake --cores all all results/paper/paper.pdf

# The TeX that builds results/paper/paper.pdf: latexmk + the minimal TeX Live packages with
# booktabs, graphicx, caption, hyperref, geometry (Debian/Ubuntu, about 160 MB installed), and
# poppler-utils (pdftotext/pdftoppm: the tests read the PDF's text; render pages to check them).
TEX_PACKAGES := latexmk texlive-latex-base texlive-latex-recommended poppler-utils
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
tex-if-possible:
	@command -v latexmk >/dev/null 2>&1 || { \
		if command -v apt-get >/dev/null 2>&1 && { [ "$$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then \
			$(MAKE) tex; \
		else \
			echo "latexmk not found and TeX cannot be installed here without a password (make tex)"; \
		fi; }

tex:
	$(SUDO) apt-get update
	$(SUDO) apt-get install -y --no-install-recommends $(TEX_PACKAGES)

# What the jobs used (results/benchmarks/) against config `resources`, per rule family and
# experiment; CONFIG: the config files of the build, e.g. CONFIG="config.yaml config/quick.yaml".
CONFIG ?= config.yaml
resources: env
	$(BIN)/python -m minima.resource_usage --config $(CONFIG)

test: env
	$(BIN)/python -m pytest

lint: env
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules/
	$(BIN)/snakemake --lint --cores 1

# On a machine with CUDA: the CUDA-only tests, every benchmark on the GPU and one E2 run per
# optimizer, within 10 minutes; one JSON summary in benchmarks/out/gpu_check.json.
# `make gpu-check-dry` lists the steps and checks their inputs on any machine.
.PHONY: gpu-check gpu-check-dry
gpu-check: env
	$(BIN)/python benchmarks/gpu_check.py

gpu-check-dry: env
	$(BIN)/python benchmarks/gpu_check.py --dry-run

# Two commands do all set-up on a fresh machine:
#   make run    create .venv, install, and run the whole pipeline (`dvc repro`)
#   make test   create .venv, install, build the docs and run the test suite
VENV ?= .venv
BIN := $(VENV)/bin
# No network at run time: DVC's analytics/update check and albumentations' update check stay off.
export DVC_NO_ANALYTICS := 1
export NO_ALBUMENTATIONS_UPDATE := 1
# mkdocs-material prints a notice about its successor on every build.
export NO_MKDOCS_2_WARNING := 1
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install run test lint clean

install: $(VENV)/.installed

# torch first, pinned to the CPU-friendly release that pip finds on local disk here;
# then the project with its dev extra.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

run: install
	dvc repro

# The docs first: `mkdocs build --strict` fails on a broken link or anchor (site/ is git-ignored).
# Tests run on every core (at most 4 workers); the tests sharing a built pipeline share a worker.
# The 20 slowest are listed at the end: where CI's minutes go.
test: install
	$(BIN)/mkdocs build --strict -q --site-dir site
	$(BIN)/pytest -q -n auto --maxprocesses 4 --dist loadgroup --durations 20

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf synthetic prepared models metrics eval registry.json submission.csv mlflow.db mlartifacts site .cache

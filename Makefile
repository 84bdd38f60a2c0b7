# The course's commands. `make help` lists them.
# VENV can point elsewhere (CI keeps one outside the clone to reuse it between runs).
VENV ?= .venv
PY := $(VENV)/bin/python
# the stamp changes with pyproject.toml and with the checkout folder (editable install)
STAMP := $(VENV)/.installed-$(shell (cat pyproject.toml; echo $(CURDIR)) | cksum | cut -d" " -f1)
# two pytest workers; a notebook's cells stay together in one worker (--dist loadfile)
PYTEST_ARGS ?= -n 2 --dist loadfile --durations=15

.PHONY: help venv course test test-fast check lint i18n notebooks html pdf bench lab clean

help:            ## list the commands
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)   ## create or reuse the virtual environment (.venv) with everything installed

course: venv     ## run every notebook (-> build/executed/), the Chinese notebooks (build/zh/), HTML (build/html/)
	$(PY) scripts/run_course.py

test: venv       ## the whole test suite: unit tests, nbval over every notebook, papermill, rendering
	$(PY) -m pytest tests notebooks --nbval-lax --nbval-current-env \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider $(PYTEST_ARGS)

i18n: venv       ## sync the translations (i18n/zh/*.po) with the notebooks and list what needs translating
	$(PY) scripts/i18n.py update

lint: venv       ## ruff over helpers/, tests/, bench/, scripts/ and the notebooks' code cells
	$(VENV)/bin/ruff check helpers tests bench scripts notebooks

test-fast: venv  ## the fast suite for contributors: unit tests only (no notebooks, no slow tests)
	$(PY) -m pytest tests -m "not slow" -p no:cacheprovider -n 2 --durations=10

check: lint test ## lint + tests (what a contributor runs before pushing)

notebooks: venv  ## re-execute notebooks in place (restart + run all) so committed outputs are clean
	$(PY) scripts/run_course.py --in-place $(NB)

html: venv       ## the HTML book in build/html/ from the executed notebooks
	$(PY) scripts/run_course.py --html-only

pdf: venv        ## the whole course as PDFs: build/course.pdf and the Chinese build/course.zh.pdf
	$(PY) scripts/build_book.py --pdf

bench: venv      ## the training-pipeline benchmark (writes bench/results/)
	$(PY) bench/pipeline.py

lab: venv        ## open the course in JupyterLab
	$(VENV)/bin/jupyter lab notebooks/

clean:           ## remove build outputs (keeps data/ and the venv)
	rm -rf build

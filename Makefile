# Two commands do all the set-up on a fresh clone:
#   make demo   fit the bundled Chinchilla data and write the report
#   make test   run the test suite
#   make test-fast  the suite without the tests marked slow (about 3 minutes with a warm compile cache, 2 cores)
# Each creates (or reuses) the local virtual environment .venv by itself.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test test-fast venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), "bayes-scaling needs Python >= 3.12 (found " + sys.version.split()[0] + "); install it or set PYTHON=python3.12"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayes-scaling demo

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

clean:
	rm -rf $(VENV) out

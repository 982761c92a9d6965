# Two commands on a fresh machine: `make demo` and `make test` (each sets everything up first).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup browser fonts speech demo test test-fast bench lint clean

setup: $(STAMP)

# (Re)install when the requirements, the package metadata or the C kernels change.
$(STAMP): requirements-dev.txt pyproject.toml setup.py quantscope/core/_kernels.c
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps rapidocr-onnxruntime==1.4.4  # only its PP-OCRv4 .onnx files (no OpenCV)
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	$(PY) -c "from quantscope.core import kernels; import sys; kernels.available() or sys.exit('fused kernels failed to build: ' + str(kernels.load_error()))"
	touch $(STAMP)

# The main job: quantize the MiniLM sentence model (W8A8), analyze every layer, save it, write the report.
demo: $(STAMP)
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 $(VENV)/bin/quantscope quantize minilm --recipe w8a8 \
	  --out out/minilm-w8a8 --report out/minilm-w8a8.html

# Headless Chromium (Debian's chromium + chromium-driver) for the HTML report test; installed when missing.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)) >/dev/null; \
	elif command -v sudo >/dev/null; then \
	  (sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver || (sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver)) >/dev/null; \
	else false; fi || echo "warning: could not install chromium + chromium-driver: the browser test will be skipped"

# Debian's DejaVu and Liberation fonts for the rendered OCR text lines; installed when missing (PIL's own font
# is the fallback).
fonts:
	@if [ -d /usr/share/fonts/truetype/dejavu ] && [ -d /usr/share/fonts/truetype/liberation ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-dejavu-core fonts-liberation || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-dejavu-core fonts-liberation)) >/dev/null; \
	elif command -v sudo >/dev/null; then \
	  (sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-dejavu-core fonts-liberation || (sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q fonts-dejavu-core fonts-liberation)) >/dev/null; \
	else false; fi || echo "warning: could not install fonts-dejavu-core + fonts-liberation: OCR lines use PIL's font"

# Debian's espeak-ng speaks the test sentences for the audio path; installed when missing (the test skips without it).
speech:
	@if command -v espeak-ng >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng)) >/dev/null; \
	elif command -v sudo >/dev/null; then \
	  (sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng || (sudo apt-get update -q && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q espeak-ng)) >/dev/null; \
	else false; fi || echo "warning: could not install espeak-ng: the speech test will be skipped"

test: $(STAMP) browser fonts speech
	HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 QUANTSCOPE_REQUIRE_BROWSER=$$(command -v chromedriver >/dev/null && echo 1 || echo 0) \
	  $(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

bench: $(STAMP) fonts
	HF_HUB_OFFLINE=1 $(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info quantscope/core/*.so .pytest_cache .hypothesis

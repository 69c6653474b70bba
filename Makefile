# tvmbridge: every command sets up what it needs (virtual environment, C++ build) by itself.
#
#   make demo    compile ResNet-18 with TVM, check it against PyTorch, show the speed
#   make test    C++ (GoogleTest) and Python (pytest) tests
#   make build   the C++ libraries and tvmbridge-run only
#   make format  clang-format the C++ sources
#   make test-zoo  the whole model zoo (tests/zoo), traced and scripted, against PyTorch
#                (slow; not in CI); the table of results goes to build/zoo.md; then times it
#                (make bench-zoo)
#   make bench-zoo  every zoo model timed: eager, frozen TorchScript, tvmbridge fp32 and bf16,
#                default and TVM alone, with geometric means (about 45 minutes on 2 cores;
#                not in CI); the table goes to build/zoo_speed.md
#   make survey  accuracy and partition coverage over torchvision models (slow; not in CI)
#   make sanitize  the C++ tests under ASan + LSan + UBSan, then TSan (slow; not in CI)
#   make fuzz    libFuzzer over the artifact loader, FUZZ_SECONDS per target (not in CI)
#   make fuzz-ops  generated differential tests of converter families against PyTorch,
#                FUZZ_OPS_CASES per family (default 500) from FUZZ_OPS_SEED (not in CI)
#   make bench-paths  the TorchScript, torch.export and torch.compile paths on ResNet-18,
#                MobileNet v3 and BERT-base, against eager (minutes; not in CI)
#   make bench-bf16  precision="bf16" against float32 and PyTorch's bfloat16 on CNNs
#                (minutes; not in CI)
#   make bench-int8  quantized models against PyTorch's int8 code and ONNX Runtime's int8
#                (minutes; not in CI)
#   make bench   tvmbridge against PyTorch, TorchScript, torch.compile, ONNX Runtime and TVM's
#                own frontend, untuned and tuned (tens of minutes; not in CI)

SHELL := /bin/bash
BUILD_DIR ?= build
PYTHON := $(CURDIR)/.venv/bin/python
JOBS ?= 2
export PYTHONPATH := $(CURDIR)/python$(if $(PYTHONPATH),:$(PYTHONPATH))
export CCACHE_DIR ?= $(HOME)/.cache/tvmbridge/ccache
# Share cache hits between clones in different folders.
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_NOHASHDIR := 1
# PyTorch deprecates TorchScript; tvmbridge exists for the models people still have in it.
export PYTHONWARNINGS ?= ignore::FutureWarning

.PHONY: venv build test test-cpp test-python test-requirements test-zoo bench-zoo demo survey sanitize fuzz fuzz-ops bench bench-paths bench-bf16 bench-int8 format clean

venv:
	@bash scripts/bootstrap.sh

$(BUILD_DIR)/build.ninja: CMakeLists.txt cmake/Dependencies.cmake tests/cpp/CMakeLists.txt requirements.txt | venv
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DPython3_EXECUTABLE=$(PYTHON) > $(BUILD_DIR).configure.log \
	  || { cat $(BUILD_DIR).configure.log; exit 1; }

build: venv $(BUILD_DIR)/build.ninja
	@ninja -C $(BUILD_DIR) -j $(JOBS)

test: test-cpp test-python

test-cpp: build
	@$(PYTHON) tests/cpp/make_fixtures.py $(BUILD_DIR)/test-fixtures
	@cd $(BUILD_DIR) && TVMBRIDGE_FIXTURES=$(CURDIR)/$(BUILD_DIR)/test-fixtures ctest --output-on-failure

test-python: build test-requirements
	@$(PYTHON) -m pytest -q -n $(JOBS) --dist loadfile tests/python

test-requirements: venv
	@$(PYTHON) -m pip install --quiet -r requirements-test.txt 2>&1 | grep -v "is ignored" || true

test-zoo: build
	@$(PYTHON) -m pip install --quiet -r requirements-zoo.txt 2>&1 | grep -v "is ignored" || true
	@TVMBRIDGE_ZOO_TABLE=$(CURDIR)/$(BUILD_DIR)/zoo.md $(PYTHON) -m pytest -q tests/zoo $(ZOO_ARGS)
	@$(MAKE) --no-print-directory bench-zoo

bench-zoo: build
	@$(PYTHON) -m pip install --quiet -r requirements-zoo.txt 2>&1 | grep -v "is ignored" || true
	@$(PYTHON) bench/zoo.py --out $(BUILD_DIR)/zoo_speed.md $(BENCH_ARGS)

demo: build
	@$(PYTHON) -m tvmbridge.demo --out $(BUILD_DIR)/demo

survey: build
	@$(PYTHON) bench/accuracy_survey.py | tee $(BUILD_DIR)/accuracy_survey.txt
	@$(PYTHON) bench/partition_coverage.py --out bench/partition_coverage.txt

sanitize: build
	@bash scripts/sanitize.sh

fuzz: build
	@bash scripts/fuzz.sh

fuzz-ops: build
	@PYTHONPATH=$(CURDIR)/python:$(CURDIR)/tests/python $(PYTHON) tests/python/differential.py \
	  --cases $(or $(FUZZ_OPS_CASES),500) --seed $(or $(FUZZ_OPS_SEED),0)

bench-bf16: build
	@$(PYTHON) bench/bf16.py --out $(BUILD_DIR)/bf16.md $(BENCH_ARGS)

bench-int8: build test-requirements
	@$(PYTHON) -m pip install --quiet -r requirements-bench.txt 2>&1 | grep -v "is ignored" || true
	@$(PYTHON) bench/int8.py --out $(BUILD_DIR)/int8.md $(BENCH_ARGS)

bench-paths: build
	@$(PYTHON) bench/export_paths.py --out $(BUILD_DIR)/export_paths.md $(BENCH_ARGS)

bench: build
	@$(PYTHON) -m pip install --quiet -r requirements-bench.txt 2>&1 | grep -v "is ignored" || true
	@$(PYTHON) bench/benchmark.py $(BENCH_ARGS)

format:
	@clang-format -i $$(git ls-files '*.cc' '*.h')

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log build-address* build-thread* build-fuzz*

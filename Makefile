# Friendly front for the CMake build. `make test` and `make demo` install what they need.
BUILD    ?= build
PREFIX   ?= /usr/local
NATIVE   ?= 1
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=Release -DAIT_NATIVE=$(if $(filter 0,$(NATIVE)),OFF,ON)

.PHONY: all build deps test asan demo bench crosscheck fuzz install clean

all: build

build:
	@tools/deps.sh build
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DAIT_TESTS=$(if $(wildcard /usr/include/gtest/gtest.h),ON,OFF)
	cmake --build $(BUILD) -j $(JOBS)

deps:
	tools/deps.sh build test demo bench

test:
	tools/deps.sh build test
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS) -DAIT_TESTS=ON
	cmake --build $(BUILD) -j $(JOBS)
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

asan:
	tools/deps.sh build test
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DAIT_SANITIZE=ON -DAIT_NATIVE=$(if $(filter 0,$(NATIVE)),OFF,ON) -DAIT_TESTS=ON
	cmake --build build-asan -j $(JOBS)
	cd build-asan && LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp ctest --output-on-failure -j $(JOBS)

demo: build
	@tools/deps.sh demo || true
	tools/demo.sh $(BUILD)

bench: build
	@tools/deps.sh bench || true
	$(BUILD)/ait-bench

crosscheck: build
	tools/reference/crosscheck.sh $(BUILD)
	tools/reference/ddp_check.sh $(BUILD)

# libFuzzer targets (tools/fuzz/fuzz_*.cpp) with ASan + UBSan, each run FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
FUZZ_DIR     ?= $(BUILD)-fuzz
fuzz:
	@command -v clang++ >/dev/null 2>&1 || { echo "make fuzz needs clang and libFuzzer; run as root:  apt-get update && apt-get install -y clang libclang-rt-dev" >&2; exit 1; }
	tools/fuzz/build.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

# ait.h, libait.so / libait.a, the CMake package (find_package(ait)), ait.pc and the programs.
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) build-asan

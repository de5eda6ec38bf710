# dvm — top-level driver. `make demo` and `make test` work on a fresh Debian 12 machine:
# they install missing Debian packages (as root; otherwise they print the apt-get line),
# configure, build and run. CI (`.ci/run`) calls `make test` with CI=true, which adds
# -Werror. The suite runs twice, a Release build and an ASan+UBSan build; then the
# concurrency tests run under ThreadSanitizer, and each libFuzzer target of tests/fuzz for
# a short while in a clang build.

BUILD      ?= build
BUILD_SAN  ?= build-asan
BUILD_FUZZ ?= build-fuzz
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc)
WERROR     := $(if $(CI),ON,OFF)

# Build and test dependencies (Debian package names).
DEPS_BUILD := cmake gcc make pkg-config llvm-19-dev libffi-dev libxxhash-dev libdlpack-dev \
              protobuf-c-compiler libprotobuf-c-dev libonnx-dev python3-dev
DEPS_TEST  := python3-numpy python3-onnx python3-torch python3-pytest
DEPS       := $(DEPS_BUILD) $(DEPS_TEST)
# The fuzz targets: clang and its libFuzzer runtime (only recommended by clang-14).
DEPS_FUZZ  := clang libclang-rt-14-dev
# The bench's peers and charts (make demo): torch, ONNX export, Halide, matplotlib, OpenBLAS.
DEPS_DEMO  := python3-torch python3-onnx python3-halide python3-matplotlib libopenblas0-pthread

.PHONY: all deps fuzz-deps demo-deps build build-asan build-tsan build-fuzz demo install test test-release \
        test-asan test-tsan test-fuzz clean

all: build

# Install the Debian packages in $(1) that are missing (as root), or print the apt-get line.
define apt_install
	@missing=""; for p in $(1); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "dvm: installing$$missing"; \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get update -qq </dev/null && apt-get install -y -qq --no-install-recommends $$missing </dev/null >/dev/null || exit 1; \
	  else \
	    echo "dvm: missing Debian packages; run as root:"; \
	    echo "  apt-get install$$missing"; exit 1; \
	  fi; \
	fi
endef

deps:
	$(call apt_install,$(DEPS))

fuzz-deps: deps
	$(call apt_install,$(DEPS_FUZZ))

# Peers: Debian packages, Node.js (if the machine has none), and onnxruntime-node from
# bench/package-lock.json (ONNXRUNTIME_NODE_INSTALL=skip: the CPU build, no CUDA download).
demo-deps: deps
	$(call apt_install,$(DEPS_DEMO) $(if $(shell command -v node),,nodejs npm))
	@if [ -f bench/package-lock.json ] && [ ! -d bench/node_modules/onnxruntime-node ]; then \
	  echo "dvm: installing onnxruntime-node (npm)"; \
	  cd bench && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund </dev/null >/dev/null || exit 1; \
	fi

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DDVM_WERROR=$(WERROR)

build: deps $(BUILD)/CMakeCache.txt
	cmake -S . -B $(BUILD) -DDVM_WERROR=$(WERROR) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDVM_SANITIZE=ON -DDVM_SHARED=OFF \
	  -DDVM_WERROR=$(WERROR) >/dev/null
	cmake --build $(BUILD_SAN) -j $(JOBS)

build-tsan: deps
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDVM_TSAN=ON -DDVM_SHARED=OFF \
	  -DDVM_WERROR=$(WERROR) >/dev/null
	cmake --build $(BUILD_TSAN) -j $(JOBS) --target test_soak test_pool test_cache_threads test_code_cache test_lazy

build-fuzz: fuzz-deps
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDVM_FUZZ=ON -DDVM_SHARED=OFF \
	  -DDVM_WERROR=$(WERROR) >/dev/null
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_graph fuzz_onnx fuzz_npy fuzz_objcache fuzz_lazy

# libdvm.so, dvm.h, the dvm tool, dvm.pc and the CMake package under PREFIX (default
# /usr/local).
install: build
	cmake --install $(BUILD) $(if $(PREFIX),--prefix $(PREFIX))

# The main job: the bench on the bundled workloads, with every peer, charts in bench-out/.
demo: demo-deps build
	$(BUILD)/dvm bench --peers --plot bench-out
	env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(BUILD)/dvm bench --eager --plot bench-out

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

# The concurrency tests (the thread pool; runs on eight threads while kernels tier up,
# compiles at once, models destroyed with compiles in flight; the object cache written and
# read by threads of two contexts, code evicted while other threads run; lazy values recorded
# by four threads, each forcing another's trace); a race is a failure.
test-tsan: build-tsan
	cd $(BUILD_TSAN) && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
	  ctest --output-on-failure -R 'unit\.test_(soak|pool|cache_threads|code_cache|lazy)$$'

# Each fuzz target for DVM_FUZZ_SECONDS (tests/fuzz/run_fuzz.py runs them for hours).
test-fuzz: build-fuzz
	cd $(BUILD_FUZZ) && ctest --output-on-failure -R '^fuzz\.'

test: test-release test-asan test-tsan test-fuzz

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_TSAN) $(BUILD_FUZZ)

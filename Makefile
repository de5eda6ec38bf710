# dvm — top-level driver. `make demo` and `make test` work on a fresh Debian 12 machine:
# they install missing Debian packages (as root; otherwise they print the apt-get line),
# configure, build and run. CI (`.ci/run`) calls `make test` with CI=true, which adds
# -Werror. The suite runs twice: a Release build and an ASan+UBSan build.

BUILD      ?= build
BUILD_SAN  ?= build-asan
JOBS       ?= $(shell nproc)
WERROR     := $(if $(CI),ON,OFF)

# Build and test dependencies (Debian package names).
DEPS_BUILD := cmake gcc make pkg-config llvm-19-dev libffi-dev libxxhash-dev libdlpack-dev
DEPS_TEST  := python3-numpy
DEPS       := $(DEPS_BUILD) $(DEPS_TEST)

.PHONY: all deps build build-asan demo test test-release test-asan clean

all: build

deps:
	@missing=""; for p in $(DEPS); do \
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

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DDVM_WERROR=$(WERROR)

build: deps $(BUILD)/CMakeCache.txt
	cmake -S . -B $(BUILD) -DDVM_WERROR=$(WERROR) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDVM_SANITIZE=ON -DDVM_WERROR=$(WERROR) >/dev/null
	cmake --build $(BUILD_SAN) -j $(JOBS)

# The main job: until `dvm bench` lands, run the bundled example graphs end to end.
demo: build
	@for g in examples/*.dvm; do \
	  args=$$(sed -n 's/^# demo: //p' $$g); \
	  echo "== dvm run $$g $$args --tier ref --repeat 20 --stats"; \
	  $(BUILD)/dvm run $$g $$args --tier ref --repeat 20 --stats || exit 1; \
	done

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

test: test-release test-asan

clean:
	rm -rf $(BUILD) $(BUILD_SAN)

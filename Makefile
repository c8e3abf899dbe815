# Thin wrapper over CMake/CTest. Build trees live in build/<config>:
#   release   -O2, the normal build (tests, examples, install)
#   asan      AddressSanitizer + UBSan, -O1
#   tsan      ThreadSanitizer, -O1 (only tests labelled `thread` run)
#   ucontext  -DTULIP_CONTEXT=ucontext
#   aarch64   cross-compiled, static, run under qemu-aarch64 (plain tests)
#   bench     -O2, bench programs only
#
#   make              release build
#   make test         the whole matrix, stopping at the first failing stage
#   make test-quick   release build + its tests
#   make test-<cfg>   one stage of the matrix (release asan tsan ucontext aarch64)
#   make demo         release build, then the seed tour (tools/demo.sh)
#   make install      install the release build into PREFIX (/usr/local)
#   make bench        tulip beside its peers (tools/bench.sh): a progress
#                     line, then one table and build/bench/bench.png;
#                     REPS=3 runs of each figure, QUICK=1 small N (smoke
#                     check), BENCH_ARGS for more (see tools/bench.sh -h)
#   make clean        remove build/
SHELL := /bin/bash
CMAKE ?= cmake
CTEST ?= ctest
JOBS ?= 2
PREFIX ?= /usr/local
REPS ?= 3
QUICK ?=
BENCH_ARGS ?=
# Guard strategy the qemu-aarch64 tests must see the stack probe choose
# (exported to the tests as TULIP_EXPECT_GUARD; empty: not checked).
TULIP_EXPECT_GUARD ?= mprotect
# The loop watchdog (100 ms by default) is too tight under sanitizers/qemu.
SLOW_ENV := TULIP_BLOCKING_MS=2000

STAGES := release asan tsan ucontext aarch64

NINJA := $(shell command -v ninja 2>/dev/null)
# A generator can only be chosen when a build tree is first configured.
gen = $(if $(wildcard build/$(1)/CMakeCache.txt),,$(if $(NINJA),-G Ninja))

CFG_release  := -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG"
CFG_asan     := -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1" \
                -DTULIP_SANITIZE=address,undefined \
                -DTULIP_BUILD_SHARED=OFF -DTULIP_BUILD_BENCH=OFF
CFG_tsan     := -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1" \
                -DTULIP_SANITIZE=thread \
                -DTULIP_BUILD_SHARED=OFF -DTULIP_BUILD_BENCH=OFF
CFG_ucontext := -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
                -DTULIP_CONTEXT=ucontext -DTULIP_TEST_VALGRIND=OFF \
                -DTULIP_BUILD_SHARED=OFF -DTULIP_BUILD_BENCH=OFF
CFG_aarch64  := -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-aarch64.cmake \
                -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
                -DTULIP_EXPECT_GUARD="$(TULIP_EXPECT_GUARD)"
CFG_bench    := -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O2 -DNDEBUG" \
                -DTULIP_BUILD_TESTS=OFF -DTULIP_BUILD_EXAMPLES=ON \
                -DTULIP_BUILD_SHARED=OFF

CTEST_ARGS := --output-on-failure -j$(JOBS)
TEST_release  := $(CTEST_ARGS) --no-tests=error
TEST_asan     := $(CTEST_ARGS) --no-tests=error
TEST_tsan     := $(CTEST_ARGS) --no-tests=ignore -L thread
TEST_ucontext := $(CTEST_ARGS) --no-tests=error
TEST_aarch64  := $(CTEST_ARGS) --no-tests=ignore
ENV_release   :=
ENV_asan      := $(SLOW_ENV)
ENV_tsan      := $(SLOW_ENV)
ENV_ucontext  :=
ENV_aarch64   := $(SLOW_ENV)

.PHONY: all release demo test test-quick install bench bench-net clean \
        $(addprefix build-,$(STAGES) bench) $(addprefix test-,$(STAGES))

all: release
release: build-release

# Configure (again: cheap, and keeps the options above authoritative) and build.
$(addprefix build-,$(STAGES) bench): build-%:
	$(CMAKE) -S . -B build/$* $(call gen,$*) $(CFG_$*)
	$(CMAKE) --build build/$* -j $(JOBS)

# One stage: build, then ctest; the ctest output is kept in build/<cfg>/ctest.log.
$(addprefix test-,$(STAGES)): test-%: build-%
	set -o pipefail; cd build/$* && \
	  env $(ENV_$*) $(CTEST) $(TEST_$*) 2>&1 | tee ctest.log

test-quick: test-release

# The matrix: each stage in turn, stop at the first failure, then a summary
# with timings and the test counts summed over the stages that ran.
test:
	@summary=""; rc=0; passed=0; failed=0; \
	for s in $(STAGES); do \
	  if [ $$rc -ne 0 ]; then summary+="  $$s: skipped"$$'\n'; continue; fi; \
	  echo "=== stage $$s ==="; start=$$(date +%s); \
	  rm -f build/$$s/ctest.log; \
	  if $(MAKE) --no-print-directory test-$$s; then r=ok; else r=FAILED; rc=1; fi; \
	  secs=$$(( $$(date +%s) - start )); \
	  line=$$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' build/$$s/ctest.log 2>/dev/null | tail -n1); \
	  if [ -n "$$line" ]; then \
	    f=$$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$$line"); \
	    t=$$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$$line"); \
	    passed=$$(( passed + t - f )); failed=$$(( failed + f )); r="$$r, $$((t - f))/$$t tests"; \
	  fi; \
	  summary+="  $$s: $$r ($${secs}s)"$$'\n'; \
	  echo "=== stage $$s: $$r ($${secs}s) ==="; \
	done; \
	echo; echo "matrix summary:"; printf '%s' "$$summary"; \
	if [ $$rc -ne 0 ] && [ $$failed -eq 0 ]; then failed=1; fi; \
	echo "matrix: $$passed passed, $$failed failed"; \
	exit $$rc

demo: build-release
	tools/demo.sh build/release/examples

install: build-release
	$(CMAKE) --install build/release --prefix "$(PREFIX)"

# tools/bench.sh builds build/bench itself (make build-bench) and the peers.
bench:
	tools/bench.sh --reps $(REPS) $(if $(filter 1,$(QUICK)),--quick) $(BENCH_ARGS)

bench-net:
	tools/bench-net.sh --reps $(REPS) $(BENCH_ARGS)

clean:
	rm -rf build

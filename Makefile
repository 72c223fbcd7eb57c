# weave's entry points. The two commands of the README:
#
#   make demo   installs what is missing, builds, and runs the tour of the examples
#   make test   builds three ways (plain, ASan+UBSan, TSan) and runs the whole test suite in each,
#               then builds the libFuzzer target (clang, ASan+UBSan) and fuzzes its corpus
#
# Other targets: deps, build, bench, clean; test-build, test-build-asan, test-build-tsan,
# test-build-fuzz run one of the four test suites of `make test` alone.
#
# Variables: JOBS (parallel compile jobs, default: nproc), CTEST_JOBS (parallel tests, 2),
# BUILD_TYPE (RelWithDebInfo), CXX (compiler of the plain and ASan builds, g++),
# TSAN_CXX (compiler of the TSan build, clang++-14), FUZZ_CXX (of the fuzz build, clang++-14),
# FUZZ_SECONDS (how long `make test` fuzzes after the corpus, 50).

SHELL := /bin/bash
.DEFAULT_GOAL := build
# The targets call each other in order, and every build already compiles in parallel.
.NOTPARALLEL:
# Sub-makes (ours and CMake's) would otherwise print "Entering directory" around every step.
MAKEFLAGS += --no-print-directory

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_JOBS ?= 2
BUILD_TYPE ?= RelWithDebInfo
CMAKE ?= cmake
CTEST ?= ctest
# g++ 12 (make's default $(CXX)) for the plain and ASan builds; clang 14 for TSan, where
# g++ 12's TSan took 30 times longer and 20 times the memory on the same fiber test.
TSAN_CXX ?= clang++-14
# libFuzzer comes with clang only.
FUZZ_CXX ?= clang++-14
FUZZ_SECONDS ?= 50

# Debian 12 packages: the toolchains, CMake, Boost 1.81 (Boost.Context; Boost.Fiber for the
# benchmarks), GoogleTest, Google Benchmark, python3 for the scripts, and valgrind, whose
# headers let the stack pool register fiber stacks with valgrind. clang's sanitizer and libFuzzer
# runtimes are in libclang-rt-14-dev, which clang-14 only recommends.
DEB_PACKAGES := g++ clang-14 libclang-rt-14-dev cmake make libboost1.81-dev \
  libboost-context1.81-dev libboost-fiber1.81-dev libgtest-dev libbenchmark-dev python3 valgrind

# The test suites of `make test`: a build directory each, with its CMake options and the
# environment its tests run in.
SUITES := build build-asan build-tsan build-fuzz
CONFIG_build := -DWEAVE_SANITIZE= -DWEAVE_BUILD_BENCH=ON
CONFIG_build-asan := -DWEAVE_SANITIZE=address -DWEAVE_BUILD_BENCH=OFF
CONFIG_build-tsan := -DWEAVE_SANITIZE=thread -DWEAVE_BUILD_BENCH=OFF \
  -DCMAKE_CXX_COMPILER=$(TSAN_CXX)
# Only the libraries (with coverage for libFuzzer) and the fuzz target, whose one test replays
# tests/fuzz/corpus and then fuzzes for FUZZ_SECONDS (tests/fuzz/CMakeLists.txt).
CONFIG_build-fuzz := -DWEAVE_FUZZ=ON -DWEAVE_SANITIZE=address -DWEAVE_BUILD_TESTS=OFF \
  -DWEAVE_BUILD_BENCH=OFF -DWEAVE_BUILD_EXAMPLES=OFF -DCMAKE_CXX_COMPILER=$(FUZZ_CXX) \
  -DWEAVE_FUZZ_SECONDS=$(FUZZ_SECONDS)
# The compiler the plain and ASan builds get when their directory is first configured.
FIRST_CXX_build := $(CXX)
FIRST_CXX_build-asan := $(CXX)
ENV_build :=
# detect_stack_use_after_return makes ASan keep frames on its fake stack, which stresses the
# fiber-switch annotations. halt_on_error stops at the first report; the sanitizer canary tests
# match the report text, not the exit code, so they still pass.
ENV_build-asan := ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ENV_build-tsan := TSAN_OPTIONS=halt_on_error=1
ENV_build-fuzz :=

.PHONY: all deps build test bench demo clean test-summary $(SUITES:%=test-%)

all: build

# ---- deps ------------------------------------------------------------------------------------

deps:
	@if ! command -v dpkg-query >/dev/null; then \
	  echo "make deps: not a Debian system; make sure these (or their equivalents) are installed:"; \
	  echo "  $(DEB_PACKAGES)"; \
	  exit 0; \
	fi; \
	missing=(); \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$$p"); \
	done; \
	if [ $${#missing[@]} -eq 0 ]; then echo "make deps: all $(words $(DEB_PACKAGES)) packages are installed"; exit 0; fi; \
	echo "make deps: missing: $${missing[*]}"; \
	if [ "$$(id -u)" -eq 0 ]; then \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$${missing[@]}"; \
	else \
	  echo "make deps: run this, then try again:"; \
	  echo "  sudo apt-get install -y $${missing[*]}"; \
	  exit 1; \
	fi

# ---- build -----------------------------------------------------------------------------------

# The plain and ASan builds are given their compiler only when their directory is configured
# for the first time: CMake cannot change the compiler of an existing build directory without
# starting it over, and `make build` should not fight a build/ configured by hand. The TSan
# build always names clang, since TSan with g++ is too slow to be worth running.
define configure
$(CMAKE) -S . -B $(1) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
  $(if $(FIRST_CXX_$(1)),$$([ -f $(1)/CMakeCache.txt ] || echo -DCMAKE_CXX_COMPILER=$(FIRST_CXX_$(1)))) \
  $(CONFIG_$(1))
endef

build:
	@$(call configure,build)
	@$(CMAKE) --build build -j$(JOBS)

# ---- test ------------------------------------------------------------------------------------

test: deps
	@start=$$(date +%s); \
	$(MAKE) $(SUITES:%=test-%); \
	echo "make test: $$(( $$(date +%s) - start )) s in all"; \
	$(MAKE) test-summary

# One suite: configure, build, run ctest. It never fails itself: the results are left in
# DIR/weave-ctest.log (and the time taken in DIR/weave-suite.seconds) for test-summary, so
# that one broken suite does not hide the results of the others. A build that fails keeps
# going (make -k), and ctest still runs what did build; the tests of a program that did not
# build show up as failed ("_NOT_BUILT"). Tests without a TIMEOUT of their own get 300 s, so
# that a hung test cannot eat the time budget of CI.
$(SUITES:%=test-%): test-%:
	@mkdir -p $*; rm -f $*/weave-ctest.log $*/weave-suite.seconds $*/weave-build-failed; \
	start=$$(date +%s); \
	echo "==== $*: configure and build"; \
	if $(call configure,$*); then \
	  if [ -f $*/build.ninja ]; then keep_going="-k 0"; else keep_going="-k"; fi; \
	  if ! $(CMAKE) --build $* -j$(JOBS) -- $$keep_going; then \
	    echo "==== $*: THE BUILD FAILED; running the tests that did build"; \
	    touch $*/weave-build-failed; \
	  fi; \
	  echo "==== $*: ctest"; \
	  env $(ENV_$*) $(CTEST) --test-dir $* --output-on-failure -j$(CTEST_JOBS) --timeout 300 2>&1 \
	    | tee $*/weave-ctest.log; \
	else \
	  echo "==== $*: CMAKE FAILED"; \
	  touch $*/weave-build-failed; \
	fi; \
	echo $$(( $$(date +%s) - start )) > $*/weave-suite.seconds

# Adds up ctest's "X tests failed out of Y" lines and prints "N passed, M failed" last. A
# suite whose build failed counts one failure more; one without that line (cmake failed, or
# ctest died) counts as one failure.
test-summary:
	@passed=0; failed=0; \
	for s in $(SUITES); do \
	  secs=$$(cat $$s/weave-suite.seconds 2>/dev/null || echo '?'); \
	  note=""; \
	  if [ -f $$s/weave-build-failed ]; then failed=$$((failed + 1)); note=", and the build failed"; fi; \
	  line=$$(grep -Eo '[0-9]+ tests? failed out of [0-9]+' $$s/weave-ctest.log 2>/dev/null | tail -n 1); \
	  if [ -n "$$line" ]; then \
	    f=$${line%% *}; t=$${line##* }; \
	    passed=$$((passed + t - f)); failed=$$((failed + f)); \
	    echo "$$s: $$((t - f)) passed, $$f failed$$note ($$secs s)"; \
	  elif grep -q 'No tests were found' $$s/weave-ctest.log 2>/dev/null; then \
	    echo "$$s: no tests$$note ($$secs s)"; \
	  elif [ -z "$$note" ]; then \
	    failed=$$((failed + 1)); \
	    echo "$$s: no test results: ctest did not finish ($$secs s)"; \
	  else \
	    echo "$$s: no test results$$note ($$secs s)"; \
	  fi; \
	done; \
	echo "$$passed passed, $$failed failed"; \
	[ $$failed -eq 0 ]

# ---- bench, demo, clean ----------------------------------------------------------------------

# `make bench`: every benchmark, then docs/bench.md with its tables and gnuplot SVGs
# (bench/report/run.sh all; about 15 minutes; BENCH_QUICK=1 for a short run).
bench: build bench-deps
	@bash bench/report/run.sh all

# Bench-only packages: gnuplot-nox draws the report's figures, golang-go adds Go's goroutines as
# a peer. Installed when missing if we can (root, a reachable mirror); the bench runs without
# them (no figures, "Go: not installed").
BENCH_PACKAGES := gnuplot-nox golang-go
.PHONY: bench-deps
bench-deps:
	@missing=(); \
	for p in $(BENCH_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$$p"); \
	done; \
	if [ $${#missing[@]} -gt 0 ] && [ "$$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then \
	  echo "make bench: installing $${missing[*]} (optional; the bench runs without them)"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$${missing[@]}" \
	    >/dev/null 2>&1 || echo "make bench: could not install $${missing[*]}: going on without"; \
	elif [ $${#missing[@]} -gt 0 ]; then \
	  echo "make bench: missing (optional) $${missing[*]}: sudo apt-get install $${missing[*]}"; \
	fi

demo: deps build
	@bash docs/examples/tour.sh build

clean:
	rm -rf $(SUITES)

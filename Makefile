# gpt.c - build, test and install.
#
#   make                 build/gpt, build/libgpt.a, build/libgpt.so
#   make test            build and run every test; ends with "N passed, N failed, N skipped"
#   make NATIVE=0        build for the baseline of the target instead of -march=native
#   make SIMD=0          force the scalar kernels (-DGPT_NO_SIMD)
#   make BUILD=dir       put build outputs elsewhere (default: build)

CC      ?= cc
AR      ?= ar
BUILD   ?= build
NATIVE  ?= 1
SIMD    ?= 1
PYTHON  ?= python3
PREFIX  ?= /usr/local

SOVERSION := 0
VERSION   := $(shell sed -n 's/^#define GPT_VERSION_STRING "\(.*\)"/\1/p' gpt.h)

OPT      ?= -O2
ARCHFLAGS ?= $(if $(filter 1,$(NATIVE)),-march=native,)
WARN     := -std=c99 -pedantic -Wall -Wextra
CFLAGS   ?= $(OPT) -g
ALL_CFLAGS = $(WARN) $(CFLAGS) $(ARCHFLAGS) $(if $(filter 0,$(SIMD)),-DGPT_NO_SIMD,) $(EXTRA_CFLAGS)
LIB_CFLAGS = $(ALL_CFLAGS) -fPIC -fvisibility=hidden
LDLIBS   ?= -lm -pthread

LIB_SRC  := gpt.c tokenizer.c
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_SRC  := $(filter-out cli/main.c,$(wildcard cli/*.c))
CLI_OBJ  := $(CLI_SRC:cli/%.c=$(BUILD)/obj/cli/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_SCRIPTS := $(wildcard tests/test_*.sh)

.PHONY: all test clean check-tests

all: $(BUILD)/gpt $(BUILD)/libgpt.a $(BUILD)/libgpt.so

$(BUILD)/obj/%.o: %.c gpt.h
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) -c $< -o $@

$(BUILD)/obj/cli/%.o: cli/%.c gpt.h $(wildcard cli/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -I. -c $< -o $@

$(BUILD)/libgpt.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/libgpt.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libgpt.so.$(SOVERSION) $(ALL_CFLAGS) -o $(BUILD)/libgpt.so.$(VERSION) $^ $(LDLIBS)
	ln -sf libgpt.so.$(VERSION) $(BUILD)/libgpt.so.$(SOVERSION)
	ln -sf libgpt.so.$(VERSION) $@

$(BUILD)/libgptcli.a: $(CLI_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

# The command knows where the demo model of this checkout is.
$(BUILD)/gpt: cli/main.c $(BUILD)/libgptcli.a $(BUILD)/libgpt.a
	$(CC) $(ALL_CFLAGS) -I. -DGPT_SOURCE_DIR='"$(CURDIR)"' -DGPT_PREFIX='"$(PREFIX)"' \
		cli/main.c $(BUILD)/libgptcli.a $(BUILD)/libgpt.a -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(BUILD)/libgptcli.a $(BUILD)/libgpt.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Icli -I. $< $(BUILD)/libgptcli.a $(BUILD)/libgpt.a -o $@ $(LDLIBS)

# TEST_WRAPPER runs the test programs (and the gpt command) under an
# emulator or debugger, e.g. qemu for another architecture.
test: all $(TEST_BIN)
	@GPT="$(TEST_WRAPPER) $(BUILD)/gpt" BUILD=$(BUILD) PYTHON=$(PYTHON) TEST_WRAPPER="$(TEST_WRAPPER)" \
		sh tests/run.sh $(TEST_BIN) $(TEST_SCRIPTS)

clean:
	rm -rf $(BUILD)

# The whole suite under AddressSanitizer and UndefinedBehaviorSanitizer.
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
.PHONY: test-sanitize
test-sanitize:
	$(MAKE) BUILD=$(BUILD)/asan OPT=-O1 EXTRA_CFLAGS="$(SAN)" test

# Regenerates the golden files with the PyTorch reference (needs python3-torch).
.PHONY: golden
golden:
	/usr/bin/python3 tests/reference/make_golden.py

# The other kernel paths, each built in its own folder and run through the
# whole suite: the portable scalar code, AVX2+FMA+F16C without AVX-512, and
# NEON (aarch64, cross-compiled and run under qemu-user).
.PHONY: test-scalar test-avx2 test-arm
test-scalar:
	$(MAKE) BUILD=$(BUILD)/scalar SIMD=0 test
test-avx2:
	$(MAKE) BUILD=$(BUILD)/avx2 NATIVE=0 ARCHFLAGS="-mavx2 -mfma -mf16c -mno-avx512f" test
ARM_SYSROOT ?= /usr/aarch64-linux-gnu
test-arm:
	$(MAKE) BUILD=$(BUILD)/arm CC=aarch64-linux-gnu-gcc AR=aarch64-linux-gnu-ar NATIVE=0 ARCHFLAGS= \
		TEST_WRAPPER="qemu-aarch64 -L $(ARM_SYSROOT)" test

# Speed against the machine's limits on random 124M-shaped models, and the
# tokenizer's speed (docs/PERFORMANCE.md).
.PHONY: bench
bench: all $(BUILD)/tests/bench_tokenizer
	BUILD=$(BUILD) sh tools/bench.sh

# berth - build, dependencies, local stack, tests and benchmarks.
#
#   make            build every library and binary into build/
#   make deps       install the Debian packages and the nats CLI
#   make check      deps + build + every test   (SANITIZE=1: ASan + UBSan)
#   make bench      benchmarks, printing figures
#   make run        a local stack: nats-server and the four services
#   make fuzz       the JSON decoder fuzz target (libFuzzer)
#   make clean

CC       ?= gcc
CLANG    ?= clang
NATSCLI_VERSION := v0.3.0

ifeq ($(CC),cc)
CC := gcc
endif

VARIANT  := $(if $(SANITIZE),asan,release)
B        := build
OBJ      := $(B)/obj/$(VARIANT)
GEN      := $(B)/gen

PKGS     := libnats libprotobuf-c jansson libsodium libcurl openssl \
            libwebsockets libpq libssh zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)

CFLAGS   := -std=c17 -Wall -Wextra -Werror -O2 -g -D_GNU_SOURCE \
            -I. -I$(GEN) $(PKG_CFLAGS) $(EXTRA_CFLAGS)
# Each binary links only the libraries it uses.
LDFLAGS  := -Wl,--as-needed $(EXTRA_LDFLAGS)
ifdef SANITIZE
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif
LIBS     := $(PKG_LIBS) -lpthread -lm

# Debian packages the project builds, tests and runs with.
DEB_PKGS := build-essential pkg-config clang libclang-rt-14-dev \
            protobuf-c-compiler libprotobuf-c-dev libnats-dev nats-server \
            libjansson-dev libsodium-dev libcurl4-openssl-dev libssl-dev \
            libwebsockets-dev libpq-dev postgresql wrk busybox-static check curl \
            haproxy pebble libssh-dev openssh-client zlib1g-dev \
            node-xterm node-chart.js chromium chromium-driver ca-certificates

# ---------------------------------------------------------------- sources
PROTOS      := $(wildcard schemas/*.proto)
PB_C        := $(patsubst schemas/%.proto,$(GEN)/%.pb-c.c,$(PROTOS))
PB_H        := $(PB_C:.c=.h)

COMMON_SRC  := $(wildcard common/*.c)
BUS_SRC     := $(filter-out bus/berth-bus.c,$(wildcard bus/*.c))
PANEL_SRC   := $(wildcard svc-panel/*.c)
DAEMON_SRC  := $(wildcard svc-daemon/*.c)
EDGE_SRC    := $(wildcard svc-edge/*.c)
SHELL_SRC   := $(wildcard svc-shell/*.c)
HARNESS_SRC := $(wildcard tests/harness/*.c)

obj = $(patsubst %.c,$(OBJ)/%.o,$(1))

LIB_COMMON  := $(OBJ)/libberth-common.a
LIB_BUS     := $(OBJ)/libberth-bus.a
LIB_HARNESS := $(OBJ)/libberth-harness.a

BINS := $(B)/bin/berth-panel $(B)/bin/berth-daemon $(B)/bin/berth-edge \
        $(B)/bin/berth-shell $(B)/bin/berth-bus

UNIT_SRC   := $(wildcard tests/unit/*/*.c)
UNIT_BINS  := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRC))
INTEG_SRC  := $(wildcard tests/integration/*.c)
INTEG_BINS := $(patsubst tests/integration/%.c,$(B)/tests/integration/%,$(INTEG_SRC))
BENCH_SRC  := $(wildcard tests/bench/*.c)
BENCH_BINS := $(patsubst tests/bench/%.c,$(B)/tests/bench/%,$(BENCH_SRC))

.PHONY: all deps check test unit integration bench run fuzz clean docs docs-check FORCE
.SECONDARY:

all: $(BINS) docs/subjects.md

# Binaries are relinked whenever the variant (release / asan) changes.
$(B)/variant: FORCE
	@mkdir -p $(B)
	@echo $(VARIANT) | cmp -s - $@ || echo $(VARIANT) > $@

# ---------------------------------------------------------------- generated
$(GEN)/%.pb-c.c $(GEN)/%.pb-c.h: schemas/%.proto
	@mkdir -p $(GEN)
	protoc-c --proto_path=schemas --c_out=$(GEN) $<

$(GEN)/registry.c: $(PB_H) schemas/registry.sh
	sh schemas/registry.sh $@ $(PB_H)

# Every object may include generated headers.
$(OBJ)/%.o: %.c $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(OBJ)/gen/%.o: $(GEN)/%.c $(PB_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

GEN_OBJ := $(patsubst $(GEN)/%.c,$(OBJ)/gen/%.o,$(PB_C) $(GEN)/registry.c)

$(LIB_COMMON): $(call obj,$(COMMON_SRC))
	@rm -f $@
	ar rcs $@ $^

$(LIB_BUS): $(call obj,$(BUS_SRC)) $(GEN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIB_HARNESS): $(call obj,$(HARNESS_SRC))
	@rm -f $@
	ar rcs $@ $^

LINK = $(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/bin/berth-bus: $(call obj,bus/berth-bus.c) $(LIB_BUS) $(LIB_COMMON) $(B)/variant
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(B)/variant,$^) $(LIBS)

$(B)/bin/berth-panel: $(call obj,$(PANEL_SRC)) $(LIB_BUS) $(LIB_COMMON) $(B)/variant
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(B)/variant,$^) $(LIBS)

$(B)/bin/berth-daemon: $(call obj,$(DAEMON_SRC)) $(LIB_BUS) $(LIB_COMMON) $(B)/variant
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(B)/variant,$^) $(LIBS)

$(B)/bin/berth-edge: $(call obj,$(EDGE_SRC)) $(LIB_BUS) $(LIB_COMMON) $(B)/variant
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(B)/variant,$^) $(LIBS)

$(B)/bin/berth-shell: $(call obj,$(SHELL_SRC)) $(LIB_BUS) $(LIB_COMMON) $(B)/variant
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(B)/variant,$^) $(LIBS)

# Tests include the module under test's statics where they need them, so
# each test binary links the libraries after its own object.
$(B)/tests/%: $(OBJ)/tests/%.o $(LIB_HARNESS) $(LIB_BUS) $(LIB_COMMON) $(B)/variant
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter-out $(B)/variant,$^) $(CHECK_LIBS) $(LIBS)

# docs/subjects.md is generated from the catalog and committed.
# It is rewritten only when the catalog's output differs.
docs/subjects.md: $(B)/bin/berth-bus FORCE
	@mkdir -p docs
	@$(B)/bin/berth-bus subjects --markdown > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "updated $@"; fi

docs: docs/subjects.md

# ---------------------------------------------------------------- deps
deps:
	@missing=""; \
	for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing$$missing"; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@sh tests/harness/natscli.sh $(NATSCLI_VERSION)

# ---------------------------------------------------------------- tests
unit: $(UNIT_BINS)
	@sh tests/harness/run.sh $(UNIT_BINS)

integration: $(BINS) $(INTEG_BINS)
	@sh tests/harness/run.sh $(INTEG_BINS)

# The committed catalog page must match the catalog in the code.
docs-check: $(B)/bin/berth-bus
	@$(B)/bin/berth-bus subjects --markdown | cmp -s - docs/subjects.md || \
	  { echo "docs/subjects.md is out of date: run make docs and commit it"; exit 1; }
	@echo "docs/subjects.md matches the catalog"

test: docs-check unit integration

check: deps
	$(MAKE) all
	$(MAKE) test

bench: deps
	$(MAKE) $(BINS) $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

fuzz: $(PB_H) $(PB_C) $(GEN)/registry.c
	@mkdir -p $(B)/fuzz
	$(CLANG) -std=c17 -g -O1 -D_GNU_SOURCE -I. -I$(GEN) $(PKG_CFLAGS) \
	  -fsanitize=fuzzer,address,undefined \
	  tests/fuzz/codec_json.c $(wildcard bus/codec*.c) bus/types.c \
	  common/buf.c common/err.c \
	  $(PB_C) $(GEN)/registry.c -o $(B)/fuzz/codec_json $(PKG_LIBS)
	@mkdir -p $(B)/fuzz/corpus
	$(B)/fuzz/codec_json -max_total_time=$${FUZZ_SECONDS:-60} -max_len=8192 \
	  $(B)/fuzz/corpus tests/fuzz/corpus

run: deps all
	@sh tests/harness/stack.sh

clean:
	rm -rf $(B) var

-include $(shell find $(B)/obj -name '*.d' 2>/dev/null)

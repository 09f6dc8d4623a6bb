# portico - one process, many services.
#
#   make            build build/portico
#   make run        install what is missing, build, start the demo
#   make test       install what is missing, build, run every test (the end-to-end
#                   tests E2E_JOBS at a time, default 6: see tests/e2e/run.py)
#   make test-asan  the same suite against an ASan+UBSan build
#   make lint       clang-format (check mode), cppcheck, no include cycle among src/*.h,
#                   no file in src/ over 800 lines (make structure runs only that)
#   make fuzz       every fuzz target for FUZZ_SECONDS each (see tests/fuzz/README.md)
#   make fuzz-smoke every fuzz target over its seeds, then a few seconds each
#                   (FUZZ_JOBS targets at a time, default one per core)
#   make mutate     plant known bugs in a copy of src/ one at a time; report which the tests
#                   catch (MUTANTS=B1,B2 for a few; see tests/README.md)
#   make bench      portico against nginx and HAProxy (see BENCHMARKS.md)
#   make bench-ab BASE=path/to/previous/portico
#                   that binary against this build, in one run (see BENCHMARKS.md)
#   make structure  fail when a file in src/ is over 800 lines
#   make realapps   Node-RED, Jupyter and Syncthing behind portico in headless Chromium
#                   (a few minutes; needs npm; see tests/realapps/run.py)
#   make install    the binary, the systemd unit, the manual pages and an example
#                   configuration under PREFIX (/usr/local), staged under DESTDIR
#   make uninstall  remove what make install put there, except the configuration

VERSION := 0.1.0
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
# libyaml's header has no version macro: `portico version` shows the one built against.
YAML_BUILT := $(shell pkg-config --modversion yaml-0.1 2>/dev/null || echo unknown)
WFLAGS  := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter -fno-strict-aliasing -pthread \
           -D_GNU_SOURCE -DPORTICO_VERSION='"$(VERSION)"' -DPORTICO_YAML_BUILT='"$(YAML_BUILT)"'
# Stricter warnings for the product code in src/. The unit tests and fuzz
# harnesses get them too, less two: their fixtures fill configuration
# structs (char * fields, owned by the parser in the product) with string
# literals, and test_config builds its expected messages from a table of
# formats; neither pattern exists in src/.
SRC_WFLAGS  := -Wconversion -Wsign-conversion -Wformat=2 -Wvla -Wundef -Wwrite-strings
TEST_WFLAGS := $(SRC_WFLAGS) -Wno-write-strings -Wno-format-nonliteral
# Hardening: stack canaries, position-independent executable, full RELRO
# (the GOT is read-only once the dynamic linker has run), and
# _FORTIFY_SOURCE's checked string and memory calls. _FORTIFY_SOURCE needs
# optimisation and gets in the way of the sanitizers' own interceptors, so
# a sanitizer build or an -O0 build goes without it.
FORTIFY  := $(if $(SAN)$(filter -O0,$(OPT)),,-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2)
HARDEN   := $(FORTIFY) -fstack-protector-strong -fPIE
CFLAGS  ?= $(OPT) -g
CFLAGS  += $(WFLAGS) $(HARDEN) $(SAN)
LDFLAGS += -pthread -pie -Wl,-z,relro,-z,now $(SAN)
LDLIBS  := -lhttp_parser -lyaml -lssl -lcrypto -ljansson
# Each compile writes a .d file listing the headers it read (-MP adds an
# empty rule per header, so deleting a header does not break the build).
DEPFLAGS := -MMD -MP

SRCS     := $(sort $(wildcard src/*.c))
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
OBJS     := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

# Fuzzing: libFuzzer needs clang, so the fuzz build compiles the library
# sources itself, instrumented, into its own directory.
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS  := -O1 -g $(WFLAGS) $(DEPFLAGS) -fno-omit-frame-pointer \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined
# clang's -Wconversion also covers !"message" in the harnesses' checks.
FUZZ_WFLAGS  := $(TEST_WFLAGS) -Wno-string-conversion
FUZZ_SRCS    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJS    := $(LIB_SRCS:src/%.c=$(FUZZ_BUILD)/obj/%.o)

.PHONY: all deps run test test-asan unit e2e lint format bench clean fuzz fuzz-smoke fuzz-build \
        fuzz-bins mutate realapps structure bench-ab install uninstall FORCE

all: $(BUILD)/portico

# A build directory remembers the flags it was built with: when they
# change (a new warning, OPT=..., SAN=...), everything in it is rebuilt.
# The file is rewritten only when the flags differ, so that its time stamp
# moves only then.
quote = '$(subst ','\'',$(1))'
BUILD_FLAGS := $(CC) $(CFLAGS) $(SRC_WFLAGS) $(TEST_WFLAGS) $(LDFLAGS) $(LDLIBS)
FUZZ_FLAGS_NOW := $(FUZZ_CC) $(FUZZ_CFLAGS) $(SRC_WFLAGS) $(FUZZ_WFLAGS) $(LDLIBS)
$(BUILD)/flags: FORCE | $(BUILD)/obj
	@printf '%s\n' $(call quote,$(BUILD_FLAGS)) | cmp -s - $@ || printf '%s\n' $(call quote,$(BUILD_FLAGS)) >$@
$(FUZZ_BUILD)/flags: FORCE | $(FUZZ_BUILD)/obj
	@printf '%s\n' $(call quote,$(FUZZ_FLAGS_NOW)) | cmp -s - $@ || printf '%s\n' $(call quote,$(FUZZ_FLAGS_NOW)) >$@

$(BUILD)/obj/%.o: src/%.c $(BUILD)/flags | $(BUILD)/obj
	$(CC) $(CFLAGS) $(SRC_WFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/portico: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJS) $(BUILD)/flags | $(BUILD)/unit
	$(CC) $(CFLAGS) $(TEST_WFLAGS) $(DEPFLAGS) -MF $(BUILD)/obj/$(@F).d -Isrc $(LDFLAGS) -o $@ $< \
	    $(LIB_OBJS) $(LDLIBS) -lcmocka

$(BUILD)/obj $(BUILD)/unit:
	mkdir -p $@

$(FUZZ_BUILD)/obj/%.o: src/%.c $(FUZZ_BUILD)/flags | $(FUZZ_BUILD)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(SRC_WFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS) $(FUZZ_BUILD)/flags
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WFLAGS) -MF $(FUZZ_BUILD)/obj/$(@F).d -fsanitize=fuzzer -Isrc \
	    -o $@ $< $(FUZZ_OBJS) $(LDLIBS) -ldl

$(FUZZ_BUILD)/obj:
	mkdir -p $@

FORCE:

# (The unit and fuzz binaries' .d files go to obj/ too: unit/ and the fuzz
# directory hold only the binaries, which scripts run by name pattern.)
-include $(wildcard $(BUILD)/obj/*.d $(FUZZ_BUILD)/obj/*.d)

.SECONDARY: $(FUZZ_OBJS)

fuzz-build:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-bins

fuzz-bins: $(FUZZ_BINS)
	@:

fuzz: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-smoke: fuzz-build
	@tests/fuzz/run.sh $(FUZZ_BUILD) 4

deps:
	@scripts/deps.sh build

run:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory all
	@demo/run.sh $(BUILD)/portico

unit: $(BUILD)/portico $(UNIT_BINS)

test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory unit
	@tests/run.sh $(BUILD)

test-asan:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory unit BUILD=build/asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
	@PORTICO_ASAN=1 tests/run.sh build/asan

mutate:
	@scripts/deps.sh test
	@/usr/bin/python3 tests/mutate.py $(if $(MUTANTS),--only $(MUTANTS))

lint:
	@scripts/deps.sh lint
	clang-format --dry-run -Werror src/*.c src/*.h tests/unit/*.c tests/unit/*.h \
	    tests/fuzz/*.c tests/fuzz/*.h
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem -D__GNUC__ -D_GNU_SOURCE -Isrc src
	/usr/bin/python3 scripts/check-includes.py
	scripts/check-structure.sh

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c tests/unit/*.h tests/fuzz/*.c tests/fuzz/*.h

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@bench/run.sh $(BUILD)/portico
	@bench/tls.sh $(BUILD)/portico
	@bench/bodies.sh $(BUILD)/portico
	@bench/auth.sh $(BUILD)/portico
	@bench/tailnet.sh $(BUILD)/portico
	@bench/syscalls.sh $(BUILD)/portico
	@bench/dns.sh $(BUILD)/portico
	@bench/idle.sh $(BUILD)/portico
	@bench/scale.sh $(BUILD)/portico

bench-ab:
	@if [ -z "$(BASE)" ]; then echo "usage: make bench-ab BASE=path/to/previous/portico" >&2; exit 2; fi
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@bench/ab.sh $(BASE) $(BUILD)/portico

structure:
	@scripts/check-structure.sh

realapps:
	@scripts/deps.sh realapps
	@$(MAKE) --no-print-directory all
	@/usr/bin/python3 tests/realapps/run.py --portico $(BUILD)/portico

# Installation. The binary goes to sbin, as Debian's nginx and haproxy put
# theirs in /usr/sbin: a daemon that root or systemd starts, documented in
# section 8. The unit's command lines name the binary, so it is installed with
# the path substituted. The configuration is the user's: it is created from
# the example only when there is none, and uninstall leaves it.
PREFIX     ?= /usr/local
DESTDIR    ?=
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
DOCDIR     ?= $(PREFIX)/share/doc/portico
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
# The binary to install (make install BIN=build/asan/portico for another build).
BIN        ?= $(BUILD)/portico
INSTALL    ?= install

install: $(BIN)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/portico
	$(INSTALL) -m 0755 $(BIN) $(DESTDIR)$(SBINDIR)/portico
	sed 's|/usr/local/bin/portico|$(SBINDIR)/portico|g' dist/portico.service \
	    >$(DESTDIR)$(UNITDIR)/portico.service.tmp
	chmod 0644 $(DESTDIR)$(UNITDIR)/portico.service.tmp
	mv -f $(DESTDIR)$(UNITDIR)/portico.service.tmp $(DESTDIR)$(UNITDIR)/portico.service
	$(INSTALL) -m 0644 docs/portico.8 $(DESTDIR)$(MANDIR)/man8/portico.8
	$(INSTALL) -m 0644 docs/portico.yaml.5 $(DESTDIR)$(MANDIR)/man5/portico.yaml.5
	$(INSTALL) -m 0644 dist/portico.yaml $(DESTDIR)$(DOCDIR)/portico.yaml.example
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/portico/portico.yaml ]; then \
	    echo "$(DESTDIR)$(SYSCONFDIR)/portico/portico.yaml exists: left as it is"; \
	else \
	    echo "$(INSTALL) -m 0644 dist/portico.yaml $(DESTDIR)$(SYSCONFDIR)/portico/portico.yaml"; \
	    $(INSTALL) -m 0644 dist/portico.yaml $(DESTDIR)$(SYSCONFDIR)/portico/portico.yaml; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/portico $(DESTDIR)$(UNITDIR)/portico.service \
	    $(DESTDIR)$(MANDIR)/man8/portico.8 $(DESTDIR)$(MANDIR)/man5/portico.yaml.5 \
	    $(DESTDIR)$(DOCDIR)/portico.yaml.example
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	@echo "$(DESTDIR)$(SYSCONFDIR)/portico/portico.yaml is left in place (remove it by hand)"

clean:
	rm -rf build

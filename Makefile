# portico - one process, many services.
#
#   make            build build/portico
#   make run        install what is missing, build, start the demo
#   make test       install what is missing, build, run every test
#   make test-asan  the same suite against an ASan+UBSan build
#   make lint       clang-format (check mode) and cppcheck
#   make bench      portico against nginx and HAProxy (see BENCHMARKS.md)

VERSION := 0.1.0
CC      ?= gcc
BUILD   ?= build
OPT     ?= -O2
SAN     ?=
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
           -Wmissing-prototypes -Wno-unused-parameter -fno-strict-aliasing -pthread \
           -D_GNU_SOURCE -DPORTICO_VERSION='"$(VERSION)"' $(SAN)
LDFLAGS += -pthread $(SAN)
LDLIBS  := -lhttp_parser -lyaml -lssl -lcrypto

SRCS     := $(sort $(wildcard src/*.c))
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
OBJS     := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

.PHONY: all deps run test test-asan unit e2e lint format bench clean

all: $(BUILD)/portico

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) | $(BUILD)/obj
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/portico: $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJS) tests/unit/unit.h | $(BUILD)/unit
	$(CC) $(CFLAGS) -Isrc -o $@ $< $(LIB_OBJS) $(LDLIBS) -lcmocka

$(BUILD)/obj $(BUILD)/unit:
	mkdir -p $@

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

lint:
	@scripts/deps.sh lint
	clang-format --dry-run -Werror src/*.c src/*.h tests/unit/*.c tests/unit/*.h
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem -D__GNUC__ -D_GNU_SOURCE -Isrc src

format:
	clang-format -i src/*.c src/*.h tests/unit/*.c tests/unit/*.h

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@bench/run.sh $(BUILD)/portico
	@bench/tls.sh $(BUILD)/portico
	@bench/auth.sh $(BUILD)/portico

clean:
	rm -rf build

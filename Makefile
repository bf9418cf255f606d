# weft - GNU Makefile, no configure step.
#
#   make            build/opt: libweft.a, libweft.so, tests, benchmarks, examples
#   make check      every test, optimized, under ASan+UBSan, with WEFT_DEBUG=migrate,
#                   and under TSan (scaled down, with and without migrate)
#   make check-tsan every test under ThreadSanitizer, scaled down
#   make bench      optimized benchmarks, each beside its baseline
#   make run        the demo
#   make install PREFIX=/usr/local
#   make format     .clang-format on the lines changed since FORMAT_BASE (HEAD)
#
# Variables: CC (gcc or clang), PREFIX, TEST_JOBS (tests run at once),
# TEST_TIMEOUT (seconds per test program), WEFT_TEST_SCALE (stress sizes, 1 = full),
# TSAN_TEST_SCALE (the stress sizes check-tsan uses).

CC       ?= cc
CXX      ?= c++
PREFIX   ?= /usr/local
TEST_JOBS    ?= 2
TEST_TIMEOUT ?= 300

VERSION  := 0.1.0
SOVER    := 0

WARN     := -Wall -Wextra -Werror
BASEFLAGS := -std=gnu11 -g -fno-omit-frame-pointer -fvisibility=hidden -fPIC \
             -D_GNU_SOURCE -Iinclude -Isrc $(WARN)
LDLIBS   := -lpthread -lm

# One build configuration per folder under build/.
OPT_CFLAGS  := $(BASEFLAGS) -O2
ASAN_CFLAGS := $(BASEFLAGS) -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -DWEFT_ASAN=1
ASAN_LDFLAGS := -fsanitize=address,undefined
# gcc warns that TSan does not model standalone fences (-Wtsan); the
# fences weft uses pair with seq_cst accesses TSan does see.
TSAN_CFLAGS := $(BASEFLAGS) -O1 -fsanitize=thread -DWEFT_TSAN=1 $(if $(findstring clang,$(CC)),,-Wno-error=tsan)
TSAN_LDFLAGS := -fsanitize=thread

LIB_C    := $(sort $(wildcard src/*/*.c) $(wildcard src/*.c))
LIB_S    := $(sort $(wildcard src/arch/*.S))
TEST_C   := $(sort $(wildcard tests/t_*.c))
BENCH_C  := $(sort $(wildcard bench/*.c))
EX_C     := $(filter-out examples/plugin_%.c,$(sort $(wildcard examples/*.c)))
PLUGIN_C := $(sort $(wildcard examples/plugin_*.c))
HDRS     := $(wildcard include/*.h include/weft/*.h src/*.h src/*/*.h tests/*.h bench/*.h)

.PHONY: all lib check check-opt check-asan check-tsan bench run install clean format
.DEFAULT_GOAL := all

# Every library object's code goes in one section, weft_text, so that the
# preemption handler can tell weft's code from the program's by address
# (src/sched/preempt.c); the linker gathers it and defines its bounds.
WEFT_TEXT = objcopy --rename-section .text=weft_text --rename-section .text.unlikely=weft_text \
            --rename-section .text.hot=weft_text --rename-section .text.startup=weft_text \
            --rename-section .text.exit=weft_text

# $(call objs,dir) -> object files of the library in build dir
objs = $(patsubst src/%.c,$(1)/obj/%.o,$(LIB_C)) $(patsubst src/%.S,$(1)/obj/%.o,$(LIB_S))

define CONFIG
$(1)/obj/%.o: src/%.c $(HDRS) Makefile
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) -c $$< -o $$@
	$(WEFT_TEXT) $$@
$(1)/obj/%.o: src/%.S Makefile
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) -c $$< -o $$@
	$(WEFT_TEXT) $$@
$(1)/libweft.a: $(call objs,$(1))
	@rm -f $$@
	ar rcs $$@ $$^
$(1)/tests/%: tests/%.c $(1)/libweft.a $(HDRS)
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) $$< -o $$@ $(1)/libweft.a $(3) $(LDLIBS)
$(1)/bench/%: bench/%.c $(1)/libweft.a $(HDRS)
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) $$< -o $$@ $(1)/libweft.a $(3) $(LDLIBS)
$(1)/examples/%: examples/%.c $(1)/libweft.a $(HDRS)
	@mkdir -p $$(dir $$@)
	$$(CC) $(2) $$< -o $$@ $(1)/libweft.a $(3) $(LDLIBS)
# A test that runs an example finds it beside itself, built the same way.
$(1)/tests/t_graceful_server: $(1)/examples/graceful_server
endef

$(eval $(call CONFIG,build/opt,$(OPT_CFLAGS),))
$(eval $(call CONFIG,build/asan,$(ASAN_CFLAGS),$(ASAN_LDFLAGS)))
$(eval $(call CONFIG,build/tsan,$(TSAN_CFLAGS),$(TSAN_LDFLAGS)))

OPT_TESTS  := $(patsubst tests/%.c,build/opt/tests/%,$(TEST_C))
ASAN_TESTS := $(patsubst tests/%.c,build/asan/tests/%,$(TEST_C))
TSAN_TESTS := $(patsubst tests/%.c,build/tsan/tests/%,$(TEST_C))
BENCHES    := $(patsubst bench/%.c,build/opt/bench/%,$(BENCH_C))
EXAMPLES   := $(patsubst examples/%.c,build/opt/examples/%,$(EX_C))
# Plugins the examples load (isolated_plugin loads plugin_demo.so).
PLUGINS    := $(patsubst examples/%.c,build/opt/examples/%.so,$(PLUGIN_C))

# The shared library exports only weft_* symbols, pinned by the version map.
build/opt/libweft.so.$(VERSION): $(call objs,build/opt) src/weft.map
	$(CC) -shared -Wl,-soname,libweft.so.$(SOVER) -Wl,--version-script=src/weft.map \
	    -Wl,-z,noexecstack -o $@ $(call objs,build/opt) $(LDLIBS)
build/opt/libweft.so: build/opt/libweft.so.$(VERSION)
	ln -sf libweft.so.$(VERSION) build/opt/libweft.so.$(SOVER)
	ln -sf libweft.so.$(VERSION) $@

all: lib $(OPT_TESTS) $(BENCHES) $(EXAMPLES) $(PLUGINS)

build/opt/examples/%.so: examples/%.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(OPT_CFLAGS) -shared $< -o $@
lib: build/opt/libweft.a build/opt/libweft.so

build/runner: tests/runner.c
	@mkdir -p build
	$(CC) -std=gnu11 -O2 -D_GNU_SOURCE $(WARN) $< -o $@

# Each test program runs in its own forked child, in its own process group,
# with a timeout; the runner prints one line per run and "N passed, N failed".
RUN_TESTS = build/runner -j $(TEST_JOBS) -t $(TEST_TIMEOUT)


check-opt: build/runner $(OPT_TESTS)
	$(RUN_TESTS) --label opt $(OPT_TESTS)

check-asan: build/runner $(ASAN_TESTS)
	$(RUN_TESTS) --label asan $(ASAN_TESTS)

# Under ThreadSanitizer every user thread is a TSan fiber: making one costs
# it milliseconds and about a megabyte, and it allows about 8,000 alive at
# once, so the stress tests run scaled down. They run twice, the second time
# with every wake-up sent to another worker (WEFT_DEBUG=migrate), where
# threads change kernel threads all the time. TSan runtimes older than
# LLVM 18.1 (gcc 12's, for one) die with "unexpected memory mapping" where
# the kernel randomizes mmap over more bits than they know (vm.mmap_rnd_bits
# above 28; some distributions set 32), so the tests run without address
# randomization wherever setarch can turn it off.
TSAN_TEST_SCALE ?= 0.01
TSAN_NO_ASLR = $(shell setarch $$(uname -m) -R true 2>/dev/null && echo setarch $$(uname -m) -R)

# A proc's fork child starts threads of its own (t_proc_*), which TSan
# forbids after a multithreaded fork unless die_after_fork=0.
TSAN_ENV = --env WEFT_TEST_SCALE=$(TSAN_TEST_SCALE) --env TSAN_OPTIONS=die_after_fork=0
TSAN_RUNS = --label tsan $(TSAN_ENV) $(TSAN_TESTS) \
	    --label tsan-migrate $(TSAN_ENV) --env WEFT_DEBUG=migrate $(TSAN_TESTS)

# One runner for everything, so the run ends with one "N passed, N failed".
check: build/runner $(OPT_TESTS) $(ASAN_TESTS) $(TSAN_TESTS)
	$(TSAN_NO_ASLR) $(RUN_TESTS) \
	    --label opt $(OPT_TESTS) \
	    --label asan $(ASAN_TESTS) \
	    --label migrate --env WEFT_DEBUG=migrate $(OPT_TESTS) \
	    $(TSAN_RUNS)

check-tsan: build/runner $(TSAN_TESTS)
	$(TSAN_NO_ASLR) $(RUN_TESTS) $(TSAN_RUNS)

bench: $(BENCHES) $(EXAMPLES)
	@bench/run.sh build/opt/bench

run: lib build/opt/examples/demo
	build/opt/examples/demo

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 build/opt/libweft.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 build/opt/libweft.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libweft.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libweft.so.$(SOVER)
	ln -sf libweft.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libweft.so
	install -m 644 include/weft.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' weft.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/weft.pc

# Formats the lines changed since FORMAT_BASE (default HEAD: the uncommitted
# ones) with .clang-format. Not the whole tree: clang-format 14 cannot keep
# the hand-aligned columns of the struct field comments (STYLE.md), and
# would move hundreds of them. git clang-format comes with clang-format.
FORMAT_BASE ?= HEAD
format:
	git clang-format --force --extensions c,h $(FORMAT_BASE)

clean:
	rm -rf build

# tk - one GNU Makefile for the library, the tools, the CUDA kernels and the tests.
#
#   make            build lib/libtk.a and bin/tk-* (with kernels/ when nvcc is found)
#   make test       install missing Debian packages, build, run every test
#   make install    bin/tk-* and man/ pages under PREFIX (/usr/local; DESTDIR as GNU's)
#   make uninstall  remove what make install put there
#   make demo       install, build, LoRA-tune SmolLM2-135M on Debian's fortunes (QLORA=1: QLoRA)
#   make demo-scratch  install, build, train a small GPT-2 from scratch on the same quotes
#   make parity     regenerate the reference fixtures with the Python stack and compare
#   make bench      benchmarks against the Python reference (never fail the tests)
#   make asan|ubsan run the tests under AddressSanitizer / UndefinedBehaviorSanitizer
#   make fuzz       coverage-guided fuzzing of every parser with libFuzzer (FUZZ_SECONDS each)
#   make mutate     plant each bug of tests/mutate/mutants and report the ones the suite misses
#   make mutate-formats  every byte flip, truncation and lie of each format tk reads (ASan+UBSan)
#   make crash      kill tk-train at every file-system call of longer runs, resume, compare
#   make test-gpu   CUDA-vs-CPU conformance suite and its Markdown table (needs a GPU)
#   make lint       cppcheck over the host C code, shellcheck over the GPU harness
#   make cuda-check / cuda12-check  kernels build for every arch, no spills; API within CUDA 12.0

comma    := ,
empty    :=
space    := $(empty) $(empty)

CC       ?= cc
OPT      ?= -O2
CFLAGS   ?= $(OPT) -g
WARN     := -Wall -Wextra -Wshadow -Wno-unused-parameter -Wstrict-prototypes
CPPFLAGS += -Ilib -D_GNU_SOURCE
ALLCFLAGS = -std=c11 $(WARN) -fopenmp -pthread -MMD -MP $(CPPFLAGS) $(CFLAGS) $(EXTRA_CFLAGS)
LDLIBS   += -lzstd -lcjson -lcsv -lpcre2-8 -lutf8proc -lm -ldl
LDFLAGS  += -fopenmp -pthread $(EXTRA_LDFLAGS)

BUILD    ?= build
BIN      ?= bin
SHARED   ?= $(abspath ../shared)
VENV     ?= .venv

LIB_SRC  := $(sort $(wildcard lib/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
LIBTK    := $(BUILD)/libtk.a
TOOLS    := $(patsubst tools/%.c,$(BIN)/%,$(sort $(wildcard tools/tk-*.c)))
UNIT_SRC := $(sort $(wildcard tests/unit/test-*.c))
UNITS    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
GPU_SRC  := $(sort $(wildcard tests/gpu/test-*.c))
GPUTESTS := $(GPU_SRC:tests/gpu/%.c=$(BUILD)/tests/gpu/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz-*.c))
FUZZERS  := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_SECONDS ?= 600

# CUDA: compiled and linked in when nvcc is found (NVCC= disables it).
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_ARCHS ?= 75 80 86 89 90
ifneq ($(strip $(NVCC)),)
CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CU_SRC     := $(sort $(wildcard kernels/*.cu))
CU_OBJ     := $(CU_SRC:%.cu=$(BUILD)/%.o)
NVCCFLAGS  ?= -O2 -g
CU_GENCODE := $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
              -gencode arch=compute_$(lastword $(CUDA_ARCHS)),code=compute_$(lastword $(CUDA_ARCHS))
CPPFLAGS   += -DTK_USE_CUDA -DTK_CUDA_ARCHS='"sm_$(subst $(space),$(space)sm_,$(CUDA_ARCHS))"' \
              -I$(CUDA_HOME)/include
LDLIBS     += -L$(CUDA_HOME)/lib64 -lcudart_static -ldl -lrt -lstdc++
CUDA_NOTE  := CUDA: $(NVCC) (sm_$(subst $(space),$(comma)sm_,$(CUDA_ARCHS)))
else
CU_OBJ     :=
CUDA_NOTE  := CUDA: nvcc not found, building the CPU tools only
endif

# MPI: data-parallel tk-train (mpirun -np N) when mpicc is found; MPICC=
# disables it.  Flags from OpenMPI's mpicc --showme; only tk-train needs
# libmpi (--as-needed keeps it off the other tools).
MPICC    ?= $(shell command -v mpicc 2>/dev/null)
ifneq ($(strip $(MPICC)),)
MPI_CFLAGS := $(shell $(MPICC) --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell $(MPICC) --showme:link 2>/dev/null)
endif
ifneq ($(strip $(MPI_LIBS)),)
CPPFLAGS += -DTK_USE_MPI $(MPI_CFLAGS)
LDLIBS   += -Wl,--as-needed $(MPI_LIBS) -Wl,--no-as-needed
MPI_NOTE := MPI: $(MPICC) (mpirun -np N tk-train trains data-parallel)
# NCCL (GPU all-reduce, lib/compute/dist.h) in a CUDA build that finds nccl.h;
# NCCL= disables it.
NCCL     ?= $(if $(strip $(NVCC)),$(firstword $(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h)))
ifneq ($(strip $(NCCL)),)
CPPFLAGS += -DTK_USE_NCCL
LDLIBS   += -Wl,--as-needed -lnccl -Wl,--no-as-needed
MPI_NOTE += + NCCL
endif
else ifneq ($(strip $(MPICC)),)
MPI_NOTE := MPI: $(MPICC) has no --showme (not OpenMPI), building single-process tk-train
else
MPI_NOTE := MPI: mpicc not found, building single-process tk-train
endif

.PHONY: FORCE all install uninstall test deps mutate mutate-formats crash demo demo-scratch parity bench asan ubsan fuzz test-gpu lint cuda-check cuda12-check clean cuda-note
.DELETE_ON_ERROR:
.SECONDARY:

# the benchmark programs are built with everything else, so that a change
# of a library call they make cannot leave make bench broken unnoticed
BENCHES  := $(BUILD)/bench-ops $(BUILD)/bench-qlora-mem $(BUILD)/bench-chat

all: cuda-note $(TOOLS) $(UNITS) $(GPUTESTS) $(FUZZERS) $(BENCHES)

cuda-note:
	@echo "$(CUDA_NOTE)"
	@echo "$(MPI_NOTE)"

# Build lines are short (CC lib/base/options.o, LD bin/tk-train), as the
# kernel's and git's are; V=1 prints the whole commands.  A failing
# command is still shown by the compiler's own message.
ifeq ($(V),1)
quiet =
else
quiet = @printf '  %-6s %s\n' '$(1)' '$@';
endif

# Objects are rebuilt when the compiler flags change (asan, ubsan, CUDA on/off).
FLAGS_STAMP := $(BUILD)/.flags
$(FLAGS_STAMP): FORCE
	@mkdir -p $(@D)
	@echo '$(CC) $(ALLCFLAGS) $(LDFLAGS) $(LDLIBS) $(NVCCFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(ALLCFLAGS) $(LDFLAGS) $(LDLIBS) $(NVCCFLAGS)' > $@
FORCE:

$(BUILD)/%.o: %.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call quiet,CC)$(CC) $(ALLCFLAGS) -c $< -o $@

# Warnings are errors; ptxas's register and spill report for every arch is
# kept beside the object (build/kernels/NAME.ptxas) for make cuda-check.
$(BUILD)/kernels/%.o: kernels/%.cu $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call quiet,NVCC)$(NVCC) $(NVCCFLAGS) $(CU_GENCODE) -Ilib -Ikernels -DTK_CUDA_LIBDIR='"$(CUDA_HOME)/lib64"' \
		-Werror all-warnings -Xcompiler -Wall -Xptxas -v -MMD -MP -c $< -o $@ \
		2> $(@:.o=.ptxas) || { cat $(@:.o=.ptxas) >&2; rm -f $@; exit 1; }
	@grep -v '^ptxas info\|^    [0-9]* bytes stack frame' $(@:.o=.ptxas) >&2 || true

$(LIBTK): $(LIB_OBJ) $(CU_OBJ)
	@rm -f $@
	$(call quiet,AR)ar rcs $@ $^

$(BIN)/tk-%: $(BUILD)/tools/tk-%.o $(LIBTK)
	@mkdir -p $(@D)
	$(call quiet,LD)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIBTK)
	@mkdir -p $(@D)
	$(call quiet,LD)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The CUDA conformance suite (tests/gpu): CUDA vs CPU, SKIP without a GPU.
$(BUILD)/tests/gpu/%: $(BUILD)/tests/gpu/%.o $(LIBTK)
	@mkdir -p $(@D)
	$(call quiet,LD)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/gpu/%.o: tests/gpu/%.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	$(call quiet,CC)$(CC) $(ALLCFLAGS) -Itests/unit -c $< -o $@

# Fuzz targets: with a seeded mutation driver for make test; with libFuzzer
# (clang) for make fuzz, FUZZ_SECONDS each, on a copy of the seed corpus.
$(BUILD)/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/driver.o $(LIBTK)
	@mkdir -p $(@D)
	$(call quiet,LD)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# make fuzz: the library is compiled once with clang for libFuzzer
# (build-fuzz/libtk.a), then each target (FUZZ_TARGETS="input peft" picks
# some) runs FUZZ_SECONDS on a copy of its seeds with its dictionary; the
# exec counts are printed and each run's log kept in build-fuzz/.
FUZZ_CFLAGS := -g -O1 -std=c11 -fopenmp -Ilib -D_GNU_SOURCE
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz-%.c,%,$(FUZZ_SRC))
fuzz: deps
	@command -v clang >/dev/null || { echo "make fuzz needs clang (apt-get install clang)"; exit 1; }
	@mkdir -p build-fuzz/lib
	@for f in $(LIB_SRC); do \
		o=build-fuzz/lib/$$(echo $${f#lib/} | tr / -).o; \
		[ $$o -nt $$f ] || clang $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined \
			-c $$f -o $$o 2>build-fuzz/clang.log || { cat build-fuzz/clang.log; exit 1; }; \
	done; rm -f build-fuzz/libtk.a; ar rcs build-fuzz/libtk.a build-fuzz/lib/*.o
	@for c in $(FUZZ_TARGETS); do \
		n=fuzz-$$c; \
		clang $(FUZZ_CFLAGS) -fsanitize=fuzzer,address,undefined tests/fuzz/$$n.c \
			build-fuzz/libtk.a -lzstd -lcjson -lcsv -lpcre2-8 -lutf8proc -lm -ldl \
			-o build-fuzz/$$n 2>build-fuzz/clang.log || { cat build-fuzz/clang.log; exit 1; }; \
		rm -rf build-fuzz/corpus-$$c; cp -r tests/fuzz/corpus/$$c build-fuzz/corpus-$$c; \
		echo "== $$n ($(FUZZ_SECONDS) s)"; \
		dict=; [ -f tests/fuzz/dict/$$c.dict ] && dict=-dict=tests/fuzz/dict/$$c.dict; \
		TK_ROOT=$(CURDIR) build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=65536 \
			$$dict -print_final_stats=1 build-fuzz/corpus-$$c >build-fuzz/$$n.log 2>&1; \
		rc=$$?; grep -E '^(#[0-9]+ *DONE|stat::number_of_executed_units)' build-fuzz/$$n.log; \
		[ $$rc -eq 0 ] || { tail -40 build-fuzz/$$n.log; exit 1; }; \
	done

# make install [PREFIX=/usr/local] [DESTDIR=stage]: the tools in
# $(bindir), the man pages in $(mandir)/manN, as GNU's coding standards and
# git's Makefile have it (DESTDIR is prepended to every path, for packagers
# and staged installs; prefix and PREFIX are the same).  make uninstall
# removes those files again, and leaves the directories.
PREFIX   ?= /usr/local
prefix   ?= $(PREFIX)
bindir   ?= $(prefix)/bin
mandir   ?= $(prefix)/share/man
INSTALL  ?= install
MAN_PAGES := $(sort $(wildcard man/*.[1-8]))
MAN_SECTIONS := $(sort $(subst .,,$(suffix $(MAN_PAGES))))

install: $(TOOLS)
	$(INSTALL) -d '$(DESTDIR)$(bindir)'
	$(INSTALL) -m 755 $(TOOLS) '$(DESTDIR)$(bindir)'
	@set -e; for s in $(MAN_SECTIONS); do \
		echo "$(INSTALL) -d '$(DESTDIR)$(mandir)/man'$$s"; \
		$(INSTALL) -d '$(DESTDIR)$(mandir)/man'$$s; \
		echo "$(INSTALL) -m 644 man/*.$$s '$(DESTDIR)$(mandir)/man'$$s"; \
		$(INSTALL) -m 644 man/*.$$s '$(DESTDIR)$(mandir)/man'$$s; \
	done

uninstall:
	rm -f $(patsubst $(BIN)/%,'$(DESTDIR)$(bindir)/%',$(TOOLS))
	rm -f $(foreach m,$(MAN_PAGES),'$(DESTDIR)$(mandir)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))')

# Missing Debian packages are installed (as root) or named (otherwise).
deps:
	@pipelines/install-deps

test: deps
	@$(MAKE) --no-print-directory all
	@TK_BUILD=$(BUILD) TK_BIN=$(BIN) TK_SHARED=$(SHARED) tests/run

# Mutation testing (not in CI: about a minute per mutant the suite kills
# early, a whole suite's run per survivor): MUTANTS="3 7" picks some.
mutate: deps
	@TK_SHARED=$(SHARED) tests/mutate/run $(MUTANTS)

# make mutate-formats: tests/mutate-formats, the full set of byte flips,
# truncations and structured lies for every format tk reads, through the
# tools built with AddressSanitizer + UBSan in build-mutate/ (a sample of
# it runs in make test as tests/cli/all/mutate-formats.sh).  MUTATE_ARGS
# adds options: --only FORMAT, --jobs N, --keep DIR.
mutate-formats: deps
	@$(MAKE) --no-print-directory BUILD=build-mutate BIN=build-mutate/bin NVCC= \
		EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" \
		EXTRA_LDFLAGS="-fsanitize=address,undefined" OPT=-O1 \
		$(patsubst $(BIN)/%,build-mutate/bin/%,$(TOOLS))
	@TK_BIN=build-mutate/bin tests/mutate-formats $(MUTATE_ARGS)

# Crash injection beyond make test's short LoRA run: full fine-tuning and
# LoRA, 10 steps, every renameat/unlinkat/mkdirat/fdatasync form as well.
crash: all
	@PATH=$(abspath $(BIN)):$$PATH TK_CRASH_STEPS=10 tests/crash/run lora full

# The same suite under the sanitizers, in separate build trees.
# oneDNN (the hw bf16 path, compute/bf16.c) is linked in, not only dlopened:
# GCC 12's LeakSanitizer crashes at exit ("Tracer caught signal 11") on the
# thread-local storage of a dlopened oneDNN that has run, and not on a
# linked one; dlopen then finds it loaded.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan BIN=build-asan/bin NVCC= \
		EXTRA_CFLAGS="-fsanitize=address -fno-omit-frame-pointer" \
		EXTRA_LDFLAGS="-fsanitize=address -Wl,--no-as-needed -ldnnl -Wl,--as-needed" \
		OPT=-O1 test
ubsan: deps
	@$(MAKE) --no-print-directory BUILD=build-ubsan BIN=build-ubsan/bin NVCC= \
		EXTRA_CFLAGS="-fsanitize=undefined -fno-sanitize-recover=all" \
		EXTRA_LDFLAGS="-fsanitize=undefined" OPT=-O1 test

test-gpu: all
	@TK_BUILD=$(BUILD) TK_BIN=$(BIN) tests/run-gpu

# Static checks of the host code: cppcheck over lib/ and tools/ (the
# findings judged harmless are listed with their reasons in
# tests/lint/cppcheck.supp), shellcheck over the GPU harness scripts.
lint:
	@pipelines/install-deps cppcheck shellcheck
	cppcheck -q -j$$(nproc) --std=c11 --enable=warning,portability,performance \
		--inline-suppr -D_GNU_SOURCE -DTK_LINT -DTK_USE_CUDA -DTK_USE_MPI -DTK_USE_NCCL -Ilib \
		--suppress=missingIncludeSystem --suppressions-list=tests/lint/cppcheck.supp \
		--error-exitcode=1 --template='{file}:{line}: {severity}: {message} [{id}]' \
		lib tools
	tests/lint/check-layers
	shellcheck -x tests/run-gpu tests/gpu/*.sh tests/lint/check-layers

# For CI without a GPU: the kernels compile warning-free for every arch in
# CUDA_ARCHS, no kernel spills registers (ptxas -v), and the GPU suite
# builds and says SKIP (it runs in full where a GPU is present).
cuda-check: cuda-note
ifneq ($(strip $(NVCC)),)
	@for o in $(CU_OBJ); do [ -f $${o%.o}.ptxas ] || rm -f $$o; done
	@$(MAKE) --no-print-directory $(CU_OBJ) $(GPUTESTS)
	@kernels/check-ptxas $(CU_OBJ:.o=.ptxas)
	@for t in $(GPUTESTS); do TK_ROOT=$(CURDIR) $$t || exit 1; done
else
	@echo "SKIP cuda-check: nvcc not found"
endif

# Every CUDA runtime/cuBLAS name the code uses exists in CUDA 12.0 (the
# headers from PyPI's 12.0 wheels, cached in build/cuda12.0); a skip when
# they cannot be downloaded.
cuda12-check:
	@kernels/check-cuda12; rc=$$?; [ $$rc -eq 0 ] || [ $$rc -eq 77 ]

# make demo [QLORA=1]: LoRA (QLoRA) on SmolLM2-135M-Instruct and Debian's
# fortunes; make demo-scratch: a small GPT-2 from scratch on the same quotes.
demo: deps
	@$(MAKE) --no-print-directory all
	@BIN=$(BIN) QLORA=$(QLORA) pipelines/demo

demo-scratch: deps
	@$(MAKE) --no-print-directory all
	@BIN=$(BIN) pipelines/demo-scratch

# The Python reference stack lives in a git-ignored virtual environment.
$(VENV)/.ok: tests/parity/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r tests/parity/requirements.txt
	@touch $@

parity: deps $(VENV)/.ok
	@$(MAKE) --no-print-directory all
	@TK_BIN=$(BIN) TK_SHARED=$(SHARED) PYTHON=$(VENV)/bin/python tests/parity/run

bench: deps $(VENV)/.ok
	@$(MAKE) --no-print-directory all
	@TK_BIN=$(BIN) TK_BUILD=$(BUILD) TK_SHARED=$(SHARED) PYTHON=$(VENV)/bin/python bench/run

$(BUILD)/bench-ops: $(BUILD)/bench/ops.o $(LIBTK)
	$(call quiet,LD)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/bench-qlora-mem: $(BUILD)/bench/qlora-mem.o $(LIBTK)
	$(call quiet,LD)$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/bench-chat: $(BUILD)/bench/chat.o $(LIBTK)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

clean:
	rm -rf $(BUILD) build-asan build-ubsan build-fuzz build-mutate $(BIN)

-include $(LIB_OBJ:.o=.d) $(CU_OBJ:.o=.d) $(TOOLS:$(BIN)/%=$(BUILD)/tools/%.d) \
	$(UNITS:$(BUILD)/tests/%=$(BUILD)/tests/unit/%.d) $(GPUTESTS:=.d) \
	$(FUZZERS:$(BUILD)/fuzz/%=$(BUILD)/tests/fuzz/%.d) $(BUILD)/tests/fuzz/driver.d


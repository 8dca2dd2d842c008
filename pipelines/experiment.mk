# pipelines/experiment.mk: a LoRA/QLoRA experiment as make targets.
#
#   make -f pipelines/experiment.mk MODEL=models/smol DATA=quotes.csv COLUMN=quote
#   make -f pipelines/experiment.mk ... LR=1e-4          # retrains; tokens and blocks stay
#   make -f pipelines/experiment.mk ... LRS="1e-4 2e-4"  # a sweep: OUT/lr-1e-4/, OUT/lr-2e-4/
#   make -f pipelines/experiment.mk ... gguf             # also merged/ and model.gguf
#
# Files (OUT defaults to experiment/, RUN to OUT/run):
#   OUT/docs.tks         tk-tokenize -t MODEL, COLUMN or TEMPLATE
#   OUT/blocks/          tk-pack --seq-len SEQ_LEN --eval-fraction EVAL_FRACTION
#   OUT/base-nf4/        tk-quantize (QLORA=1)
#   RUN/adapter/         tk-train --lora-r R ... (metrics.jsonl, TensorBoard events)
#   RUN/eval.json        eval_loss and eval_perplexity with the adapter
#   RUN/samples.txt      greedy continuations of PROMPTS (| between prompts)
#   RUN/loss.png         the loss curve (gnuplot)
#   RUN/merged/          tk-merge: base + adapter, a Hugging Face directory
#   RUN/model.gguf       tk-convert --outtype GGUF_TYPE, for llama.cpp and ollama
#   OUT/summary.txt      eval loss per run (make summary, and after a sweep)
#
# Each stage's variables are kept in a stamp (OUT/.vars/NAME, RUN/.vars/NAME)
# rewritten only when they change, so make redoes exactly the targets that a
# changed variable or a newer input invalidates, and nothing when nothing
# changed.  A failed stage stops make with the tool's message; tk-train
# works in RUN/adapter.tmp and renames it when it is done (a rerun after an
# interruption continues from its newest checkpoint), the other tools write
# whole files or none, and .DELETE_ON_ERROR removes a half-written file.
# A sweep varies training variables only (LR, R, ALPHA, EPOCHS, STEPS...):
# the runs share OUT's tokens, blocks and quantized base.

MODEL         ?=
DATA          ?=
COLUMN        ?= text
TEMPLATE      ?=
SEQ_LEN       ?= 256
EVAL_FRACTION ?= 0.05
SEED          ?= 42
QLORA         ?= 0
R             ?= 16
ALPHA         ?= 32
DROPOUT       ?= 0
TARGETS       ?=
LR            ?= 2e-4
EPOCHS        ?= 1
STEPS         ?= -1
BATCH         ?= 8
LOGGING_STEPS ?= 10
TRAIN_ARGS    ?=
PROMPTS       ?= The
SAMPLE_TOKENS ?= 32
GGUF_TYPE     ?= f16
OUT           ?= experiment
RUN           ?= $(OUT)/run
LRS           ?=
PIPELINES     := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
TK_BIN        ?= $(patsubst %/pipelines,%/bin,$(PIPELINES))

export PATH := $(TK_BIN):$(PATH)
SHELL := /bin/bash
.DELETE_ON_ERROR:
.SUFFIXES:
.PHONY: all gguf merged summary sweep clean

ifneq ($(strip $(LRS)),)
# A sweep: one sub-make per learning rate, each in its own run directory.
all gguf merged: sweep
sweep:
	@set -e; for lr in $(LRS); do \
		echo "== run LR=$$lr -> $(OUT)/lr-$$lr"; \
		$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) LRS= LR=$$lr \
			RUN=$(OUT)/lr-$$lr all $(filter-out all sweep,$(MAKECMDGOALS)); \
	done
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) LRS= summary
else
all: $(RUN)/eval.json $(RUN)/samples.txt $(if $(shell command -v gnuplot),$(RUN)/loss.png)
merged: $(RUN)/merged
gguf: $(RUN)/model.gguf
endif

# The variables are checked (and stamped) when a goal needs them.
NEED_VARS := $(filter-out clean summary,$(or $(MAKECMDGOALS),all))
ifneq ($(NEED_VARS),)
ifeq ($(wildcard $(MODEL)/config.json),)
$(error MODEL=$(MODEL): not a model directory (set MODEL=DIR))
endif
ifeq ($(wildcard $(DATA)),)
$(error DATA=$(DATA): no such file (set DATA=FILE.csv))
endif
endif

# vstamp FILE, TEXT: FILE holds TEXT, rewritten (new mtime) only when TEXT
# changes.  Under make -n or -q nothing is written: a changed TEXT names
# FILE.changed instead, a prerequisite that is always out of date.
DRYRUN := $(if $(findstring n,$(firstword -$(MAKEFLAGS)))$(findstring q,$(firstword -$(MAKEFLAGS))),1)
vstamp = $(shell mkdir -p $(dir $1) && if printf '%s\n' '$(subst ','\'',$2)' | cmp -s - $1; then echo $1; \
	elif [ -n "$(DRYRUN)" ]; then echo $1.changed; \
	else printf '%s\n' '$(subst ','\'',$2)' > $1 && echo $1; fi)
%.changed: ;

# has_ckpt DIR: a shell test, true when DIR holds a finished checkpoint-N.
has_ckpt = [ -n "$$(find $1 -maxdepth 1 -type d -regextype posix-extended -regex '.*/checkpoint-[0-9]+' -print -quit 2>/dev/null)" ]

ifeq ($(strip $(LRS))$(if $(NEED_VARS),,none),)
V_TOKENIZE := $(call vstamp,$(OUT)/.vars/tokenize,$(abspath $(MODEL)) $(abspath $(DATA)) $(if $(TEMPLATE),template $(TEMPLATE),column $(COLUMN)))
V_PACK     := $(call vstamp,$(OUT)/.vars/pack,$(SEQ_LEN) $(EVAL_FRACTION) $(SEED))
V_QUANT    := $(call vstamp,$(OUT)/.vars/quantize,$(abspath $(MODEL)) nf4 double-quant)
V_TRAIN    := $(call vstamp,$(RUN)/.vars/train,qlora=$(QLORA) r=$(R) alpha=$(ALPHA) dropout=$(DROPOUT) targets=$(TARGETS) lr=$(LR) epochs=$(EPOCHS) steps=$(STEPS) batch=$(BATCH) seed=$(SEED) logging=$(LOGGING_STEPS) $(TRAIN_ARGS))
V_SAMPLES  := $(call vstamp,$(RUN)/.vars/samples,$(PROMPTS) $(SAMPLE_TOKENS))
V_GGUF     := $(call vstamp,$(RUN)/.vars/gguf,$(GGUF_TYPE))
endif

BASE := $(if $(filter 1,$(QLORA)),$(OUT)/base-nf4,$(MODEL))
BASE_DEP := $(if $(filter 1,$(QLORA)),$(OUT)/base-nf4,$(MODEL)/config.json)
COLOPT = $(if $(TEMPLATE),--template '$(subst ','\'',$(TEMPLATE))',--column '$(COLUMN)')

$(OUT)/docs.tks: $(DATA) $(V_TOKENIZE)
	tk-tokenize -t $(MODEL) $(COLOPT) --force $(DATA) -o $@

$(OUT)/blocks: $(OUT)/docs.tks $(V_PACK)
	tk-pack --seq-len $(SEQ_LEN) --eval-fraction $(EVAL_FRACTION) --shuffle --seed $(SEED) \
		--force $< -o $@
	@touch $@

$(OUT)/base-nf4: $(MODEL)/config.json $(V_QUANT)
	tk-quantize -q $(MODEL) -o $@ --bnb-4bit-quant-type nf4 --bnb-4bit-use-double-quant --force
	@touch $@

# Training works in adapter.tmp; an interrupted run with the same variables
# continues from its newest checkpoint.
$(RUN)/adapter: $(OUT)/blocks $(BASE_DEP) $(V_TRAIN)
	@if [ -d $@.tmp ] && cmp -s $@.tmp.vars $(V_TRAIN) && $(call has_ckpt,$@.tmp); then \
		echo "experiment.mk: continuing $@.tmp from its newest checkpoint"; \
		again="--resume-from-checkpoint latest"; \
	else rm -rf $@.tmp; cp $(V_TRAIN) $@.tmp.vars; again=--force; fi; \
	cmd="tk-train --model $(BASE) --data $(OUT)/blocks --output-dir $@.tmp \
		--lora-r $(R) --lora-alpha $(ALPHA) --lora-dropout $(DROPOUT) \
		$(if $(TARGETS),--lora-target-modules $(TARGETS)) --learning-rate $(LR) \
		--num-train-epochs $(EPOCHS) --max-steps $(STEPS) --per-device-train-batch-size $(BATCH) \
		--seed $(SEED) --logging-steps $(LOGGING_STEPS) --eval-strategy steps \
		--save-strategy steps --save-steps $(LOGGING_STEPS) --save-total-limit 1 \
		--report-to tensorboard $(TRAIN_ARGS)"; \
	echo $$cmd $$again; \
	if ! $$cmd $$again > $@.tmp.json; then \
		rm -f $@.tmp.json; $(call has_ckpt,$@.tmp) || rm -rf $@.tmp $@.tmp.vars; exit 1; \
	fi
	@rm -rf $@ $(RUN)/train.json && mv $@.tmp $@ && mv $@.tmp.json $(RUN)/train.json && rm -f $@.tmp.vars

$(RUN)/eval.json: $(RUN)/adapter
	tk-train --eval-only --model $(BASE) --adapter $< --data $(OUT)/blocks > $@

$(RUN)/loss.png: $(RUN)/adapter
	$(PIPELINES)/plot-loss $</metrics.jsonl $@

$(RUN)/merged: $(RUN)/adapter
	tk-merge --model $(BASE) --adapter $< -o $@ --force
	@touch $@

$(RUN)/samples.txt: $(RUN)/adapter $(V_SAMPLES)
	@printf '%s\n' '$(subst ','\'',$(PROMPTS))' | tr '|' '\n' | while IFS= read -r p; do \
		printf '%s' "$$p"; tk-generate -q --model $(BASE) --adapter $< \
			--max-new-tokens $(SAMPLE_TOKENS) "$$p" \
			< /dev/null || exit; \
	done > $@
	@cat $@

$(RUN)/model.gguf: $(RUN)/merged $(V_GGUF)
	tk-convert $< -o $@ --outtype $(GGUF_TYPE) --force

# Eval loss per run: every OUT/*/eval.json.
summary:
	@{ printf '%-24s %10s %12s\n' run eval_loss perplexity; \
	for f in $(OUT)/*/eval.json; do [ -f $$f ] || continue; \
		printf '%-24s %10.4f %12.2f\n' $$(basename $$(dirname $$f)) \
			$$(sed -E -n 's/.*"eval_loss": *([-0-9.e+]+).*/\1/p' $$f) \
			$$(sed -E -n 's/.*"eval_perplexity": *([-0-9.e+]+).*/\1/p' $$f); \
	done; } > $(OUT)/summary.txt.tmp && mv $(OUT)/summary.txt.tmp $(OUT)/summary.txt
	@cat $(OUT)/summary.txt

clean:
	rm -rf $(OUT)

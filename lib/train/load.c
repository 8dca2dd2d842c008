/* load.c - what a training run starts from (train-int.h): the model (a
 * Hugging Face directory, a config to initialise, an adapter, a
 * checkpoint), the tokenizer its blocks must come from and the side files
 * that go with its outputs, the training and eval blocks, and the memory
 * plan that refuses what would not fit before it is allocated. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/afile.h"
#include "base/path.h"
#include "compute/dist.h"
#include "formats/bnb.h"
#include "formats/config.h"
#include "formats/hf-dir.h"
#include "model/peft.h"
#include "text/tokenizer.h"
#include "train/train-int.h"

/* The side files that go with the outputs (bits over tk_hf_side_files):
 * side_mask, or with -1 those side_dir has now; a --tokenizer directory
 * gives no generation_config.json. */
static unsigned side_want(const struct trainer *tr)
{
	if (!tr->side_dir[0])
		return 0;
	unsigned m = tr->side_mask == -1 ? tk_hf_side_present(tr->side_dir)
					 : (unsigned)tr->side_mask;
	if (tr->side_is_tok)
		m &= ~(1u << tk_hf_side_index("generation_config.json"));
	return m;
}

/* TK_E_FORMAT naming the first side file the run recorded when it started
 * (side_mask) that side_dir no longer has; 0 when it has them all. */
static int side_check(const struct trainer *tr, struct tk_diag *d)
{
	unsigned want = side_want(tr), lost = want ? want & ~tk_hf_side_present(tr->side_dir) : 0;
	for (int i = 0; lost && tk_hf_side_files[i]; i++)
		if (lost & 1u << i) {
			char p[PATH_LEN];
			tk_path_join(p, sizeof(p), tr->side_dir, tk_hf_side_files[i]);
			return tk_diag_set(d, TK_E_FORMAT, p, -1,
					   "missing: the run started from %s, which had it, and its "
					   "checkpoints and output take it from there (put it back)",
					   tr->side_dir);
		}
	return 0;
}

/* Copies the tokenizer and generation files next to a saved model. */
int train_copy_side_files(struct trainer *tr, const char *dir, struct tk_diag *d)
{
	char dst[PATH_LEN];
	if (tr->side_file[0]) {
		if (tk_path_join(dst, sizeof(dst), dir, "tokenizer.json"))
			return tk_diag_set(d, TK_E_INVAL, dir, -1, "path too long");
		return tk_afile_copy(tr->side_file, dst, d);
	}
	int rc = side_check(tr, d);
	if (rc || !tr->side_dir[0] || !strcmp(tr->side_dir, dir))
		return rc;
	return tk_hf_copy_side_files(tr->side_dir, dir, side_want(tr), d);
}

static int has_tokenizer(const char *dir)
{
	char p[PATH_LEN];
	return (!tk_path_join(p, sizeof(p), dir, "tokenizer.json") && tk_path_exists(p)) ||
	       (!tk_path_join(p, sizeof(p), dir, "vocab.json") && tk_path_exists(p));
}

/* An absolute path for p (as it is when realpath fails). */
static void absolute(char *p, size_t size)
{
	char buf[PATH_MAX];
	if (p[0] && realpath(p, buf) && strlen(buf) < size)
		snprintf(p, size, "%s", buf);
}

/* The tokenizer the blocks must come from (its fingerprint), and where the
 * side files come from: --tokenizer, else the model directory src (which
 * a resumed run replaces with the one its checkpoint recorded: the side
 * files the run started with, not the checkpoint's copies, which
 * --save-total-limit may have removed). */
static int load_tokenizer(struct trainer *tr, const char *src, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	const char *tok = o->tokenizer;
	int recorded = tr->src_recorded && !o->tokenizer;
	if (recorded) {
		src = tr->src_dir[0] ? tr->src_dir : NULL;
		if (tr->src_file[0])
			tok = tr->src_file;
	}
	if (!tok && src && has_tokenizer(src))
		tok = src;
	if (src)
		snprintf(tr->side_dir, sizeof(tr->side_dir), "%s", src);
	if (o->tokenizer) { /* its files, not the model's, go with the outputs */
		tr->side_is_tok = 1;
		if (tk_path_is_dir(o->tokenizer))
			snprintf(tr->side_dir, sizeof(tr->side_dir), "%s", o->tokenizer);
		else {
			tr->side_dir[0] = 0;
			snprintf(tr->side_file, sizeof(tr->side_file), "%s", o->tokenizer);
		}
	} else if (recorded && tr->src_file[0]) {
		tr->side_is_tok = 1;
		snprintf(tr->side_file, sizeof(tr->side_file), "%s", tr->src_file);
	}
	absolute(tr->side_dir, sizeof(tr->side_dir));
	absolute(tr->side_file, sizeof(tr->side_file));
	if (recorded) {
		tr->side_mask = tr->src_mask;
		int rc = o->eval_only ? 0 : side_check(tr, d);
		if (rc)
			return rc;
		if (tr->side_file[0] && !tk_path_exists(tr->side_file) && !o->eval_only)
			return tk_diag_set(d, TK_E_FORMAT, tr->side_file, -1,
					   "missing: the run started with this tokenizer, which its "
					   "checkpoints and output take (put it back)");
	} else { /* a checkpoint that recorded nothing: what it has (-1) */
		tr->side_mask = -1;
		if (!tr->resume_dir[0] || o->tokenizer) /* a new record: what side_dir has */
			tr->side_mask = (int)side_want(tr);
	}
	if (!tok)
		return 0;
	tk_tokenizer_t *t;
	int rc = tk_tokenizer_load(&t, tok, d);
	if (rc)
		return rc == TK_E_INVAL ? TK_E_FORMAT : rc;
	snprintf(tr->fingerprint, sizeof(tr->fingerprint), "%s", tk_tokenizer_fingerprint(t));
	tr->have_fp = 1;
	tk_tokenizer_free(t);
	return 0;
}

/* The memory plan from the configuration alone (tk_memplan_model), before
 * the model is made: a model far too large for the device (or the host) is
 * refused before anything of it is allocated.  c: the configuration, or
 * NULL to read dir's config.json; dir: the model directory (its
 * quantization_config), or NULL.  full: the base is trained (no
 * adapters). */
static int preplan(struct trainer *tr, const struct tk_model_config *c, const char *dir, int full,
		   struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	struct tk_model_config own;
	struct tk_bnb_config q = { 0 };
	int rc;
	if (!c && (rc = tk_config_load(&own, dir, d)))
		return rc;
	if (dir && (rc = tk_bnb_config_read(dir, &q, d)))
		return rc;
	return tk_memplan_check_model(c ? c : &own, full && !o->eval_only, q.bits != 0,
				       o->zero ? tk_dist_size() : 1, o->optim == TK_OPTIM_ADAMW_8BIT,
				       tr->be, tr->be->i->name, d);
}

static int load_base(struct trainer *tr, const char *src, int full, struct tk_diag *d)
{
	char p[PATH_LEN];
	int rc;
	if (tk_path_join(p, sizeof(p), src, "config.json"))
		return tk_diag_set(d, TK_E_INVAL, src, -1, "path too long");
	if (!tk_path_is_dir(src))
		return tk_diag_set(d, TK_E_FORMAT, src, -1,
				   "not a model directory (config.json + model.safetensors)");
	if (!tk_path_exists(p))
		return tk_diag_set(d, TK_E_FORMAT, src, -1,
				   "no config.json: not a Hugging Face model directory");
	if ((rc = preplan(tr, NULL, src, full, d)))
		return rc;
	return tk_model_load(&tr->m, src, tr->be, d);
}

static int same_num(double a, double b)
{
	return fabs(a - b) <= 1e-12 * fmax(fabs(a), fabs(b));
}

/* Whether every name of a[na] is in b[nb] and every one of b in a. */
static int same_names(const char (*a)[TK_LORA_NAME], int na, const char (*b)[TK_LORA_NAME],
		      int nb)
{
	for (int k = 0; k < 2; k++) {
		for (int i = 0; i < na; i++) {
			int j = 0;
			while (j < nb && strcmp(a[i], b[j]))
				j++;
			if (j == nb)
				return 0;
		}
		const char (*t)[TK_LORA_NAME] = a;
		int nt = na;
		a = b, na = nb, b = t, nb = nt;
	}
	return 1;
}

/* Resuming an adapter with --lora-* options: they must be the checkpoint's
 * adapter configuration (the one that resumes; a rerun of the first
 * command with --resume-from-checkpoint added, as the pipelines do, is
 * fine).  Target modules and modules to save count where given; all-linear
 * is every linear layer of the blocks.  TK_E_INVAL naming what differs. */
static int same_lora(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_lora_config *a = tr->o->lora, *b = &tr->m.lora->cfg;
	char what[96] = "";
	if (a->r != b->r)
		snprintf(what, sizeof(what), "r %d, not %d", b->r, a->r);
	else if (!same_num(a->alpha, b->alpha))
		snprintf(what, sizeof(what), "lora_alpha %g, not %g", b->alpha, a->alpha);
	else if (!same_num(a->dropout, b->dropout))
		snprintf(what, sizeof(what), "lora_dropout %g, not %g", b->dropout, a->dropout);
	else if (a->bias != b->bias)
		snprintf(what, sizeof(what), "bias %s, not %s", tk_lora_bias_name(b->bias),
			 tk_lora_bias_name(a->bias));
	else if (!a->use_rslora != !b->use_rslora)
		snprintf(what, sizeof(what), "use_rslora %s", b->use_rslora ? "true" : "false");
	else if (!a->use_dora != !b->use_dora)
		snprintf(what, sizeof(what), "use_dora %s", b->use_dora ? "true" : "false");
	else if (!a->ensure_weight_tying != !b->ensure_weight_tying)
		snprintf(what, sizeof(what), "ensure_weight_tying %s",
			 b->ensure_weight_tying ? "true" : "false");
	else if (a->n_targets == 1 && !strcmp(a->targets[0], "all-linear")) {
		/* model.c's linear modules: GPT-2's and Phi-3's are fused */
		int per = tr->m.cfg.arch == TK_ARCH_GPT2 || tr->m.cfg.fused ? 4 : 7;
		if (tr->m.lora->n_ad != per * tr->m.cfg.n_layer)
			snprintf(what, sizeof(what), "other target_modules than all-linear");
	} else if (a->n_targets && !same_names(a->targets, a->n_targets, b->targets, b->n_targets))
		snprintf(what, sizeof(what), "other target_modules");
	else if (a->n_modules_to_save && !same_names(a->modules_to_save, a->n_modules_to_save,
						     b->modules_to_save, b->n_modules_to_save))
		snprintf(what, sizeof(what), "other modules_to_save");
	if (!what[0])
		return 0;
	return tk_diag_set(d, TK_E_INVAL, tr->resume_dir, -1,
			   "its adapter has %s: the checkpoint's adapter_config.json is the "
			   "configuration that resumes (leave out the --lora-* options)", what);
}

/* Resuming an adapter: the base from --model, else the adapter's
 * base_model_name_or_path. */
static int load_adapter_ckpt(struct trainer *tr, const char **src, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	struct tk_lora_config c;
	int rc = tk_peft_read_config(tr->resume_dir, &c, d);
	if (rc)
		return rc;
	const char *base = o->model_dir ? o->model_dir : c.base_model;
	if (!base[0] || !tk_path_is_dir(base))
		return tk_diag_set(d, TK_E_INVAL, tr->resume_dir, -1,
				   "an adapter checkpoint: give its base model with --model DIR");
	if ((rc = load_base(tr, base, 0, d)))
		return rc;
	*src = base;
	return tk_peft_load(&tr->m, tr->resume_dir, d);
}

int train_load_model(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	int rc;
	const char *src = NULL;
	char p[PATH_LEN];
	if (tr->resume_dir[0] && !tk_path_join(p, sizeof(p), tr->resume_dir, "adapter_config.json") &&
	    tk_path_exists(p)) {
		rc = load_adapter_ckpt(tr, &src, d);
		if (!rc && o->lora)
			rc = same_lora(tr, d);
		if (!rc && has_tokenizer(tr->resume_dir))
			src = tr->resume_dir;
	} else if (tr->resume_dir[0] && o->lora) {
		return tk_diag_set(d, TK_E_INVAL, tr->resume_dir, -1,
				   "a full-model checkpoint: --lora-* options do not apply to it "
				   "(leave them out)");
	} else if (tr->resume_dir[0]) {
		src = tr->resume_dir;
		if (!(rc = preplan(tr, NULL, src, 1, d)))
			rc = tk_model_load(&tr->m, src, tr->be, d);
	} else if (o->model_dir) {
		src = o->model_dir;
		rc = load_base(tr, src, !o->adapter && !o->lora, d);
		if (!rc && o->adapter)
			rc = tk_peft_load(&tr->m, o->adapter, d);
		else if (!rc && o->lora) {
			struct tk_lora_config c = *o->lora;
			if (!c.base_model[0])
				snprintf(c.base_model, sizeof(c.base_model), "%s", o->model_dir);
			rc = tk_lora_attach(&tr->m, &c, o->seed, d);
		}
	} else {
		struct tk_model_config c;
		if ((rc = tk_config_load(&c, o->init_config, d)) ||
		    (rc = tk_data_init_vocab(&c, o->init_config, o->tokenizer, &tr->vocab_taken, d)))
			return rc;
		if ((rc = preplan(tr, &c, NULL, !o->lora, d)))
			return rc;
		rc = tk_model_init(&tr->m, &c, o->seed, tr->be, d);
		if (!rc && o->lora)
			rc = tk_lora_attach(&tr->m, o->lora, o->seed, d);
	}
	if (rc)
		return rc;
	if (tr->m.n_quantized && !tr->m.lora && !o->eval_only)
		return tk_diag_set(d, TK_E_INVAL, src, -1,
				   "a quantized model can only be trained with LoRA adapters "
				   "(add --lora-r 16, or dequantize it)");
	if (tr->m.lora) /* dropout masks: the run's seed, also for loaded adapters */
		tr->m.lora->seed = o->seed;
	tr->m.neftune_alpha = (float)o->neftune_alpha;
	tr->m.noise_seed = o->seed;
	tk_model_set_checkpointing(&tr->m, o->gradient_checkpointing);
	return load_tokenizer(tr, src, d);
}

int train_load_data(struct trainer *tr, struct tk_diag *d)
{
	const struct tk_train_opts *o = tr->o;
	char spill[PATH_LEN];
	const char *path = tr->data_path;
	int rc;
	if (!strcmp(path, "-") && !o->eval_only) {
		if (tk_path_join(spill, sizeof(spill), tr->out, SPILL_NAME))
			return tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
		rc = tk_data_load(&tr->train, "-", "train", 0, spill, d);
		tr->spilled = 1;
	} else {
		int dir = tk_path_is_dir(path);
		/* --eval-only: the eval split when the directory has one */
		const char *split = "train";
		if (o->eval_only && dir && !o->eval_data) {
			if ((rc = tk_data_load(&tr->eval, path, "eval", 1, NULL, d)))
				return rc;
			if (tr->eval.n_blocks)
				goto check;
			tk_data_free(&tr->eval);
		}
		rc = tk_data_load(o->eval_only && !o->eval_data ? &tr->eval : &tr->train, path,
				  split, 0, NULL, d);
		if (rc || o->eval_only)
			goto eval_data;
		if (dir && !o->eval_data)
			rc = tk_data_load(&tr->eval, path, "eval", 1, NULL, d);
	}
eval_data:
	if (!rc && o->eval_data)
		rc = tk_data_load(&tr->eval, o->eval_data, tk_data_eval_split(o->eval_data), 0,
				  NULL, d);
	if (rc)
		return rc;
check:;
	uint32_t vocab = (uint32_t)tr->m.cfg.vocab_size;
	const char *fp = tr->have_fp ? tr->fingerprint : NULL;
	if ((rc = tk_data_check(&tr->train, path, fp, vocab, d)) ||
	    (rc = tk_data_check(&tr->eval, o->eval_data ? o->eval_data : path, fp, vocab, d)))
		return rc;
	const struct tk_data *dt[2] = { &tr->train, &tr->eval };
	for (int i = 0; i < 2; i++)
		if (dt[i]->n_blocks && tr->m.cfg.pos == TK_POS_LEARNED &&
		    dt[i]->seq_len > (uint32_t)tr->m.cfg.max_pos)
			return tk_diag_set(d, TK_E_MISMATCH, i && o->eval_data ? o->eval_data : path,
					   -1, "blocks of %u tokens are longer than the model's %d "
					   "positions (tk-pack --seq-len %d)", dt[i]->seq_len,
					   tr->m.cfg.max_pos, tr->m.cfg.max_pos);
	return 0;
}

static struct tk_memplan_args mem_args(const struct trainer *tr)
{
	const struct tk_train_opts *o = tr->o;
	struct tk_memplan_args a = {
		.batch = o->batch, .seq_len = tr->T, .ckpt = o->gradient_checkpointing,
		.eval_batch = o->eval_strategy != TK_INTERVAL_NO && tr->eval.n_blocks
				      ? o->eval_batch : 0,
		.opt_shards = o->zero ? tk_dist_size() : 1,
		.prec = o->prec != TK_PREC_FP32 ? o->prec : tr->be->prec,
		.optim8 = o->optim == TK_OPTIM_ADAMW_8BIT,
	};
	return a;
}

/* The run's memory, planned before the gradients, the optimizer state and
 * the activations are allocated: TK_E_NOMEM (d says what would fit) when
 * it goes beyond the backend's limit. */
int train_mem_plan(struct trainer *tr, struct tk_diag *d)
{
	struct tk_memplan_args a = mem_args(tr);
	int rc = tk_memplan_check(&tr->m, tr->be, &a, tr->be->i->name, &tr->mplan, d);
	tr->planned = !rc;
	return rc;
}

/* An allocation failed although the plan fitted: the message says so,
 * with the memory held, what would need less, and the last checkpoint
 * (written atomically before, untouched by the failure). */
void train_oom_message(struct trainer *tr, struct tk_diag *d)
{
	struct tk_mem_info mi;
	char plan[32], use[32], lim[32], fix[96], ck[PATH_LEN + 64] = "";
	char why[sizeof(d->msg)];
	tk_backend_mem_info(tr->be, &mi);
	tk_memplan_fmt(plan, sizeof(plan), tr->mplan.total);
	tk_memplan_fmt(use, sizeof(use), mi.in_use);
	tk_memplan_fmt(lim, sizeof(lim), mi.limit);
	snprintf(why, sizeof(why), "%s", d->msg[0] ? d->msg : "out of memory");
	if (tr->o->batch > 1)
		snprintf(fix, sizeof(fix), "%suse --per-device-train-batch-size %d",
			 tr->o->gradient_checkpointing ? "" : "add --gradient-checkpointing or ",
			 tr->o->batch / 2);
	else
		snprintf(fix, sizeof(fix), "%s",
			 tr->o->gradient_checkpointing ? "pack shorter blocks"
						       : "add --gradient-checkpointing");
	if (tr->saved)
		snprintf(ck, sizeof(ck), "; the last checkpoint, %s, is intact", tr->last_ckpt);
	tk_diag_set(d, TK_E_NOMEM, tr->be->i->name, -1,
		    "step %ld: %s (%s in use%s%s, the plan was about %s): %s%s",
		    tr->global_step + 1, why, use, mi.limit ? " of " : "", mi.limit ? lim : "",
		    plan, fix, ck);
}

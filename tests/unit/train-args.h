/* train-args.h - what the tk-train unit tests share: reading a Trainer
 * fixture's train-args.json into struct tk_train_opts as tk-train --config
 * sets it (the fixtures of tests/parity/gen-train-fixture.py and
 * gen-lora-train-fixture.py), on the train fixture's model and blocks. */
#ifndef TT_TRAIN_ARGS_H
#define TT_TRAIN_ARGS_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>

#include "train/schedule.h"
#include "train/train.h"
#include "tt.h"

static inline cJSON *tt_read_json(const char *path)
{
	struct tk_buf b = { 0 };
	struct tk_diag d;
	if (tk_read_file(path, &b, &d))
		return NULL;
	cJSON *j = cJSON_Parse(b.data);
	tk_buf_free(&b);
	return j;
}

static inline double tt_num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* o from fixtures/ARGS (a TrainingArguments JSON), evaluating every
 * eval_steps, saving nothing, blocks in file order, on be, with the model
 * and blocks of fixtures/train; *hold keeps the JSON alive.  -1 when the
 * file cannot be read. */
static inline int tt_train_args(struct tk_train_opts *o, const char *args, struct tk_backend *be,
				cJSON **hold)
{
	static char model[1024], data[1024];
	tk_train_opts_init(o);
	cJSON *a = tt_read_json(tt_fixture(args));
	if (!a)
		return -1;
	o->max_steps = (long long)tt_num(a, "max_steps");
	o->batch = (int)tt_num(a, "per_device_train_batch_size");
	o->grad_accum = (int)tt_num(a, "gradient_accumulation_steps");
	o->lr = tt_num(a, "learning_rate");
	o->weight_decay = tt_num(a, "weight_decay");
	o->beta1 = tt_num(a, "adam_beta1");
	o->beta2 = tt_num(a, "adam_beta2");
	o->eps = tt_num(a, "adam_epsilon");
	o->max_grad_norm = tt_num(a, "max_grad_norm");
	if (tk_sched_parse(cJSON_GetStringValue(cJSON_GetObjectItem(a, "lr_scheduler_type")),
			   &o->sched, NULL)) {
		cJSON_Delete(a);
		return -1;
	}
	o->warmup = tt_num(a, "warmup_steps");
	o->logging_steps = tt_num(a, "logging_steps");
	o->eval_strategy = TK_INTERVAL_STEPS;
	o->eval_steps = tt_num(a, "eval_steps");
	o->eval_batch = (int)tt_num(a, "per_device_eval_batch_size");
	o->save_strategy = TK_INTERVAL_NO;
	o->seed = (uint64_t)tt_num(a, "seed");
	o->shuffle = 0;
	o->be = be;
	*hold = a;
	snprintf(model, sizeof(model), "%s", tt_fixture("train/model"));
	snprintf(data, sizeof(data), "%s", tt_fixture("train/blocks"));
	o->model_dir = model;
	o->data = data;
	return 0;
}

#endif

/* peft.h - PEFT adapter directories: adapter_config.json +
 * adapter_model.safetensors, as peft's save_pretrained writes them and
 * PeftModel.from_pretrained reads them.
 *
 * Keys: "base_model.model." + module path + ".lora_A.weight" ([r, in]) and
 * ".lora_B.weight" ([out, r]), as peft saves the default adapter (no
 * adapter name in the key), and with use_dora ".lora_magnitude_vector"
 * ([out], no ".weight": get_peft_model_state_dict drops it); modules_to_save tensors under the base model's
 * tensor names prefixed with "base_model.model." (peft's layout for
 * modules_to_save).  Biases trained per `bias` are saved under their base
 * names with the same prefix.
 */
#ifndef TK_PEFT_H
#define TK_PEFT_H

#include "model/lora.h"
#include "formats/safetensors.h"
#include "base/tk.h"

struct tk_model;

/* Reads dir/adapter_config.json into c (use_dora included).  peft_type
 * other than LORA (IA3, LOHA, ADALORA...), a task_type other than CAUSAL_LM, or
 * options tk does not implement (layers_to_transform, rank_pattern or
 * alpha_pattern that are not empty, init_lora_weights other than
 * true/false/gaussian...) are TK_E_UNSUPPORTED naming the key; so is any
 * key tk does not know whose value is not null, false or empty (a newer
 * peft's option that is on).  Malformed values (r <= 0, lora_alpha <= 0,
 * a bias that is none of none/all/lora_only...) are TK_E_FORMAT.  A
 * target_modules list longer than TK_LORA_MAX_TARGETS (peft writes
 * "all-linear" as the list of every module path) is read as the distinct
 * last components of its entries; tk_peft_load checks that they select
 * exactly the listed modules. */
int tk_peft_read_config(const char *dir, struct tk_lora_config *c, struct tk_diag *d);

/* Loads the adapter in dir onto m (which has none): reads the config,
 * tk_lora_attach, then every lora_A/lora_B (F32/F16/BF16), DoRA
 * magnitude and saved module; a magnitude under a config without use_dora,
 * or a DoRA config without one, is TK_E_FORMAT.  A module the model does not have, or a shape that differs from
 * the model's, is TK_E_MISMATCH naming the module and both shapes ("was
 * this adapter trained on another base model?"). */
int tk_peft_load(struct tk_model *m, const char *dir, struct tk_diag *d);

/* Writes m's adapter to dir (keys as above; "all-linear" written as the
 * list of adapted module paths, as peft does; peft_version "0.21.0", the
 * layout followed) (created if needed; both files atomically):
 * adapter_config.json with peft's keys and adapter_model.safetensors (F32).
 * Without force, existing files are TK_E_EXISTS and nothing is written. */
int tk_peft_save(const struct tk_model *m, const char *dir, int force, struct tk_diag *d);

/* tk-merge: a base model and adapters merged into a model directory. */
struct tk_merge_adapter {
	const char *dir;
	double weight;            /* 1: peft's merge_and_unload */
};

struct tk_merge_opts {
	const char *base;         /* model directory (fp or bitsandbytes 4-/8-bit) */
	const struct tk_merge_adapter *ad;
	int n_ad;                 /* >= 1 */
	const char *out;
	enum tk_dtype dtype;      /* TK_DT_F32, F16, BF16; TK_DT_COUNT: the base's
				     torch_dtype (float32 when it has none) */
	int requantize;           /* 0, or 4: NF4 with double quantization */
	int force;
	int threads;              /* backend threads, 0: all */
	struct tk_backend *be;    /* the device to merge on (the caller's, left
				     started); NULL: a CPU backend of threads */
};

/* Sets peft's merge_and_unload defaults: the output in the base's
 * torch_dtype (dtype TK_DT_COUNT), not requantized, all threads, the
 * CPU; no base, adapters or output yet. */
void tk_peft_merge_opts_init(struct tk_merge_opts *o);

struct tk_merge_info {
	int quantized;            /* the base had quantized tensors (dequantized) */
	int n_modules;            /* adapted modules merged, all adapters */
	enum tk_dtype dtype;      /* what was written */
};

/* Loads o->base, then for each adapter in turn tk_peft_load and
 * tk_lora_merge(weight), and writes the merged model to o->out
 * (tk_model_save_dtype) with the base's tokenizer and generation files;
 * with requantize, the merged model is quantized (tk_bnb_quantize_dir)
 * and that is written instead.  The output directory appears whole or not
 * at all; without force an existing one is TK_E_EXISTS. */
int tk_peft_merge_dir(const struct tk_merge_opts *o, struct tk_merge_info *info,
		      struct tk_diag *d);

#endif

/* tk-merge - PEFT LoRA adapters merged into their base model, written as a
 * Hugging Face model directory.  The work is in lib/model/peft.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/cli.h"
#include "model/peft.h"

static const char *const usage[] = {
	"tk-merge --model DIR --adapter DIR[:WEIGHT] [--adapter DIR[:WEIGHT]...] -o DIR "
	"[OPTIONS]",
	NULL,
};

static const char about[] =
	"Merges PEFT LoRA adapters (adapter_config.json + adapter_model.safetensors, from "
	"tk-train or peft) into the base model they were trained on, as peft's "
	"merge_and_unload() does: W += weight * scale * B A, scale = lora_alpha / r (or "
	"lora_alpha / sqrt(r) with use_rslora), transposed for GPT-2's Conv1D; modules_to_save "
	"and trained biases replace the base's. A DoRA adapter (use_dora) is merged as peft "
	"merges it: each row of W + scale B A times its magnitude over the row's norm. Several "
	"adapters are merged one after the "
	"other, each with its WEIGHT (default 1). A bitsandbytes 4-bit or 8-bit base is "
	"dequantized and the merged model written in floating point, unless --requantize "
	"asks for NF4 again. The output is a model directory that transformers and tk load, "
	"with the base's tokenizer and generation files.";

/* The tool's own options; the rest go straight into mo (main sets its
 * defaults with tk_peft_merge_opts_init before parsing). */
static struct {
	const char *device;
	struct tk_strlist adapters;
	int quiet;
} o;

static struct tk_merge_opts mo;

/* torch_dtype words */
static const struct tk_opt_choice dtypes[] = {
	{ "float32", TK_DT_F32 }, { "float16", TK_DT_F16 }, { "bfloat16", TK_DT_BF16 },
	{ NULL, 0 },
};
static const struct tk_opt_choice requantize[] = { { "nf4", 4 }, { NULL, 0 } };

static const struct tk_opt opts[] = {
	TK_OPT_STR('m', "model", &mo.base, "DIR",
		   "the base model directory, or a GGUF file (required)"),
	TK_OPT_LIST('a', "adapter", &o.adapters, "DIR[:WEIGHT]",
		    "a PEFT adapter directory, with an optional weight (default 1); repeatable, "
		    "merged in the order given (at least one)"),
	TK_OPT_STR('o', "output", &mo.out, "DIR", "the model directory to write (required)", .path = 1),
	TK_OPT_CHOICE(0, "dtype", &mo.dtype, dtypes,
		      "dtype of the written weights (default: the base's torch_dtype, "
		      "float32 when it has none)"),
	TK_OPT_CHOICE(0, "requantize", &mo.requantize, requantize,
		      "quantize the merged model again (NF4, double quantization, blocks of "
		      "64) instead of writing it in floating point"),
	TK_OPT_STR(0, "device", &o.device, "auto|cpu|cuda[:N]",
		   "where to compute the merge: auto takes a CUDA GPU when there is one "
		   "(unverified), else the CPU (auto)"),
	TK_OPT_INT32('t', "threads", &mo.threads, "N", 0, 4096, "CPU threads (0: all)"),
	TK_OPT_CPU_KERNEL(),
	TK_OPT_BOOL('f', "force", &mo.force, "replace the output if it exists"),
	TK_OPT_BOOL('q', "quiet", &o.quiet, "no summary on stderr"),
	TK_OPT_HELP(),
	TK_OPT_END,
};

/* "DIR" or "DIR:WEIGHT" (the text after the last ':' when it is a number). */
static int parse_adapter(const char *s, struct tk_merge_adapter *a, char **hold)
{
	const char *c = strrchr(s, ':');
	double w;

	a->dir = s;
	a->weight = 1;
	if (!c || tk_options_parse_double(c + 1, -1e6, 1e6, &w))
		return c && c[1] && strspn(c + 1, "0123456789.-+eE") == strlen(c + 1) ? -1 : 0;
	if (!(*hold = strndup(s, (size_t)(c - s))))
		return -1;
	a->dir = *hold;
	a->weight = w;
	return 0;
}

static const char *dtype_name(enum tk_dtype t)
{
	const char *w = tk_options_choice_word(dtypes, (int)t);
	return w ? w : "float32";
}

int main(int argc, char **argv)
{
	int npos, exit_now, rc;
	struct tk_diag d;
	struct tk_merge_info info;
	tk_cli_init(argv[0]);
	tk_peft_merge_opts_init(&mo);
	int ec = tk_cli_parse(argc, argv, opts, usage, about, &npos, &exit_now);
	if (exit_now)
		return ec;
	if (npos)
		return tk_cli_usage_error("unexpected argument '%s'", argv[0]);
	if (!mo.base)
		return tk_cli_usage_error("--model is required");
	if (!o.adapters.n)
		return tk_cli_usage_error("--adapter is required");
	if (!mo.out)
		return tk_cli_usage_error("-o/--output is required");

	struct tk_merge_adapter *ad = calloc((size_t)o.adapters.n, sizeof(*ad));
	char **hold = calloc((size_t)o.adapters.n, sizeof(*hold));
	rc = !ad || !hold ? tk_cli_error("out of memory") : 0;
	for (int i = 0; !rc && i < o.adapters.n; i++)
		if (parse_adapter(o.adapters.v[i], &ad[i], &hold[i]))
			rc = tk_cli_usage_error("--adapter %s: bad weight after ':'",
						o.adapters.v[i]);
	if (rc)
		goto out;

	struct tk_backend be = { 0 };
	if ((rc = tk_cli_backend(&be, o.device, mo.threads, o.quiet, &d))) {
		rc = tk_cli_fail(rc, &d);
		goto out;
	}
	if ((rc = tk_cli_model_gguf(&mo.base, o.quiet, &d))) {
		rc = tk_cli_fail(rc, &d);
		tk_backend_free(&be);
		goto out;
	}
	mo.ad = ad;
	mo.n_ad = o.adapters.n;
	mo.be = &be;
	double t0 = tk_now();
	rc = tk_peft_merge_dir(&mo, &info, &d);
	if (rc == TK_E_EXISTS && !strcmp(d.path, mo.out))
		rc = tk_cli_error("%s: already exists (use --force to replace it)", mo.out);
	else if (rc)
		rc = tk_cli_fail(rc, &d);
	else if (info.quantized)
		fprintf(stderr, "%s: %s: the quantized base was dequantized for the merge; %s%s\n",
			tk_prog, mo.base, mo.requantize ? "the merged model is quantized again "
			"(NF4), which loses accuracy" : "the merged model is written in ",
			mo.requantize ? "" : dtype_name(info.dtype));
	if (!rc && !o.quiet)
		fprintf(stderr, "%s: %s: %d adapter%s, %d modules merged, %s in %.2f s\n", tk_prog,
			mo.out, o.adapters.n, o.adapters.n == 1 ? "" : "s", info.n_modules,
			mo.requantize ? "nf4" : dtype_name(info.dtype), tk_now() - t0);
	tk_backend_free(&be);
out:
	for (int i = 0; hold && i < o.adapters.n; i++)
		free(hold[i]);
	free(hold);
	free(ad);
	return rc;
}

/* tk-quantize - a Hugging Face model directory to the 4-bit (NF4, FP4) or
 * 8-bit layout that transformers + bitsandbytes save.  The work is in
 * lib/formats/bnb.c. */
#include <string.h>

#include "formats/bnb.h"
#include "base/path.h"
#include "jobs/cli.h"
#include "model/model.h"

static const char *const usage[] = {
	"tk-quantize DIR -o OUT [--bnb-4bit-quant-type nf4|fp4] [--bnb-4bit-use-double-quant] "
	"[--blocksize N]",
	"tk-quantize DIR -o OUT --load-in-8bit",
	NULL,
};

static const char about[] =
	"Quantizes the weights of every linear layer of a model directory as "
	"transformers' BitsAndBytesConfig + save_pretrained would: 4-bit NF4 or FP4 "
	"blocks (with --bnb-4bit-use-double-quant, their absmax quantized again to 8 "
	"bits), or LLM.int8 rows with --load-in-8bit. Embeddings, norms and lm_head stay "
	"as they are. OUT loads with AutoModelForCausalLM.from_pretrained (bitsandbytes "
	"installed) and is the base tk-train takes for QLoRA.";

/* The tool's own options; the rest go straight into bo. */
static struct {
	const char *output;
	const char *compute_dtype; /* the word given */
	int compute_dtype_index;   /* of compute_dtypes: bo's, or the one given */
	int int8, force, quiet;
	int four_bit; /* a 4-bit-only option was given */
	int quant_type_given;
} o;

static const struct tk_opt_choice compute_dtypes[] = {
	{ "float32", 0 }, { "float16", 1 }, { "bfloat16", 2 }, { NULL, 0 },
};

static struct tk_bnb_opts bo;

static const struct tk_opt opts[] = {
	TK_OPT_STR('o', "output", &o.output, "OUT", "the directory to write (required)", .path = 1),
	TK_OPT_CHOICE(0, "bnb-4bit-quant-type", &bo.type, tk_q4_types,
		      "4-bit data type", .given = &o.quant_type_given),
	TK_OPT_BOOL(0, "bnb-4bit-use-double-quant", &bo.double_quant,
		    "quantize the block absmax values again (8-bit, blocks of 256)",
		    .given = &o.four_bit),
	TK_OPT_CHOICE(0, "bnb-4bit-compute-dtype", &o.compute_dtype_index, compute_dtypes,
		      "compute dtype recorded in quantization_config, by default as "
		      "transformers records it", .word = &o.compute_dtype),
	TK_OPT_SIZE(0, "blocksize", &bo.blocksize, "N", 32, 4096,
		    "values per 4-bit block: a power of two from 32 to 4096 (transformers "
		    "uses only the default)", .given = &o.four_bit),
	TK_OPT_BOOL(0, "load-in-8bit", &o.int8, "int8 rows (weight + SCB) instead of 4-bit"),
	TK_OPT_BOOL('f', "force", &o.force, "replace OUT if it exists"),
	TK_OPT_BOOL('q', "quiet", &o.quiet, "no progress or summary on stderr"),
	TK_OPT_HELP(),
	TK_OPT_END,
};

struct prog {
	double t0;
	uint64_t total;
	struct tk_status st; /* paced as every tool's progress (TK_PROGRESS) */
};

/* A report of the tensor being quantized, paced by jobs/cli.h's status
 * line: every 10 s or 2% of the input in a log or a notebook cell, a line
 * redrawn in place in a terminal; none for a run shorter than a second. */
static void progress(void *arg, const char *name, uint64_t done, uint64_t total)
{
	struct prog *p = arg;

	if (!name) {
		p->total = total;
		return;
	}
	double frac = total ? (double)done / (double)total : -1;
	if (!tk_status_due(&p->st, frac))
		return;
	double el = tk_now() - p->t0;
	tk_status_show(&p->st, frac, "%s (%.2f/%.2f GB, %.2f GB/s)", name, done / 1e9, total / 1e9,
		       el > 0 ? done / 1e9 / el : 0.0);
}

int main(int argc, char **argv)
{
	int npos, exit_now, rc;
	struct tk_diag d;
	struct prog pg = { 0 };

	tk_cli_init(argv[0]);
	tk_bnb_opts_init(&bo);
	for (const struct tk_opt_choice *c = compute_dtypes; c->word; c++)
		if (!strcmp(c->word, bo.compute_dtype)) /* the default --help shows */
			o.compute_dtype_index = c->value;
	int ec = tk_cli_parse(argc, argv, opts, usage, about, &npos, &exit_now);
	if (exit_now)
		return ec;
	if (npos != 1)
		return tk_cli_usage_error(npos ? "give one input directory" : "no input directory given");
	if (!o.output)
		return tk_cli_usage_error("-o/--output is required");
	if (o.int8 && o.four_bit)
		return tk_cli_usage_error("--load-in-8bit takes no 4-bit options "
					  "(--bnb-4bit-use-double-quant, --blocksize)");
	if (bo.blocksize & (bo.blocksize - 1))
		return tk_cli_usage_error("--blocksize %zu is not a power of two", bo.blocksize);
	if (o.int8) {
		bo.bits = 8;
		if (!o.quant_type_given) /* what BitsAndBytesConfig records by default */
			bo.type = TK_Q4_FP4;
	}
	if (o.compute_dtype)
		snprintf(bo.compute_dtype, sizeof(bo.compute_dtype), "%s", o.compute_dtype);
	if (tk_bnb_check_opts(&bo, &d))
		return tk_cli_usage_error("%s", d.msg);
	/* what tk-train and tk-generate will load: a model whose tensors do
	 * not fit its config.json is refused, as from_pretrained refuses it,
	 * not written out */
	bo.check = tk_model_check_dir;
	/* --force on a directory holding the input: a usage error, as in
	 * tk-convert and tk-pack */
	if (o.force && (rc = tk_path_check_outside(argv[0], o.output, &d)))
		return tk_cli_fail(rc, &d);
	bo.progress = o.quiet ? NULL : progress;
	bo.progress_arg = &pg;
	pg.t0 = tk_now();
	tk_status_init(&pg.st, !o.quiet);
	rc = tk_bnb_quantize_dir(argv[0], o.output, &bo, o.force, &d);
	tk_status_clear(&pg.st);
	if (rc == TK_E_EXISTS)
		return tk_cli_error("%s: already exists (use --force to replace it)", o.output);
	if (rc) {
		tk_cli_fail(rc, &d); /* the options were checked: a data failure */
		return TK_EXIT_FAIL;
	}
	if (!o.quiet) {
		double el = tk_now() - pg.t0;

		fprintf(stderr, "%s: %s: %s%s, %.1f MB in %.2f s (%.2f GB/s)\n", tk_prog, o.output,
			o.int8 ? "int8" : tk_q4_type_name(bo.type),
			bo.double_quant ? " + double quant" : "", pg.total / 1e6, el,
			el > 0 ? pg.total / 1e9 / el : 0.0);
	}
	return TK_EXIT_OK;
}

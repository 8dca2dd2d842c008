/* tk-convert - a llama.cpp GGUF model to a Hugging Face model directory,
 * and a model directory to a GGUF file.  The work is in lib/jobs/convert.c. */
#include <sys/stat.h>

#include "jobs/cli.h"
#include "jobs/convert.h"
#include "formats/gguf.h"

static const char *const usage[] = {
	"tk-convert MODEL.gguf -o DIR [OPTIONS]",
	"tk-convert DIR -o MODEL.gguf [OPTIONS]",
	NULL,
};

static const char about[] =
	"Imports a GGUF model (llama.cpp, ollama) as a Hugging Face model directory: "
	"config.json, model.safetensors (every tensor dequantized), tokenizer.json and "
	"tokenizer_config.json. Architectures: gpt2, llama (Llama, Mistral, SmolLM2, "
	"TinyLlama), qwen2, qwen3, phi3, gemma2, gemma3 (Gemma 3's text model). Given a model "
	"directory instead, exports it as a GGUF v3 file "
	"for llama.cpp and ollama: weights in --outtype (f32, f16, bf16, q8_0 or q4_0), "
	"hyperparameters and the tokenizer.json vocabulary as llama.cpp's converter writes them.";

/* The options go straight into eo, whose defaults main sets
 * (tk_convert_export_opts_init); an import takes its output, outtype and
 * force. */
static struct tk_convert_export_opts eo;
static int quiet;

static const struct tk_opt opts[] = {
	TK_OPT_STR('o', "output", &eo.output, "DIR|FILE", "the model directory or GGUF file to "
		   "write (required)", .path = 1),
	TK_OPT_CHOICE(0, "outtype", &eo.outtype, tk_convert_outtypes,
		      "dtype of the written weights (f32: the values exactly); q8_0 "
		      "and q4_0 for export only"),
	TK_OPT_STR(0, "name", &eo.name, "NAME", "export: general.name (default: DIR's base name)"),
	TK_OPT_BOOL('f', "force", &eo.force, "replace the output if it exists"),
	TK_OPT_BOOL('q', "quiet", &quiet, "no summary on stderr"),
	TK_OPT_HELP(),
	TK_OPT_END,
};

static int export(const char *dir)
{
	struct tk_convert_result r;
	struct tk_diag d;
	double t0 = tk_now();
	eo.input = dir;
	int rc = tk_convert_export(&eo, &r, &d);
	if (rc == TK_E_EXISTS)
		return tk_cli_error("%s: already exists (use --force to replace it)", eo.output);
	if (rc)
		return tk_cli_fail(rc, &d);
	if (!quiet) {
		fprintf(stderr, "%s: %s: %d tensors, %llu parameters (%s) in %.2f s\n", tk_prog,
			r.arch, r.n_tensors, (unsigned long long)r.n_params,
			tk_options_choice_word(tk_convert_outtypes, eo.outtype), tk_now() - t0);
		if (!r.tokenizer)
			fprintf(stderr, "%s: warning: %s has no tokenizer.json: the GGUF file has no "
				"vocabulary, and llama.cpp needs one to run it\n", tk_prog, dir);
	}
	return TK_EXIT_OK;
}

int main(int argc, char **argv)
{
	int npos, exit_now;
	struct tk_diag d;
	tk_cli_init(argv[0]);
	tk_convert_export_opts_init(&eo);
	int ec = tk_cli_parse(argc, argv, opts, usage, about, &npos, &exit_now);
	if (exit_now)
		return ec;
	if (npos != 1)
		return tk_cli_usage_error(npos ? "give one input file" : "no input file given");
	if (!eo.output)
		return tk_cli_usage_error("-o/--output is required");

	struct stat st;
	if (!stat(argv[0], &st) && S_ISDIR(st.st_mode))
		return export(argv[0]);
	if (eo.outtype == TK_GGML_Q8_0 || eo.outtype == TK_GGML_Q4_0)
		return tk_cli_usage_error("--outtype q8_0 and q4_0 are for export (a directory "
					  "input) only");

	struct tk_convert_opts co = {
		.input = argv[0],
		.output = eo.output,
		.outtype = eo.outtype == TK_GGML_F16 ? TK_DT_F16
			   : eo.outtype == TK_GGML_BF16 ? TK_DT_BF16 : TK_DT_F32,
		.force = eo.force,
	};
	struct tk_convert_result r;
	double t0 = tk_now();
	int rc = tk_convert_gguf(&co, &r, &d);
	if (rc == TK_E_EXISTS) {
		return tk_cli_error("%s: already exists (use --force to replace it)", eo.output);
	}
	if (rc)
		return tk_cli_fail(rc, &d);
	if (!quiet) {
		fprintf(stderr, "%s: %s: %d tensors, %llu parameters (%s) in %.2f s\n", tk_prog,
			r.arch, r.n_tensors, (unsigned long long)r.n_params,
			tk_dtype_name(co.outtype), tk_now() - t0);
		if (!r.tokenizer)
			fprintf(stderr, "%s: warning: %s has no tokenizer.ggml vocabulary: no "
				"tokenizer files written\n", tk_prog, co.input);
	}
	return TK_EXIT_OK;
}

/* fuzz-jinja.c - arbitrary bytes as a chat template (templates come from
 * the Hub, so they are untrusted input): compiling gives a template or an
 * error with a message; rendering one over a conversation gives text (NUL-
 * terminated, its {% generation %} spans inside it, in order) or an error
 * with a message, within the step and size limits, never a crash. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "text/jinja.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char vars_json[] =
	"{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
	" {\"role\": \"user\", \"content\": \"Hi \\u00fc\"},"
	" {\"role\": \"assistant\", \"content\": \" Hello. \", \"tool_calls\": [{\"type\": \"function\","
	" \"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1.5, \"b\": [true, null]}}}]},"
	" {\"role\": \"tool\", \"content\": \"{}\"}],"
	" \"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}],"
	" \"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
	" \"enable_thinking\": false}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static cJSON *vars;
	static const struct tk_jinja_opts pinned = { .pin_now = 1, .now = 1767323045 };
	struct tk_diag d = { 0 };
	tk_jinja_t *t = NULL;

	if (!vars && !(vars = cJSON_Parse(vars_json)))
		abort();
	if (tk_jinja_parse(&t, (const char *)data, size, &d)) {
		if (!d.msg[0] || t)
			abort(); /* an error without a message, or a template */
		return 0;
	}
	struct tk_buf out = { 0 };
	size_t *spans = NULL;
	int n = -1;
	int rc = tk_jinja_render(t, vars, &pinned, &out, &spans, &n, &d);
	if (rc) {
		if (!d.msg[0])
			abort();
	} else {
		if (!out.data || out.data[out.len] != 0 || n < 0 || (n && !spans))
			abort();
		for (int i = 0; i < n; i++)
			if (spans[2 * i] > spans[2 * i + 1] || spans[2 * i + 1] > out.len)
				abort();
	}
	free(spans);
	tk_buf_free(&out);
	tk_jinja_free(t);
	return 0;
}

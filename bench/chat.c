/* bench/chat.c - chat-template rendering speed (bench/chat.py runs it).
 *
 *	bench-chat MODEL_DIR CONVERSATIONS.jsonl REPEAT
 *
 * Renders every conversation of the JSONL file ("messages", optional
 * "tools") with the model's chat template and the generation prompt,
 * REPEAT times, as tk-tokenize and tk-generate render them
 * (tk_chat_apply), and prints the conversations per second and the
 * FNV-1a 64 of the texts of one pass (bench/chat.py compares it with
 * transformers'). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/options.h"
#include "base/tk.h"
#include "jobs/cli.h"
#include "text/chat.h"

int main(int argc, char **argv)
{
	struct tk_chat c;
	struct tk_diag d;
	struct tk_buf in = { 0 }, out = { 0 };
	cJSON **conv = NULL;
	size_t n = 0, cap = 0;
	long long repeat;
	uint64_t h = TK_FNV1A64_INIT;

	if (argc != 4 || tk_options_parse_ll(argv[3], 1, 1000000, &repeat)) {
		fprintf(stderr, "usage: bench-chat MODEL_DIR CONVERSATIONS.jsonl REPEAT\n");
		return 2;
	}
	if (tk_chat_load(&c, argv[1], &d) || tk_read_file(argv[2], &in, &d)) {
		fprintf(stderr, "bench-chat: %s: %s\n", d.path, d.msg);
		return 1;
	}
	for (char *p = in.data, *e; p && *p; p = e ? e + 1 : NULL) {
		e = strchr(p, '\n');
		if (e)
			*e = 0;
		if (!*p)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 1024;
			conv = realloc(conv, cap * sizeof(*conv));
		}
		if (!conv || !(conv[n++] = cJSON_Parse(p))) {
			fprintf(stderr, "bench-chat: %s: line %zu: not JSON\n", argv[2], n);
			return 1;
		}
	}
	double t0 = tk_now();
	for (long long r = 0; r < repeat; r++) {
		for (size_t i = 0; i < n; i++) {
			out.len = 0;
			if (tk_chat_apply(&c, cJSON_GetObjectItem(conv[i], "messages"),
					  cJSON_GetObjectItem(conv[i], "tools"), NULL,
					  TK_CHAT_GENERATION_PROMPT, &out, NULL, NULL, &d)) {
				fprintf(stderr, "bench-chat: conversation %zu: %s\n", i + 1, d.msg);
				return 1;
			}
			if (r == 0)
				h = tk_fnv1a64(h, out.data, out.len);
		}
	}
	double dt = tk_now() - t0;
	printf("%.0f conversations/s %016llx\n", (double)n * (double)repeat / dt,
	       (unsigned long long)h);
	for (size_t i = 0; i < n; i++)
		cJSON_Delete(conv[i]);
	free(conv);
	tk_buf_free(&in);
	tk_buf_free(&out);
	tk_chat_free(&c);
	return 0;
}

/* test-chat.c - chat templates (lib/text/chat.c) against transformers.
 *
 * tests/fixtures/chat-templates/ holds real templates and, written by its
 * generate.py with transformers' apply_chat_template, what each renders
 * for a set of conversations (with and without the generation prompt,
 * tools, template kwargs) or the exception it raises, and the assistant
 * spans of templates with {% generation %}.  tk must give the same bytes.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "text/chat-int.h"
#include "text/chat.h"
#include "tt.h"

/* 2026-01-02 03:04:05 UTC, generate.py's DATE. */
#define PINNED 1767323045LL

static cJSON *load_json(const char *rel)
{
	struct tk_buf b = { 0 };
	struct tk_diag d;
	if (tk_read_file(tt_fixture(rel), &b, &d))
		return NULL;
	cJSON *j = cJSON_ParseWithLength(b.data, b.len);
	tk_buf_free(&b);
	return j;
}

static char *read_text(const char *rel)
{
	struct tk_buf b = { 0 };
	struct tk_diag d;
	if (tk_read_file(tt_fixture(rel), &b, &d) || tk_buf_append(&b, "", 1)) {
		tk_buf_free(&b);
		return NULL;
	}
	return b.data;
}

/* The template of expected/NAME.json, set up as its generate.py case was. */
static int open_fixture(const char *name, struct tk_chat *c, cJSON **exp, struct tk_diag *d)
{
	char rel[512];
	char *src;
	int rc;

	snprintf(rel, sizeof(rel), "chat-templates/expected/%s.json", name);
	if (!(*exp = load_json(rel)))
		return tk_diag_set(d, TK_E_IO, rel, -1, "unreadable");
	snprintf(rel, sizeof(rel), "chat-templates/templates/%s.jinja", name);
	if (!(src = read_text(rel)))
		return tk_diag_set(d, TK_E_IO, rel, -1, "unreadable");
	rc = tk_chat_init(c, src, cJSON_GetObjectItem(*exp, "special_tokens"), rel, d);
	free(src);
	if (!rc)
		tk_chat_pin_time(c, PINNED);
	return rc;
}

/* Renders case cs of a fixture into out (spans too when sp is not NULL). */
static int render_case(const struct tk_chat *c, const cJSON *convs, const cJSON *cs,
		       struct tk_buf *out, size_t **sp, int *ns, struct tk_diag *d)
{
	const char *name = cJSON_GetObjectItem(cs, "conversation")->valuestring;
	const cJSON *conv = cJSON_GetObjectItem(convs, name);
	unsigned flags = cJSON_IsTrue(cJSON_GetObjectItem(cs, "add_generation_prompt"))
				 ? TK_CHAT_GENERATION_PROMPT : 0;
	out->len = 0;
	return tk_chat_apply(c, cJSON_GetObjectItem(conv, "messages"),
			     cJSON_GetObjectItem(conv, "tools"), cJSON_GetObjectItem(cs, "kwargs"),
			     flags, out, sp, ns, d);
}

static int spans_equal(const cJSON *want, const size_t *sp, int ns)
{
	int k = 0;
	const cJSON *p;
	cJSON_ArrayForEach(p, want) {
		if (k >= ns || sp[2 * k] != (size_t)cJSON_GetArrayItem(p, 0)->valuedouble ||
		    sp[2 * k + 1] != (size_t)cJSON_GetArrayItem(p, 1)->valuedouble)
			return 0;
		k++;
	}
	return k == ns;
}

/* Every fixture template, every case: the text (or the exception) and the
 * {% generation %} spans. */
static void test_fixtures(void)
{
	cJSON *convs = load_json("chat-templates/conversations.json");
	struct tk_buf out = { 0 };
	int ntemplates = 0, ncases = 0, nspans = 0, nerrors = 0;
	DIR *dir = opendir(tt_fixture("chat-templates/expected"));
	struct dirent *e;

	TT_REQUIRE(convs && dir, "chat-templates fixtures unreadable");
	while ((e = readdir(dir))) {
		char name[256];
		size_t len = strlen(e->d_name);
		struct tk_chat c;
		struct tk_diag d = { 0 };
		cJSON *exp, *cs;
		if (len < 6 || strcmp(e->d_name + len - 5, ".json"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(len - 5), e->d_name);
		TT_CHECK(open_fixture(name, &c, &exp, &d) == 0, "%s: %s", name, d.msg);
		if (tt_failed_now)
			break;
		int gen = cJSON_IsTrue(cJSON_GetObjectItem(exp, "generation"));
		ntemplates++;
		cJSON_ArrayForEach(cs, cJSON_GetObjectItem(exp, "cases")) {
			const cJSON *text = cJSON_GetObjectItem(cs, "text");
			const cJSON *error = cJSON_GetObjectItem(cs, "error");
			const char *conv = cJSON_GetObjectItem(cs, "conversation")->valuestring;
			size_t *sp = NULL;
			int ns = 0;
			int rc = render_case(&c, convs, cs, &out, gen ? &sp : NULL, &ns, &d);
			ncases++;
			if (text) {
				TT_CHECK(rc == 0, "%s %s: %s", name, conv, d.msg);
				TT_CHECK(rc || (out.len == strlen(text->valuestring) &&
						!memcmp(out.data, text->valuestring, out.len)),
					 "%s %s agp %d: got '%.*s', transformers '%s'", name, conv,
					 cJSON_IsTrue(cJSON_GetObjectItem(cs, "add_generation_prompt")),
					 (int)out.len, out.data, text->valuestring);
				if (!rc && gen) {
					TT_CHECK(spans_equal(cJSON_GetObjectItem(cs, "spans"), sp, ns),
						 "%s %s: %d spans differ", name, conv, ns);
					nspans += ns;
				}
			} else if (!strcmp(cJSON_GetObjectItem(cs, "error_type")->valuestring,
					   "TemplateError")) {
				TT_CHECK(rc == TK_E_INVAL && !strcmp(d.msg, error->valuestring),
					 "%s %s: rc %d '%s', transformers raised '%s'", name, conv, rc,
					 d.msg, error->valuestring);
				nerrors++;
			} else {
				TT_CHECK(rc == TK_E_FORMAT || rc == TK_E_UNSUPPORTED,
					 "%s %s: rc %d, transformers raised %s", name, conv, rc,
					 error->valuestring);
				nerrors++;
			}
			free(sp);
		}
		cJSON_Delete(exp);
		tk_chat_free(&c);
	}
	closedir(dir);
	TT_CHECK(ntemplates >= 30, "only %d templates", ntemplates);
	TT_CHECK(nspans > 50 && nerrors > 50, "%d spans, %d errors checked", nspans, nerrors);
	printf("# %d templates, %d cases, %d spans, %d exceptions\n", ntemplates, ncases, nspans,
	       nerrors);
	tk_buf_free(&out);
	cJSON_Delete(convs);
}

/* The case of fixture exp with the conversation, generation prompt and
 * kwargs of case cs (NULL: none). */
static const cJSON *same_case(const cJSON *exp, const cJSON *cs)
{
	const cJSON *tc;
	cJSON_ArrayForEach(tc, cJSON_GetObjectItem(exp, "cases"))
		if (cJSON_Compare(cJSON_GetObjectItem(tc, "conversation"),
				  cJSON_GetObjectItem(cs, "conversation"), 1) &&
		    cJSON_Compare(cJSON_GetObjectItem(tc, "add_generation_prompt"),
				  cJSON_GetObjectItem(cs, "add_generation_prompt"), 1) &&
		    cJSON_Compare(cJSON_GetObjectItem(tc, "kwargs"), cJSON_GetObjectItem(cs, "kwargs"),
				  1))
			return tc;
	return NULL;
}

/* A template without {% generation %}: for the originals TRL swaps its
 * training templates in for, the training template renders text and
 * spans (as SFTTrainer's assistant_only_loss); for others the variant that
 * renders the same text gives the spans.  Both against what transformers
 * computes with the training template. */
static void test_variant_spans(void)
{
	static const struct { const char *model, *training; int swapped; } pairs[] = {
		{ "qwen2.5", "trl-qwen2-5-training", 1 }, { "trl-qwen3", "trl-qwen3-training", 1 },
		{ "trl-llama3", "trl-llama3-training", 1 }, { "trl-gemma", "trl-gemma-training", 1 },
		{ "trl-phi3", "trl-phi3-training", 1 }, { "trl-gemma3", "trl-gemma3-training", 1 },
		{ "llama-3", "trl-llama3-training", 0 }, { "tk-llama2", "tk-llama2-training", 0 },
	};
	cJSON *convs = load_json("chat-templates/conversations.json");
	struct tk_buf out = { 0 };
	int checked = 0, differ = 0;

	TT_REQUIRE(convs, "conversations.json");
	for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		struct tk_chat c, t;
		struct tk_diag d;
		cJSON *exp, *texp, *cs;
		TT_REQUIRE(open_fixture(pairs[i].model, &c, &exp, &d) == 0, "%s", d.msg);
		TT_REQUIRE(open_fixture(pairs[i].training, &t, &texp, &d) == 0, "%s", d.msg);
		TT_CHECK((c.swap >= 0) == pairs[i].swapped, "%s: swap %d", pairs[i].model, c.swap);
		cJSON_ArrayForEach(cs, cJSON_GetObjectItem(exp, "cases")) {
			const cJSON *tc = same_case(texp, cs);
			const cJSON *text = cJSON_GetObjectItem(cs, "text");
			const cJSON *ttext = cJSON_GetObjectItem(tc, "text");
			const char *conv = cJSON_GetObjectItem(cs, "conversation")->valuestring;
			size_t *sp = NULL;
			int ns = 0;
			if (text && ttext && (pairs[i].swapped || !strcmp(text->valuestring,
									  ttext->valuestring))) {
				int rc = render_case(&c, convs, cs, &out, &sp, &ns, &d);
				TT_CHECK(rc == 0 && out.len == strlen(ttext->valuestring) &&
						 !memcmp(out.data, ttext->valuestring, out.len),
					 "%s %s: rc %d (%s), text unlike %s's", pairs[i].model, conv, rc,
					 d.msg, pairs[i].training);
				TT_CHECK(rc || spans_equal(cJSON_GetObjectItem(tc, "spans"), sp, ns),
					 "%s %s: %d spans unlike %s's", pairs[i].model, conv, ns,
					 pairs[i].training);
				checked++;
				differ += strcmp(text->valuestring, ttext->valuestring) != 0;
			}
			free(sp);
		}
		cJSON_Delete(exp);
		cJSON_Delete(texp);
		tk_chat_free(&c);
		tk_chat_free(&t);
	}
	TT_CHECK(checked >= 80 && differ > 0, "%d cases checked, %d texts swapped", checked, differ);
	tk_buf_free(&out);
	cJSON_Delete(convs);
}

/* A template without {% generation %} that no variant matches: spans are
 * refused, naming the template, while the text alone renders. */
static void test_no_variant(void)
{
	struct tk_chat c;
	struct tk_diag d;
	struct tk_buf out = { 0 };
	cJSON *msgs = cJSON_Parse("[{\"role\": \"user\", \"content\": \"a\"},"
				  " {\"role\": \"assistant\", \"content\": \"b\"}]");
	size_t *sp;
	int ns;

	TT_REQUIRE(tk_chat_init(&c, "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
				"{% endfor %}", NULL, "x.jinja", &d) == 0, "%s", d.msg);
	TT_CHECK(tk_chat_apply(&c, msgs, NULL, NULL, 0, &out, NULL, NULL, &d) == 0 &&
		 !strcmp(out.data, "<user>a<assistant>b"), "%s", out.data);
	out.len = 0;
	TT_CHECK(tk_chat_apply(&c, msgs, NULL, NULL, 0, &out, &sp, &ns, &d) == TK_E_UNSUPPORTED &&
		 strstr(d.msg, "x.jinja: the chat template has no {% generation %}"), "%s", d.msg);
	tk_chat_free(&c);
	tk_buf_free(&out);
	cJSON_Delete(msgs);
}

/* Template kwargs: set for every render, overridden per call; the names
 * apply_chat_template sets itself are refused. */
static void test_kwargs(void)
{
	struct tk_chat c;
	struct tk_diag d;
	struct tk_buf out = { 0 };
	cJSON *msgs = cJSON_Parse("[]"), *kw = cJSON_Parse("{\"x\": 2}");

	TT_REQUIRE(tk_chat_init(&c, "{{ x }}|{{ y is defined }}", NULL, "k.jinja", &d) == 0, "%s",
		   d.msg);
	TT_CHECK(tk_chat_set_kwargs(&c, "{\"x\": 1, \"y\": null}", &d) == 0, "%s", d.msg);
	TT_CHECK(tk_chat_apply(&c, msgs, NULL, NULL, 0, &out, NULL, NULL, &d) == 0 &&
		 !strcmp(out.data, "1|True"), "%s", out.data);
	out.len = 0;
	TT_CHECK(tk_chat_apply(&c, msgs, NULL, kw, 0, &out, NULL, NULL, &d) == 0 &&
		 !strcmp(out.data, "2|True"), "%s", out.data);
	TT_CHECK(tk_chat_set_kwargs(&c, "[1]", &d) == TK_E_INVAL, "a list accepted");
	TT_CHECK(tk_chat_set_kwargs(&c, "{\"messages\": []}", &d) == TK_E_INVAL &&
		 strstr(d.msg, "'messages'"), "%s", d.msg);
	tk_chat_free(&c);
	tk_buf_free(&out);
	cJSON_Delete(msgs);
	cJSON_Delete(kw);
}

/* The training variants compiled into the library are the fixture files,
 * byte for byte (so generate.py's spans hold for them). */
static void test_variants_are_fixtures(void)
{
	int n = 0;
	for (const struct tk_chat_variant *v = tk_chat_variants; v->name; v++, n++) {
		char rel[512];
		snprintf(rel, sizeof(rel), "chat-templates/templates/%s.jinja", v->name);
		char *src = read_text(rel);
		TT_CHECK(src && !strcmp(src, v->src), "%s differs from its fixture", v->name);
		free(src);
		if (!v->original)
			continue;
		snprintf(rel, sizeof(rel), "chat-templates/templates/%s.jinja", v->original);
		src = read_text(rel);
		TT_CHECK(src && strlen(src) == v->original_len &&
				 tk_fnv1a64(TK_FNV1A64_INIT, src, strlen(src)) == v->original_fnv,
			 "%s: fingerprint of %s", v->name, v->original);
		free(src);
	}
	TT_CHECK(n >= 8, "%d variants", n);
}

int main(void)
{
	TT_RUN(test_fixtures);
	TT_RUN(test_variant_spans);
	TT_RUN(test_no_variant);
	TT_RUN(test_kwargs);
	TT_RUN(test_variants_are_fixtures);
	return tt_done();
}

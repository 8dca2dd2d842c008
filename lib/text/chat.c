/* chat.c - chat templates recognised and rendered without Jinja (see chat.h). */
#include "text/chat.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

/* The text of a special-token entry of tokenizer_config.json: a string or
 * an AddedToken object with "content"; "" when absent. */
static char *token_text(const cJSON *j, const char *key)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, key);

	if (cJSON_IsObject(e))
		e = cJSON_GetObjectItemCaseSensitive(e, "content");
	return strdup(cJSON_IsString(e) ? e->valuestring : "");
}

/* The system message a ChatML template writes when the conversation has
 * none: a literal "<|im_start|>system\n...<|im_end|>" in the template (with
 * the newline written or escaped), NULL when there is none. */
static char *chatml_default_system(const char *t)
{
	static const char head[] = "<|im_start|>system";
	const char *p = t;

	while ((p = strstr(p, head))) {
		const char *b = p + strlen(head), *e;
		struct tk_buf out = { 0 };
		int ok = 1;

		p = b;
		if (*b == '\n')
			b++;
		else if (b[0] == '\\' && b[1] == 'n')
			b += 2;
		else
			continue;
		e = strstr(b, "<|im_end|>");
		if (!e)
			break;
		for (const char *c = b; c < e && ok; c++) {
			char ch = *c;
			if (ch == '\'' || ch == '"' || ch == '{' || ch == '}' || ch == '+')
				ok = 0;
			else if (ch == '\\' && c + 1 < e) {
				c++;
				ch = *c == 'n' ? '\n' : *c == 't' ? '\t' : *c;
			}
			if (ok && tk_buf_append(&out, &ch, 1))
				ok = 0;
		}
		if (ok && !tk_buf_append(&out, "", 1))
			return out.data;
		tk_buf_free(&out);
	}
	return NULL;
}

int tk_chat_load(struct tk_chat *c, const char *dir, struct tk_diag *d)
{
	char path[4096];
	struct tk_buf b = { 0 }, jt = { 0 };
	cJSON *j = NULL, *t, *it, *list;
	const char *tmpl = NULL;
	int err;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
	if (access(path, F_OK) == 0) {
		if ((err = tk_read_file(path, &b, d)))
			return err;
		j = cJSON_ParseWithLength(b.data, b.len);
		tk_buf_free(&b);
		if (!cJSON_IsObject(j)) {
			cJSON_Delete(j);
			return tk_diag_set(d, TK_E_FORMAT, path, -1, "not a JSON object");
		}
		t = cJSON_GetObjectItemCaseSensitive(j, "chat_template");
		if (cJSON_IsString(t))
			tmpl = t->valuestring;
		list = cJSON_IsArray(t) ? t : NULL;
		cJSON_ArrayForEach(it, list) {
			const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
			const cJSON *tt = cJSON_GetObjectItemCaseSensitive(it, "template");
			if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default") &&
			    cJSON_IsString(tt))
				tmpl = tt->valuestring;
		}
		c->bos = token_text(j, "bos_token");
		c->eos = token_text(j, "eos_token");
	}
	snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
	if (!tmpl && access(path, F_OK) == 0) {
		if ((err = tk_read_file(path, &jt, d)) || (err = tk_buf_append(&jt, "", 1)))
			goto fail;
		tmpl = jt.data;
	}
	if (!tmpl) {
		err = tk_diag_set(d, TK_E_FORMAT, dir, -1,
				  "no chat template (tokenizer_config.json has no chat_template and "
				  "there is no chat_template.jinja)");
		goto fail;
	}
	if (strstr(tmpl, "<|im_start|>")) {
		c->kind = TK_CHAT_CHATML;
		c->default_system = chatml_default_system(tmpl);
	} else if (strstr(tmpl, "<|start_header_id|>") && !strstr(tmpl, "Cutting Knowledge")) {
		c->kind = TK_CHAT_LLAMA3;
	} else if (strstr(tmpl, "[INST]") && strstr(tmpl, "<<SYS>>")) {
		c->kind = TK_CHAT_LLAMA2;
	} else {
		err = tk_diag_set(d, TK_E_UNSUPPORTED, dir, -1,
				  "chat template not recognised (tk renders ChatML, Llama-2 and "
				  "Llama-3 templates only)");
		goto fail;
	}
	if (!c->bos)
		c->bos = strdup("");
	if (!c->eos)
		c->eos = strdup("");
	cJSON_Delete(j);
	tk_buf_free(&jt);
	return c->bos && c->eos ? 0 : tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
fail:
	cJSON_Delete(j);
	tk_buf_free(&jt);
	tk_chat_free(c);
	return err;
}

const char *tk_chat_dir(const char *path, const char *dflt, char *buf, size_t cap)
{
	struct stat st;
	char *slash;

	if (!path)
		return dflt;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return path;
	snprintf(buf, cap, "%s", path);
	slash = strrchr(buf, '/');
	if (!slash)
		return ".";
	*slash = 0;
	return slash == buf ? "/" : buf;
}

void tk_chat_free(struct tk_chat *c)
{
	free(c->bos);
	free(c->eos);
	free(c->default_system);
	memset(c, 0, sizeof(*c));
}

static int is_space(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Appends the strings of a NULL-terminated list to out. */
static int cat(struct tk_buf *out, ...)
{
	va_list ap;
	const char *p;
	int err = 0;

	va_start(ap, out);
	while (!err && (p = va_arg(ap, const char *)))
		err = tk_buf_append(out, p, strlen(p));
	va_end(ap);
	return err;
}

/* Appends s without leading and trailing white space (Jinja's trim). */
static int cat_trimmed(struct tk_buf *out, const char *s)
{
	size_t n = strlen(s);

	while (n && is_space(*s))
		s++, n--;
	while (n && is_space(s[n - 1]))
		n--;
	return tk_buf_append(out, s, n);
}

/* Records [start, end) of an assistant turn (offsets into out from base). */
static void span(size_t *spans, int *n, size_t base, size_t start, const struct tk_buf *out)
{
	if (!spans)
		return;
	spans[2 * *n] = start - base;
	spans[2 * *n + 1] = out->len - base;
	(*n)++;
}

/* Llama-2: the system message joins the first user turn; user turns are
 * "<s>[INST] text [/INST]", assistant turns " text </s>". */
static int render_llama2(const struct tk_chat *c, const struct tk_chat_msg *m, int n,
			 struct tk_buf *out, size_t base, size_t *spans, int *n_spans,
			 struct tk_diag *d)
{
	struct tk_buf tmp = { 0 };
	const char *system = NULL;
	int err = 0, k = 0;

	if (n && !strcmp(m[0].role, "system"))
		system = m[k++].content;
	for (int t = 0; k < n && !err; k++, t++) {
		const char *want = t % 2 ? "assistant" : "user";
		size_t start = out->len;
		if (strcmp(m[k].role, want)) {
			tk_buf_free(&tmp);
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "message %d is '%s' where the Llama-2 template wants "
					   "'%s' (a system message first, then user and "
					   "assistant turns in turn)", k + 1, m[k].role, want);
		}
		tmp.len = 0;
		if (t == 0 && system)
			err = cat(&tmp, "<<SYS>>\n", system, "\n<</SYS>>\n\n", NULL);
		err = err || cat(&tmp, m[k].content, NULL) || tk_buf_append(&tmp, "", 1);
		if (err)
			break;
		if (t % 2) {
			err = cat(out, " ", NULL) || cat_trimmed(out, tmp.data) ||
			      cat(out, " ", c->eos, NULL);
			span(spans, n_spans, base, start, out);
		} else {
			err = cat(out, c->bos, "[INST] ", NULL) || cat_trimmed(out, tmp.data) ||
			      cat(out, " [/INST]", NULL);
		}
	}
	tk_buf_free(&tmp);
	return err ? tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory") : 0;
}

int tk_chat_render_spans(const struct tk_chat *c, const struct tk_chat_msg *m, int n,
			 unsigned flags, struct tk_buf *out, size_t *spans, int *n_spans,
			 struct tk_diag *d)
{
	size_t base = out->len, start;
	int err = 0, ns = 0;
	int gen = !!(flags & TK_CHAT_GENERATION_PROMPT);

	if (n_spans)
		*n_spans = 0;
	if (n < 1)
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "no messages");
	for (int k = 0; k < n; k++)
		if (!m[k].role || !*m[k].role || !m[k].content)
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "message %d has no role or no content", k + 1);
	switch (c->kind) {
	case TK_CHAT_CHATML:
		/* assistant turns: "\n" content "<|im_end|>\n" after the role,
		 * as TRL's training template for Qwen2.5 marks them */
		if (strcmp(m[0].role, "system") && c->default_system)
			err = cat(out, "<|im_start|>system\n", c->default_system, "<|im_end|>\n",
				  NULL);
		for (int k = 0; k < n && !err; k++) {
			err = cat(out, "<|im_start|>", m[k].role, NULL);
			start = out->len;
			err = err || cat(out, "\n", m[k].content, "<|im_end|>\n", NULL);
			if (!err && !strcmp(m[k].role, "assistant"))
				span(spans, &ns, base, start, out);
		}
		err = err || (gen && cat(out, "<|im_start|>assistant\n", NULL));
		break;
	case TK_CHAT_LLAMA3:
		/* assistant turns: the trimmed content and <|eot_id|> (TRL's
		 * training template for Llama 3) */
		err = cat(out, c->bos, NULL);
		for (int k = 0; k < n && !err; k++) {
			err = cat(out, "<|start_header_id|>", m[k].role, "<|end_header_id|>\n\n",
				  NULL);
			start = out->len;
			err = err || cat_trimmed(out, m[k].content) || cat(out, "<|eot_id|>", NULL);
			if (!err && !strcmp(m[k].role, "assistant"))
				span(spans, &ns, base, start, out);
		}
		err = err ||
		      (gen && cat(out, "<|start_header_id|>assistant<|end_header_id|>\n\n", NULL));
		break;
	case TK_CHAT_LLAMA2:
		if ((err = render_llama2(c, m, n, out, base, spans, &ns, d)))
			return err;
		break;
	}
	if (!err)
		err = tk_buf_append(out, "", 1);
	if (err)
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	out->len--;
	if (n_spans)
		*n_spans = ns;
	return 0;
}

int tk_chat_render_msgs(const struct tk_chat *c, const struct tk_chat_msg *m, int n,
			struct tk_buf *out, struct tk_diag *d)
{
	return tk_chat_render_spans(c, m, n, TK_CHAT_GENERATION_PROMPT, out, NULL, NULL, d);
}

int tk_chat_render(const struct tk_chat *c, const char *system, const char *user,
		   struct tk_buf *out)
{
	struct tk_chat_msg m[2] = { { "system", system }, { "user", user } };
	struct tk_diag d;

	return system ? tk_chat_render_msgs(c, m, 2, out, &d)
		      : tk_chat_render_msgs(c, m + 1, 1, out, &d);
}

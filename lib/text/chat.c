/* chat.c - chat templates rendered as apply_chat_template does (see chat.h). */
#include "text/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text/chat-int.h"

/* The special tokens apply_chat_template passes (special_tokens_map). */
static const char *const special_names[] = { "bos_token", "eos_token", "unk_token", "sep_token",
					     "pad_token", "cls_token", "mask_token", NULL };

/* The keywords apply_chat_template sets itself. */
static const char *const reserved[] = { "messages", "tools", "documents",
					"add_generation_prompt", NULL };

static int nomem(struct tk_diag *d)
{
	return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
}

/* The text of a special-token entry of tokenizer_config.json: a string or
 * an AddedToken object with "content"; NULL when absent or null. */
static const char *token_text(const cJSON *j, const char *key)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, key);

	if (cJSON_IsObject(e))
		e = cJSON_GetObjectItemCaseSensitive(e, "content");
	return cJSON_IsString(e) ? e->valuestring : NULL;
}

static const char *str_var(const cJSON *vars, const char *key)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(vars, key);
	return cJSON_IsString(e) ? e->valuestring : "";
}

/* Renders t with vars after out; on a template error d names the origin. */
static int render(const struct tk_chat *c, const tk_jinja_t *t, const cJSON *vars,
		  struct tk_buf *out, size_t **spans, int *n_spans, struct tk_diag *d)
{
	int rc = tk_jinja_render(t, vars, &c->jopts, out, spans, n_spans, d);

	if (rc && rc != TK_E_INVAL && rc != TK_E_NOMEM && d) {
		char msg[sizeof(d->msg)];
		snprintf(msg, sizeof(msg), "%s", d->msg);
		snprintf(d->msg, sizeof(d->msg), "%.400s: %.600s", c->origin, msg);
	}
	return rc;
}

/* The system message tmpl writes, ChatML's way, for a conversation that
 * has none: what it renders before the user's turn of a conversation of
 * one user message.  NULL when it writes none. */
static char *probe_default_system(const struct tk_chat *c)
{
	static const char head[] = "<|im_start|>system\n", tail[] = "<|im_end|>\n<|im_start|>user\n\001";
	cJSON *vars = cJSON_Duplicate(c->vars, 1), *msgs = cJSON_CreateArray(),
	      *m = cJSON_CreateObject();
	struct tk_buf out = { 0 };
	struct tk_diag d;
	char *res = NULL;

	if (vars && msgs && m && cJSON_AddStringToObject(m, "role", "user") &&
	    cJSON_AddStringToObject(m, "content", "\001") && cJSON_AddItemToArray(msgs, m)) {
		m = NULL;
		if (cJSON_AddItemToObject(vars, "messages", msgs))
			msgs = NULL;
	}
	cJSON_AddFalseToObject(vars, "add_generation_prompt");
	if (!msgs && !render(c, c->tmpl, vars, &out, NULL, NULL, &d) &&
	    !strncmp(out.data, head, strlen(head))) {
		const char *e = strstr(out.data + strlen(head), tail);
		if (e && (res = malloc((size_t)(e - out.data) - strlen(head) + 1))) {
			size_t n = (size_t)(e - out.data) - strlen(head);
			memcpy(res, out.data + strlen(head), n);
			res[n] = 0;
		}
	}
	tk_buf_free(&out);
	cJSON_Delete(vars);
	cJSON_Delete(msgs);
	cJSON_Delete(m);
	return res;
}

/* Compiles src and, when it has no {% generation %}, the training
 * variants; takes special (may be NULL). */
static int setup(struct tk_chat *c, const char *src, cJSON *special, const char *origin,
		 struct tk_diag *d)
{
	int rc, n = 0;

	memset(c, 0, sizeof(*c));
	c->vars = special ? special : cJSON_CreateObject();
	c->origin = strdup(origin);
	if (!c->vars || !c->origin) {
		rc = nomem(d);
		goto fail;
	}
	if ((rc = tk_jinja_parse(&c->tmpl, src, strlen(src), d))) {
		char msg[sizeof(d->msg)];
		snprintf(msg, sizeof(msg), "%s", d->msg);
		tk_diag_set(d, rc, origin, -1, "%s", msg);
		goto fail;
	}
	c->bos = strdup(str_var(c->vars, "bos_token"));
	c->eos = strdup(str_var(c->vars, "eos_token"));
	if (!c->bos || !c->eos) {
		rc = nomem(d);
		goto fail;
	}
	c->swap = -1;
	if (tk_jinja_has_generation(c->tmpl))
		return 0;
	while (tk_chat_variants[n].name)
		n++;
	c->variants = calloc((size_t)n, sizeof(*c->variants));
	c->variant_names = calloc((size_t)n, sizeof(*c->variant_names));
	if (!c->variants || !c->variant_names) {
		rc = nomem(d);
		goto fail;
	}
	for (int i = 0; i < n; i++) {
		const char *s = tk_chat_variants[i].src;
		if ((rc = tk_jinja_parse(&c->variants[i], s, strlen(s), d)))
			goto fail;
		c->variant_names[i] = tk_chat_variants[i].name;
		c->n_variants++;
		/* TRL's identity comparison, by length and fingerprint */
		if (c->swap < 0 && tk_chat_variants[i].original &&
		    strlen(src) == tk_chat_variants[i].original_len &&
		    tk_fnv1a64(TK_FNV1A64_INIT, src, strlen(src)) == tk_chat_variants[i].original_fnv)
			c->swap = i;
	}
	c->default_system = probe_default_system(c);
	return 0;
fail:
	tk_chat_free(c);
	return rc;
}

int tk_chat_init(struct tk_chat *c, const char *src, const cJSON *special, const char *origin,
		 struct tk_diag *d)
{
	cJSON *s = special ? cJSON_Duplicate(special, 1) : NULL;

	if (special && !s)
		return nomem(d);
	return setup(c, src, s, origin, d);
}

int tk_chat_load(struct tk_chat *c, const char *dir, struct tk_diag *d)
{
	char path[4096], origin[4096], tools_origin[4096];
	struct tk_buf b = { 0 }, jt = { 0 }, tt_buf = { 0 };
	cJSON *j = NULL, *t, *it, *list, *special = NULL;
	const char *tmpl = NULL, *tools_src = NULL;
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
			if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "tool_use") &&
			    cJSON_IsString(tt))
				tools_src = tt->valuestring;
		}
		if (!(special = cJSON_CreateObject())) {
			err = nomem(d);
			goto out;
		}
		for (int i = 0; special_names[i]; i++) {
			const char *s = token_text(j, special_names[i]);
			if (s && !cJSON_AddStringToObject(special, special_names[i], s)) {
				err = nomem(d);
				goto out;
			}
		}
		/* transformers 5 passes a model's own special tokens too: any
		 * other key ending in _token (image_token...), and the named
		 * ones of extra_special_tokens */
		const cJSON *extra = cJSON_GetObjectItemCaseSensitive(j, "extra_special_tokens");
		for (int pass = 0; pass < 2 && !err; pass++) {
			const cJSON *src = pass ? extra : j;
			for (const cJSON *e = cJSON_IsObject(src) ? src->child : NULL; e && !err;
			     e = e->next) {
				size_t n = strlen(e->string);
				const char *s = token_text(src, e->string);
				if (!s || (!pass && (n < 6 || strcmp(e->string + n - 6, "_token"))) ||
				    cJSON_GetObjectItemCaseSensitive(special, e->string))
					continue;
				if (!cJSON_AddStringToObject(special, e->string, s))
					err = nomem(d);
			}
		}
		if (err)
			goto out;
		snprintf(origin, sizeof(origin), "%s", path);
	}
	/* chat_template.jinja, where there is one, wins over the config's
	 * entries, as transformers' from_pretrained takes it, and so do the
	 * files of additional_chat_templates/ */
	snprintf(path, sizeof(path), "%s/chat_template.jinja", dir);
	if (access(path, F_OK) == 0) {
		if ((err = tk_read_file(path, &jt, d)) || (err = tk_buf_append(&jt, "", 1)))
			goto out;
		tmpl = jt.data;
		tools_src = NULL;
		snprintf(origin, sizeof(origin), "%s", path);
	}
	snprintf(path, sizeof(path), "%s/additional_chat_templates/tool_use.jinja", dir);
	if (access(path, F_OK) == 0) {
		if ((err = tk_read_file(path, &tt_buf, d)) || (err = tk_buf_append(&tt_buf, "", 1)))
			goto out;
		tools_src = tt_buf.data;
		snprintf(tools_origin, sizeof(tools_origin), "%s", path);
	} else {
		snprintf(tools_origin, sizeof(tools_origin), "%s/tokenizer_config.json", dir);
	}
	if (!tmpl) {
		err = tk_diag_set(d, TK_E_FORMAT, dir, -1,
				  "no chat template (tokenizer_config.json has no chat_template and "
				  "there is no chat_template.jinja)");
		goto out;
	}
	err = setup(c, tmpl, special, origin, d);
	special = NULL;
	if (!err && tools_src && (err = tk_jinja_parse(&c->tmpl_tools, tools_src,
						       strlen(tools_src), d))) {
		char msg[sizeof(d->msg)];
		snprintf(msg, sizeof(msg), "%s", d->msg);
		tk_diag_set(d, err, tools_origin, -1, "tool_use template: %.900s", msg);
		tk_chat_free(c);
	}
out:
	cJSON_Delete(special);
	cJSON_Delete(j);
	tk_buf_free(&jt);
	tk_buf_free(&tt_buf);
	return err;
}

void tk_chat_free(struct tk_chat *c)
{
	tk_jinja_free(c->tmpl);
	tk_jinja_free(c->tmpl_tools);
	for (int i = 0; i < c->n_variants; i++)
		tk_jinja_free(c->variants[i]);
	free(c->variants);
	free(c->variant_names);
	cJSON_Delete(c->vars);
	free(c->origin);
	free(c->bos);
	free(c->eos);
	free(c->default_system);
	memset(c, 0, sizeof(*c));
}

static int is_reserved(const char *k)
{
	for (int i = 0; reserved[i]; i++)
		if (!strcmp(reserved[i], k))
			return 1;
	return 0;
}

/* Copies the members of object kw into vars, over those of the same name.
 * TK_E_INVAL names a reserved one. */
static int merge(cJSON *vars, const cJSON *kw, struct tk_diag *d)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, kw) {
		cJSON *v;
		if (is_reserved(it->string))
			return tk_diag_set(d, TK_E_INVAL, NULL, -1,
					   "template kwargs cannot set '%s'", it->string);
		if (!(v = cJSON_Duplicate(it, 1)))
			return nomem(d);
		cJSON_DeleteItemFromObjectCaseSensitive(vars, it->string);
		if (!cJSON_AddItemToObject(vars, it->string, v)) {
			cJSON_Delete(v);
			return nomem(d);
		}
	}
	return 0;
}

int tk_chat_set_kwargs(struct tk_chat *c, const char *json, struct tk_diag *d)
{
	cJSON *kw = cJSON_Parse(json);
	int rc;

	if (!cJSON_IsObject(kw)) {
		cJSON_Delete(kw);
		return tk_diag_set(d, TK_E_INVAL, NULL, -1,
				   "template kwargs must be a JSON object, as {\"enable_thinking\": "
				   "false}");
	}
	rc = merge(c->vars, kw, d);
	cJSON_Delete(kw);
	return rc;
}

void tk_chat_pin_time(struct tk_chat *c, long long t)
{
	c->jopts.pin_now = 1;
	c->jopts.now = (time_t)t;
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

/* A message as transformers passes it: the first reasoning field that is
 * not null (reasoning_content, thinking, reasoning) also under "thinking"
 * (first, unless the message has it) and "reasoning_content". */
static cJSON *alias_reasoning(const cJSON *m)
{
	static const char *const fields[] = { "reasoning_content", "thinking", "reasoning" };
	const cJSON *r = NULL, *it;
	cJSON *o, *v;

	for (int i = 0; i < 3 && !r; i++) {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(m, fields[i]);
		if (e && !cJSON_IsNull(e))
			r = e;
	}
	if (!r)
		return cJSON_Duplicate(m, 1);
	if (!(o = cJSON_CreateObject()) || !(v = cJSON_Duplicate(r, 1)) ||
	    !cJSON_AddItemToObject(o, "thinking", v))
		goto fail;
	cJSON_ArrayForEach(it, m) {
		if (!(v = cJSON_Duplicate(it, 1)))
			goto fail;
		if (cJSON_GetObjectItemCaseSensitive(o, it->string))
			cJSON_ReplaceItemInObjectCaseSensitive(o, it->string, v);
		else if (!cJSON_AddItemToObject(o, it->string, v))
			goto fail;
	}
	if (!(v = cJSON_Duplicate(r, 1)))
		goto fail;
	if (cJSON_GetObjectItemCaseSensitive(o, "reasoning_content"))
		cJSON_ReplaceItemInObjectCaseSensitive(o, "reasoning_content", v);
	else if (!cJSON_AddItemToObject(o, "reasoning_content", v))
		goto fail;
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

/* The variables of a render: the special tokens and kwargs, messages,
 * tools, documents (None) and add_generation_prompt. */
static int build_vars(const struct tk_chat *c, const cJSON *messages, const cJSON *tools,
		      const cJSON *kwargs, unsigned flags, cJSON **out, struct tk_diag *d)
{
	cJSON *v = cJSON_Duplicate(c->vars, 1), *msgs = cJSON_CreateArray(), *tl;
	const cJSON *it;
	int k = 0, rc;

	*out = NULL;
	if (!v || !msgs) {
		cJSON_Delete(v);
		cJSON_Delete(msgs);
		return nomem(d);
	}
	if (kwargs && (rc = merge(v, kwargs, d))) {
		cJSON_Delete(v);
		cJSON_Delete(msgs);
		return rc;
	}
	cJSON_AddItemToObject(v, "messages", msgs);
	cJSON_ArrayForEach(it, messages) {
		cJSON *m;
		k++;
		if (!cJSON_IsObject(it)) {
			cJSON_Delete(v);
			return tk_diag_set(d, TK_E_INVAL, NULL, -1, "message %d is not an object", k);
		}
		if (!(m = alias_reasoning(it)) || !cJSON_AddItemToArray(msgs, m)) {
			cJSON_Delete(m);
			cJSON_Delete(v);
			return nomem(d);
		}
		/* a key whose value is null is not there, as transformers drops
		 * them (content null beside tool_calls, OpenAI's way): many
		 * templates would print "None" or take it as defined */
		for (cJSON *f = m->child, *next; f; f = next) {
			next = f->next;
			if (cJSON_IsNull(f))
				cJSON_Delete(cJSON_DetachItemViaPointer(m, f));
		}
	}
	tl = tools && !cJSON_IsNull(tools) ? cJSON_Duplicate(tools, 1) : cJSON_CreateNull();
	if (!tl || !cJSON_AddItemToObject(v, "tools", tl) || !cJSON_AddNullToObject(v, "documents") ||
	    !cJSON_AddBoolToObject(v, "add_generation_prompt", flags & TK_CHAT_GENERATION_PROMPT)) {
		cJSON_Delete(v);
		return nomem(d);
	}
	*out = v;
	return 0;
}

/* The assistant spans of the text out[base..] from the first training
 * variant that renders vars to the same text. */
static int variant_spans(const struct tk_chat *c, cJSON *vars, const struct tk_buf *out,
			 size_t base, size_t **spans, int *n_spans, struct tk_diag *d)
{
	struct tk_buf tmp = { 0 };
	int rc = 0, found = 0;

	if (c->default_system && !cJSON_AddStringToObject(vars, "tk_default_system",
							  c->default_system))
		return nomem(d);
	for (int i = 0; i < c->n_variants && !found; i++) {
		struct tk_diag vd;
		size_t *sp = NULL;
		int ns = 0;
		tmp.len = 0;
		rc = tk_jinja_render(c->variants[i], vars, &c->jopts, &tmp, &sp, &ns, &vd);
		if (rc == TK_E_NOMEM)
			break;
		if (!rc && tmp.len == out->len - base && !memcmp(tmp.data, out->data + base, tmp.len)) {
			*spans = sp;
			*n_spans = ns;
			found = 1;
		} else {
			free(sp);
		}
		rc = 0;
	}
	tk_buf_free(&tmp);
	if (rc)
		return nomem(d);
	if (!found)
		return tk_diag_set(d, TK_E_UNSUPPORTED, NULL, -1,
				   "%.600s: the chat template has no {%% generation %%} tags to mark "
				   "the assistant's turns, and none of tk's training variants of "
				   "known templates renders this conversation to the same text "
				   "(see tk-chat-template(7))", c->origin);
	return 0;
}

int tk_chat_apply(const struct tk_chat *c, const cJSON *messages, const cJSON *tools,
		  const cJSON *kwargs, unsigned flags, struct tk_buf *out, size_t **spans,
		  int *n_spans, struct tk_diag *d)
{
	size_t base = out->len;
	cJSON *vars;
	/* with tools, the "tool_use" template where there is one, as
	 * transformers' get_chat_template chooses */
	int with_tools = tools && !cJSON_IsNull(tools) && c->tmpl_tools;
	const tk_jinja_t *tmpl = with_tools ? c->tmpl_tools : c->tmpl;
	int rc, gen = tk_jinja_has_generation(tmpl);

	if (spans)
		*spans = NULL;
	if (n_spans)
		*n_spans = 0;
	if (!cJSON_IsArray(messages))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "the messages are not a list");
	if (tools && !cJSON_IsNull(tools) && !cJSON_IsArray(tools))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "the tools are not a list");
	if (kwargs && !cJSON_IsObject(kwargs))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "the template kwargs are not an object");
	if ((rc = build_vars(c, messages, tools, kwargs, flags, &vars, d)))
		return rc;
	if (spans && !gen && !with_tools && c->swap >= 0) /* as TRL's SFTTrainer */
		rc = render(c, c->variants[c->swap], vars, out, spans, n_spans, d);
	else
		rc = render(c, tmpl, vars, out, gen ? spans : NULL,
			    gen && spans ? n_spans : NULL, d);
	if (!rc && spans && !gen && c->swap < 0)
		rc = variant_spans(c, vars, out, base, spans, n_spans, d);
	cJSON_Delete(vars);
	return rc;
}

int tk_chat_render_msgs(const struct tk_chat *c, const struct tk_chat_msg *m, int n,
			struct tk_buf *out, struct tk_diag *d)
{
	cJSON *msgs = cJSON_CreateArray();
	int rc = msgs ? 0 : TK_E_NOMEM;

	for (int i = 0; i < n && !rc; i++) {
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(msgs, o) ||
		    !cJSON_AddStringToObject(o, "role", m[i].role) ||
		    !cJSON_AddStringToObject(o, "content", m[i].content))
			rc = TK_E_NOMEM;
	}
	if (rc) {
		cJSON_Delete(msgs);
		return nomem(d);
	}
	rc = tk_chat_apply(c, msgs, NULL, NULL, TK_CHAT_GENERATION_PROMPT, out, NULL, NULL, d);
	cJSON_Delete(msgs);
	return rc;
}

int tk_chat_render(const struct tk_chat *c, const char *system, const char *user,
		   struct tk_buf *out, struct tk_diag *d)
{
	struct tk_chat_msg m[2] = { { "system", system }, { "user", user } };

	return system ? tk_chat_render_msgs(c, m, 2, out, d)
		      : tk_chat_render_msgs(c, m + 1, 1, out, d);
}

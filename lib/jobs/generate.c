/* generate.c - decoding as transformers' generate() (see generate.h). */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "jobs/generate.h"

void tk_gen_opts_init(struct tk_gen_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->temperature = 1.0;
	o->top_k = 50;
	o->top_p = 1.0;
	o->repetition_penalty = 1.0;
	o->max_new_tokens = 20;
}

/* Softmax of x[V] into p[V] (double); -inf gives 0. */
static void softmax(const float *x, int V, double *p)
{
	float mx = -INFINITY;
	double sum = 0.0;

	for (int i = 0; i < V; i++)
		if (x[i] > mx)
			mx = x[i];
	for (int i = 0; i < V; i++) {
		p[i] = x[i] == -INFINITY ? 0.0 : exp((double)x[i] - (double)mx);
		sum += p[i];
	}
	for (int i = 0; i < V; i++)
		p[i] /= sum;
}

static const float *sort_keys;

/* Ascending by score, then by id (a stable order for ties). */
static int by_score(const void *a, const void *b)
{
	int i = *(const int *)a, j = *(const int *)b;
	float x = sort_keys[i], y = sort_keys[j];
	return x < y ? -1 : x > y ? 1 : (i > j) - (i < j);
}

/* The ids of scores[V] in ascending order of score into idx[V]. */
static void sort_ids(const float *scores, int V, int *idx)
{
	for (int i = 0; i < V; i++)
		idx[i] = i;
	sort_keys = scores;
	qsort(idx, (size_t)V, sizeof(*idx), by_score);
}

static void top_k(float *scores, int V, int k, int *idx)
{
	float kth;

	if (k <= 0 || k >= V)
		return;
	sort_ids(scores, V, idx);
	kth = scores[idx[V - k]];
	for (int i = 0; i < V; i++)
		if (scores[i] < kth)
			scores[i] = -INFINITY;
}

/* HF: sort ascending, cumulative softmax, remove where it is <= 1 - top_p,
 * keeping the largest. */
static void top_p(float *scores, int V, double p, int *idx, double *prob)
{
	double cum = 0.0;

	if (p >= 1.0)
		return;
	sort_ids(scores, V, idx);
	softmax(scores, V, prob);
	for (int i = 0; i < V - 1; i++) {
		cum += prob[idx[i]];
		if (cum <= 1.0 - p)
			scores[idx[i]] = -INFINITY;
		else
			break;
	}
}

static void min_p(float *scores, int V, double mp, double *prob)
{
	double top = 0.0;
	int best = 0;

	if (mp <= 0.0)
		return;
	softmax(scores, V, prob);
	for (int i = 0; i < V; i++)
		if (prob[i] > top) {
			top = prob[i];
			best = i;
		}
	for (int i = 0; i < V; i++)
		if (i != best && prob[i] < mp * top)
			scores[i] = -INFINITY;
}

void tk_gen_process(const struct tk_gen_opts *o, float *scores, int V, const uint32_t *ctx,
		    size_t n_ctx)
{
	int *idx = NULL;
	double *prob = NULL;

	if (o->repetition_penalty != 1.0) {
		float pen = (float)o->repetition_penalty;
		unsigned char *seen = calloc((size_t)V, 1);

		for (size_t i = 0; seen && i < n_ctx; i++) {
			uint32_t t = ctx[i];
			if (t >= (uint32_t)V || seen[t])
				continue;
			seen[t] = 1;
			scores[t] = scores[t] < 0 ? scores[t] * pen : scores[t] / pen;
		}
		free(seen);
	}
	if (!o->do_sample)
		return;
	if (o->temperature != 1.0) {
		float t = (float)o->temperature;
		for (int i = 0; i < V; i++)
			scores[i] /= t;
	}
	idx = malloc((size_t)V * sizeof(*idx));
	prob = malloc((size_t)V * sizeof(*prob));
	if (idx && prob) {
		top_k(scores, V, o->top_k, idx);
		top_p(scores, V, o->top_p, idx, prob);
		min_p(scores, V, o->min_p, prob);
	}
	free(idx);
	free(prob);
}

uint32_t tk_gen_pick(const struct tk_gen_opts *o, const float *scores, int V, struct tk_rng *r)
{
	int best = 0;
	float mx = -INFINITY;
	double sum = 0.0, u, cum = 0.0;

	for (int i = 0; i < V; i++)
		if (scores[i] > mx) {
			mx = scores[i];
			best = i;
		}
	if (!o->do_sample)
		return (uint32_t)best;
	for (int i = 0; i < V; i++)
		if (scores[i] != -INFINITY)
			sum += exp((double)scores[i] - (double)mx);
	u = tk_rng_double(r) * sum;
	for (int i = 0; i < V; i++) {
		if (scores[i] == -INFINITY)
			continue;
		cum += exp((double)scores[i] - (double)mx);
		if (u < cum)
			return (uint32_t)i;
	}
	return (uint32_t)best;
}

static int is_eos(const struct tk_gen_opts *o, uint32_t id)
{
	for (int i = 0; i < o->n_eos; i++)
		if (o->eos[i] == (int64_t)id)
			return 1;
	return 0;
}

float tk_gen_logprob(const float *scores, int V, uint32_t id)
{
	float mx = -INFINITY;
	double sum = 0.0;

	if (id >= (uint32_t)V || scores[id] == -INFINITY)
		return -INFINITY;
	for (int i = 0; i < V; i++)
		if (scores[i] > mx)
			mx = scores[i];
	for (int i = 0; i < V; i++)
		if (scores[i] != -INFINITY)
			sum += exp((double)scores[i] - (double)mx);
	return (float)((double)scores[id] - (double)mx - log(sum));
}

void tk_gen_seq_free(struct tk_gen_seq *q)
{
	tk_ids_free(&q->out);
	free(q->logprobs);
	q->logprobs = NULL;
}

/* Appends id and its log-probability to q. */
static int seq_push(struct tk_gen_seq *q, uint32_t id, float lp)
{
	float *p = realloc(q->logprobs, (q->out.n + 1) * sizeof(float));

	if (!p)
		return TK_E_NOMEM;
	q->logprobs = p;
	p[q->out.n] = lp;
	return tk_ids_push(&q->out, id);
}

int tk_generate_batch(struct tk_infer *s, const struct tk_gen_opts *o, struct tk_gen_seq *q,
		      int n, tk_gen_token_fn on_token, void *ctx, struct tk_diag *d)
{
	int V = tk_infer_vocab(s), err = 0, ns = 0;
	float *logits = NULL;
	struct tk_rng *rng = NULL;
	struct tk_ids *all = NULL;
	struct tk_infer_span *sp = NULL;
	uint32_t *next = NULL;
	int *limit = NULL;

	if (n < 1 || n > tk_infer_n_seq(s))
		return tk_diag_set(d, TK_E_INVAL, NULL, -1, "%d sequences for a state of %d", n,
				   tk_infer_n_seq(s));
	logits = tk_mallocn((size_t)n * (size_t)V, sizeof(float));
	rng = calloc((size_t)n, sizeof(*rng));
	all = calloc((size_t)n, sizeof(*all));
	sp = calloc((size_t)n, sizeof(*sp));
	next = calloc((size_t)n, sizeof(*next));
	limit = calloc((size_t)n, sizeof(*limit));
	if (!logits || !rng || !all || !sp || !next || !limit) {
		err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
		goto done;
	}
	for (int i = 0; i < n; i++) {
		q[i].why = 0;
		limit[i] = q[i].max_new_tokens < 0 ? o->max_new_tokens : q[i].max_new_tokens;
		tk_rng_seed(&rng[i], q[i].seed);
		tk_infer_reset_seq(s, i);
		for (int j = 0; j < q[i].n_prompt; j++)
			if (tk_ids_push(&all[i], q[i].prompt[j])) {
				err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
				goto done;
			}
		if (limit[i] > 0)
			sp[ns++] = (struct tk_infer_span){ i, q[i].prompt, q[i].n_prompt };
	}
	while (ns > 0) {
		int nn = 0;

		err = tk_infer_feed_spans(s, sp, ns, logits, d);
		if (err)
			break;
		for (int k = 0; k < ns; k++) {
			int i = sp[k].seq, stop = 0;
			float *lg = logits + (size_t)k * V;
			uint32_t id;

			tk_gen_process(o, lg, V, all[i].v, all[i].n);
			id = tk_gen_pick(o, lg, V, &rng[i]);
			if (tk_ids_push(&all[i], id) || seq_push(&q[i], id, tk_gen_logprob(lg, V, id))) {
				err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
				goto done;
			}
			if (on_token && on_token(ctx, i, id, q[i].logprobs[q[i].out.n - 1]))
				stop = 3;
			else if (is_eos(o, id))
				stop = 1;
			else if (q[i].out.n >= (size_t)limit[i])
				stop = -1;
			else if (tk_infer_seq_len(s, i) >= tk_infer_max_len(s))
				stop = 2;
			if (stop) {
				q[i].why = stop < 0 ? 0 : stop;
				continue;
			}
			next[i] = id;
			sp[nn++] = (struct tk_infer_span){ i, &next[i], 1 };
		}
		ns = nn;
	}
done:
	for (int i = 0; all && i < n; i++)
		tk_ids_free(&all[i]);
	free(all);
	free(logits);
	free(rng);
	free(sp);
	free(next);
	free(limit);
	return err;
}

int tk_generate(struct tk_infer *s, const struct tk_gen_opts *o, const uint32_t *prompt,
		int n_prompt, tk_gen_token_fn on_token, void *ctx, struct tk_ids *out, int *why,
		struct tk_diag *d)
{
	struct tk_gen_seq q = { .prompt = prompt, .n_prompt = n_prompt, .max_new_tokens = -1,
				.seed = o->seed };
	int err = tk_generate_batch(s, o, &q, 1, on_token, ctx, d);

	for (size_t i = 0; i < q.out.n && !err; i++)
		if (tk_ids_push(out, q.out.v[i]))
			err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	if (why)
		*why = q.why;
	tk_gen_seq_free(&q);
	return err;
}

/* Appends the eos_token_id of the JSON file path to ids: 0 when the key is
 * absent or null, 1 when found, or an error. */
static int eos_from(const char *path, int64_t *ids, int max, int *n, struct tk_diag *d)
{
	struct tk_buf b = { 0 };
	cJSON *j, *e, *it;
	int err = tk_read_file(path, &b, d), found = 0;

	if (err)
		return err;
	j = cJSON_ParseWithLength(b.data, b.len);
	tk_buf_free(&b);
	if (!j || !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return tk_diag_set(d, TK_E_FORMAT, path, -1, "not a JSON object");
	}
	e = cJSON_GetObjectItemCaseSensitive(j, "eos_token_id");
	if (cJSON_IsNumber(e)) {
		if (*n < max)
			ids[(*n)++] = (int64_t)e->valuedouble;
		found = 1;
	} else if (cJSON_IsArray(e)) {
		cJSON_ArrayForEach(it, e) {
			if (!cJSON_IsNumber(it)) {
				cJSON_Delete(j);
				return tk_diag_set(d, TK_E_FORMAT, path, -1,
						   "eos_token_id: a list of numbers expected");
			}
			if (*n < max)
				ids[(*n)++] = (int64_t)it->valuedouble;
		}
		found = 1;
	} else if (e && !cJSON_IsNull(e)) {
		cJSON_Delete(j);
		return tk_diag_set(d, TK_E_FORMAT, path, -1,
				   "eos_token_id: a number or a list of numbers expected");
	}
	cJSON_Delete(j);
	return found;
}

int tk_gen_eos_ids(const char *dir, int64_t *ids, int max, int *n, struct tk_diag *d)
{
	char path[4096];
	int rc;

	*n = 0;
	snprintf(path, sizeof(path), "%s/generation_config.json", dir);
	if (access(path, F_OK) == 0) {
		rc = eos_from(path, ids, max, n, d);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	snprintf(path, sizeof(path), "%s/config.json", dir);
	rc = eos_from(path, ids, max, n, d);
	return rc < 0 ? rc : 0;
}

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

/* generate.c - decoding as transformers' generate() (see generate.h). */
/* Without trapping math GCC if-converts tk_expf_poly's clamps and so
 * vectorizes tk_generate_logprob's loop (as in backend-cpu.c); nothing
 * here reads floating-point exception flags. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "jobs/generate.h"
#include "base/math-common.h"
#include "compute/cpu.h"

void tk_generate_opts_init(struct tk_generate_opts *o)
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

void tk_generate_process(const struct tk_generate_opts *o, float *scores, int V, const uint32_t *ctx,
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

uint32_t tk_generate_pick(const struct tk_generate_opts *o, const float *scores, int V, struct tk_rng *r)
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

static int is_eos(const struct tk_generate_opts *o, uint32_t id)
{
	for (int i = 0; i < o->n_eos; i++)
		if (o->eos[i] == (int64_t)id)
			return 1;
	return 0;
}

/* *mx = the largest of s[0 .. V), and the sum of exp(s[i] - *mx): the
 * exponentials in float (tk_expf_poly, within 2 ulp, 0 for removed
 * tokens: loops that vectorize), summed in double; an AVX2 copy where the
 * CPU runs it (TK_CPU_ISA). */
#define EXPSUM_BODY                                                          \
	{                                                                    \
		float m = -INFINITY;                                         \
		double sum = 0.0;                                            \
		_Pragma("omp simd reduction(max : m)")                       \
		for (int i = 0; i < V; i++)                                  \
			m = s[i] > m ? s[i] : m;                             \
		_Pragma("omp simd reduction(+ : sum)")                       \
		for (int i = 0; i < V; i++)                                  \
			sum += (double)tk_expf_poly(s[i] - m);               \
		*mx = m;                                                     \
		return sum;                                                  \
	}
static double expsum(const float *s, int V, float *mx) EXPSUM_BODY
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static double expsum_avx2(const float *s, int V, float *mx)
	EXPSUM_BODY
#endif

/* Every generated token's, so it must be cheap: libm's exp in double took
 * 0.3-0.5 ms a step for a 49152-token vocabulary on the 2-core Zen 3 here,
 * 3-5% of a 135M model's NF4 decode step. */
float tk_generate_logprob(const float *scores, int V, uint32_t id)
{
	float mx;
	double sum;

	if (id >= (uint32_t)V || scores[id] == -INFINITY)
		return -INFINITY;
#if defined(__x86_64__) && defined(__GNUC__)
	if (tk_cpu_isa() >= TK_CPU_ISA_AVX2)
		sum = expsum_avx2(scores, V, &mx);
	else
#endif
		sum = expsum(scores, V, &mx);
	return (float)((double)scores[id] - (double)mx - log(sum));
}

void tk_generate_seq_free(struct tk_generate_seq *q)
{
	tk_ids_free(&q->out);
	free(q->logprobs);
	q->logprobs = NULL;
}

/* Appends id and its log-probability to q. */
static int seq_push(struct tk_generate_seq *q, uint32_t id, float lp)
{
	float *p = realloc(q->logprobs, (q->out.n + 1) * sizeof(float));

	if (!p)
		return TK_E_NOMEM;
	q->logprobs = p;
	p[q->out.n] = lp;
	return tk_ids_push(&q->out, id);
}

/* Seconds on the monotonic clock. */
static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int tk_generate_batch(struct tk_infer *s, const struct tk_generate_opts *o, struct tk_generate_seq *q,
		      int n, tk_generate_token_fn on_token, void *ctx, struct tk_diag *d)
{
	int V = tk_infer_vocab(s), err = 0, ns = 0, redo = tk_infer_recompute_len(s);
	float *logits = NULL;
	struct tk_rng *rng = NULL;
	struct tk_ids *all = NULL;
	struct tk_infer_span *sp = NULL;
	uint32_t *next = NULL;
	int *limit = NULL, pass = 0;
	long fed = 0, later = 0;
	double t0 = 0, t1 = 0;

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
		if (limit[i] > 0) {
			sp[ns++] = (struct tk_infer_span){ i, q[i].prompt, q[i].n_prompt };
			fed += q[i].n_prompt;
		}
	}
	t0 = now_s();
	while (ns > 0) {
		int nn = 0;

		err = tk_infer_feed_spans(s, sp, ns, logits, d);
		if (err)
			break;
		for (int k = 0; k < ns; k++) {
			int i = sp[k].seq, stop = 0;
			float *lg = logits + (size_t)k * V;
			uint32_t id;

			tk_generate_process(o, lg, V, all[i].v, all[i].n);
			id = tk_generate_pick(o, lg, V, &rng[i]);
			if (tk_ids_push(&all[i], id) || seq_push(&q[i], id, tk_generate_logprob(lg, V, id))) {
				err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
				goto done;
			}
			later += pass > 0;
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
			if (redo > 0 && all[i].n >= (size_t)redo && tk_infer_seq_len(s, i) < redo) {
				/* Phi-3: the whole sequence again, on an empty cache */
				tk_infer_reset_seq(s, i);
				sp[nn++] = (struct tk_infer_span){ i, all[i].v, (int)all[i].n };
				continue;
			}
			sp[nn++] = (struct tk_infer_span){ i, &next[i], 1 };
		}
		ns = nn;
		if (!pass++)
			t1 = now_s();
	}
done:
	if (o->stats && pass > 0) {
		double t2 = now_s();

		o->stats->prompt_tokens += fed;
		o->stats->prompt_s += (t1 > 0 ? t1 : t2) - t0;
		o->stats->decode_tokens += later;
		o->stats->decode_s += t1 > 0 ? t2 - t1 : 0;
	}
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

int tk_generate(struct tk_infer *s, const struct tk_generate_opts *o, const uint32_t *prompt,
		int n_prompt, tk_generate_token_fn on_token, void *ctx, struct tk_ids *out, int *why,
		struct tk_diag *d)
{
	struct tk_generate_seq q = { .prompt = prompt, .n_prompt = n_prompt, .max_new_tokens = -1,
				.seed = o->seed };
	int err = tk_generate_batch(s, o, &q, 1, on_token, ctx, d);

	for (size_t i = 0; i < q.out.n && !err; i++)
		if (tk_ids_push(out, q.out.v[i]))
			err = tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	if (why)
		*why = q.why;
	tk_generate_seq_free(&q);
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

int tk_generate_eos_ids(const char *dir, int64_t *ids, int max, int *n, struct tk_diag *d)
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

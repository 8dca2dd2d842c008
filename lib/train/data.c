/* data.c - see data.h. */
#include "train/data.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "base/afile.h"
#include "base/path.h"
#include "text/tokenizer.h"

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The SPLIT-*.tks files of dir, sorted; *n = 0 when there are none. */
static int list_split(const char *dir, const char *split, char ***out, size_t *n,
		      struct tk_diag *d)
{
	DIR *dp = opendir(dir);
	if (!dp)
		return tk_diag_sys(d, dir, "cannot open directory");
	char **v = NULL;
	size_t cap = 0, len = strlen(split);
	int rc = 0;
	*n = 0;
	struct dirent *e;
	while ((e = readdir(dp))) {
		size_t nl = strlen(e->d_name);
		if (strncmp(e->d_name, split, len) || e->d_name[len] != '-' || nl < len + 5 ||
		    strcmp(e->d_name + nl - 4, ".tks"))
			continue;
		if ((rc = tk_grow(&v, &cap, *n + 1, sizeof(*v))))
			break;
		if (!(v[*n] = tk_path_dup_join(dir, e->d_name))) {
			rc = TK_E_NOMEM;
			break;
		}
		(*n)++;
	}
	closedir(dp);
	if (rc) {
		for (size_t i = 0; i < *n; i++)
			free(v[i]);
		free(v);
		return tk_diag_set(d, rc, dir, -1, "out of memory");
	}
	if (*n)
		qsort(v, *n, sizeof(*v), by_name);
	*out = v;
	return 0;
}

static int add_record(struct tk_data *dt, const struct tk_record *rec, size_t *cap_ids,
		      size_t *cap_mask)
{
	uint64_t at = dt->n_blocks * dt->seq_len;
	if (tk_grow(&dt->ids, cap_ids, at + dt->seq_len, sizeof(*dt->ids)))
		return TK_E_NOMEM;
	memcpy(dt->ids + at, rec->ids, (size_t)rec->n * sizeof(*rec->ids));
	int partial = rec->mask != NULL;
	if (partial && !dt->mask) { /* the first masked block: earlier ones count whole */
		if (tk_grow(&dt->mask, cap_mask, at + dt->seq_len, 1))
			return TK_E_NOMEM;
		if (at)
			memset(dt->mask, 1, at);
	}
	if (dt->mask) {
		if (tk_grow(&dt->mask, cap_mask, at + dt->seq_len, 1))
			return TK_E_NOMEM;
		if (partial)
			memcpy(dt->mask + at, rec->mask, rec->n);
		else
			memset(dt->mask + at, 1, rec->n);
	}
	uint64_t counted = rec->n;
	if (partial) {
		counted = 0;
		for (uint64_t i = 0; i < rec->n; i++)
			counted += rec->mask[i] != 0;
	}
	dt->tokens_in_loss += counted;
	dt->n_blocks++;
	return 0;
}

/* Reads every shard in fp (one or several in a row) into dt. */
static int read_stream(struct tk_data *dt, FILE *fp, const char *name, size_t *cap_ids,
		       size_t *cap_mask, struct tk_diag *d)
{
	for (;;) {
		tk_shard_reader_t *r;
		int rc = tk_shard_reader_open(&r, fp, name, d);
		if (rc)
			return rc;
		const struct tk_shard_info *in = tk_shard_reader_info(r);
		if (in->kind != TK_SHARD_BLOCKS) {
			tk_shard_reader_free(r);
			return tk_diag_set(d, TK_E_MISMATCH, name, -1,
					   "holds documents, not training blocks (run tk-pack "
					   "first)");
		}
		if (dt->n_shards == 0) {
			dt->info = *in;
			dt->seq_len = in->seq_len;
		} else if (strcmp(in->fingerprint, dt->info.fingerprint) ||
			   in->seq_len != dt->seq_len) {
			rc = tk_diag_set(d, TK_E_MISMATCH, name, -1,
					 "blocks of %u tokens from tokenizer %s do not go with "
					 "the earlier ones (%u tokens, tokenizer %s)",
					 in->seq_len, in->fingerprint, dt->seq_len,
					 dt->info.fingerprint);
			tk_shard_reader_free(r);
			return rc;
		}
		dt->n_shards++;
		struct tk_record rec;
		while ((rc = tk_shard_read(r, &rec, d)) == 1)
			if ((rc = add_record(dt, &rec, cap_ids, cap_mask))) {
				tk_diag_set(d, rc, name, -1, "out of memory loading blocks");
				break;
			}
		tk_shard_reader_free(r);
		if (rc < 0)
			return rc;
		if ((rc = tk_shard_more(fp, name, d)) <= 0)
			return rc;
	}
}

/* A FILE that copies what is read from in to the spill file. */
struct tee {
	FILE *in;
	FILE *copy;
};

static ssize_t tee_read(void *c, char *buf, size_t n)
{
	struct tee *t = c;
	size_t got = fread(buf, 1, n, t->in);
	if (got && fwrite(buf, 1, got, t->copy) != got)
		return -1;
	return (ssize_t)got;
}

int tk_data_load(struct tk_data *dt, const char *path, const char *split, int optional,
		 const char *spill_path, struct tk_diag *d)
{
	memset(dt, 0, sizeof(*dt));
	size_t cap_ids = 0, cap_mask = 0;
	int rc = 0;
	struct stat st;
	if (!strcmp(path, "-")) {
		struct tk_afile spill = { 0 };
		FILE *fp = stdin;
		struct tee t = { stdin, NULL };
		if (spill_path) {
			if ((rc = tk_afile_open(&spill, spill_path, 1, d)))
				return rc;
			t.copy = spill.fp;
			cookie_io_functions_t io = { .read = tee_read };
			if (!(fp = fopencookie(&t, "r", io))) {
				tk_afile_abort(&spill);
				return tk_diag_sys(d, "<stdin>", "cannot read");
			}
		}
		rc = read_stream(dt, fp, "<stdin>", &cap_ids, &cap_mask, d);
		if (spill_path) {
			fclose(fp);
			rc = rc ? rc : tk_afile_commit(&spill, d);
			if (rc)
				tk_afile_abort(&spill);
		}
	} else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		char **files = NULL;
		size_t n = 0;
		if ((rc = list_split(path, split, &files, &n, d)))
			return rc;
		if (n == 0 && !optional)
			rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
					 "no %s-*.tks blocks in this directory (made by tk-pack -o?)",
					 split);
		for (size_t i = 0; i < n && !rc; i++) {
			FILE *fp = fopen(files[i], "rb");
			if (!fp) {
				rc = tk_diag_sys(d, files[i], "cannot open");
				break;
			}
			rc = read_stream(dt, fp, files[i], &cap_ids, &cap_mask, d);
			fclose(fp);
		}
		for (size_t i = 0; i < n; i++)
			free(files[i]);
		free(files);
	} else {
		FILE *fp = fopen(path, "rb");
		if (!fp)
			return tk_diag_sys(d, path, "cannot open");
		rc = read_stream(dt, fp, path, &cap_ids, &cap_mask, d);
		fclose(fp);
	}
	if (!rc && dt->n_shards && dt->n_blocks == 0 && !optional)
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "holds no %s blocks", split);
	if (rc)
		tk_data_free(dt);
	return rc;
}

const char *tk_data_eval_split(const char *path)
{
	char **files = NULL;
	size_t n = 0;
	if (!tk_path_is_dir(path))
		return "train";
	if (list_split(path, "eval", &files, &n, NULL))
		return "eval"; /* tk_data_load says what is wrong */
	for (size_t i = 0; i < n; i++)
		free(files[i]);
	free(files);
	return n ? "eval" : "train";
}

int tk_data_init_vocab(struct tk_model_config *c, const char *path, const char *tok, int *taken,
		       struct tk_diag *d)
{
	char p[4096];
	struct tk_buf b = { 0 };
	int rc;
	*taken = 0;
	if (tk_path_is_dir(path) ? tk_path_join(p, sizeof(p), path, "config.json")
				 : (size_t)snprintf(p, sizeof(p), "%s", path) >= sizeof(p))
		return tk_diag_set(d, TK_E_INVAL, path, -1, "path too long");
	if ((rc = tk_read_file(p, &b, d)))
		return rc;
	cJSON *j = cJSON_ParseWithLength(b.data ? b.data : "", b.len);
	int has = cJSON_GetObjectItemCaseSensitive(j, "vocab_size") != NULL;
	cJSON_Delete(j);
	tk_buf_free(&b);
	if (has || !tok)
		return 0; /* (tk_config_load read the same file) */
	tk_tokenizer_t *t;
	if ((rc = tk_tokenizer_load(&t, tok, d)))
		return rc == TK_E_INVAL ? TK_E_FORMAT : rc;
	c->vocab_size = (int)tk_tokenizer_vocab_size(t);
	tk_tokenizer_free(t);
	*taken = 1;
	return 0;
}

void tk_data_free(struct tk_data *dt)
{
	free(dt->ids);
	free(dt->mask);
	memset(dt, 0, sizeof(*dt));
}

int tk_data_check(const struct tk_data *dt, const char *name, const char *fingerprint,
		  uint32_t vocab_size, struct tk_diag *d)
{
	if (!dt->n_blocks)
		return 0;
	if (fingerprint && strcmp(fingerprint, dt->info.fingerprint))
		return tk_diag_set(d, TK_E_MISMATCH, name, -1,
				   "blocks were made with tokenizer %s, the model's tokenizer is "
				   "%s (tokenize the data with the model's tokenizer)",
				   dt->info.fingerprint, fingerprint);
	if (dt->info.vocab_size > vocab_size) {
		uint64_t n = dt->n_blocks * dt->seq_len;
		for (uint64_t i = 0; i < n; i++)
			if (dt->ids[i] >= vocab_size)
				return tk_diag_set(d, TK_E_MISMATCH, name, -1,
						   "token id %u is beyond the model's vocabulary "
						   "of %u (tokenizer vocab %u)", dt->ids[i],
						   vocab_size, dt->info.vocab_size);
	}
	return 0;
}

int tk_data_order(const struct tk_data *dt, uint64_t seed, uint64_t epoch, int shuffle,
		  uint64_t **order)
{
	uint64_t n = dt->n_blocks;
	uint64_t *o = tk_mallocn(n ? n : 1, sizeof(*o));
	if (!o)
		return TK_E_NOMEM;
	for (uint64_t i = 0; i < n; i++)
		o[i] = i;
	uint64_t s = seed ^ (0xd1b54a32d192ed03ULL * (epoch + 1));
	for (uint64_t i = n; shuffle && i > 1; i--) {
		/* unbiased index below i (Lemire's rejection) */
		uint64_t x, lim = -i % i;
		do
			x = tk_splitmix64(&s);
		while (x < lim);
		uint64_t j = x % i, t = o[i - 1];
		o[i - 1] = o[j];
		o[j] = t;
	}
	*order = o;
	return 0;
}

void tk_data_batch(const struct tk_data *dt, const uint64_t *order, uint64_t first, int n,
		   uint32_t *ids, int32_t *labels)
{
	uint32_t T = dt->seq_len;
	for (int b = 0; b < n; b++) {
		uint64_t blk = order[first + (uint64_t)b];
		const uint32_t *src = dt->ids + blk * T;
		const uint8_t *m = dt->mask ? dt->mask + blk * T : NULL;
		memcpy(ids + (size_t)b * T, src, (size_t)T * sizeof(*ids));
		for (uint32_t t = 0; t < T; t++)
			labels[(size_t)b * T + t] = m && !m[t] ? -100 : (int32_t)src[t];
	}
}

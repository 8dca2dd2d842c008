/* driver.c - runs a fuzz target without libFuzzer, for `make test`.
 *
 *	fuzz-NAME [-n ITERATIONS] [-s SEED] SEED_FILE_OR_DIR...
 *
 * Feeds every seed file to LLVMFuzzerTestOneInput, then ITERATIONS inputs
 * made by seeded random mutations of the seeds (bit flips, byte sets,
 * inserts, deletes, cuts, splices of two seeds), so a run is repeatable.
 * A target reports a bug by crashing or aborting; the sanitizer builds
 * (make asan, make ubsan) catch memory errors too.  `make fuzz` builds the
 * same targets with libFuzzer for coverage-guided runs.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seed {
	uint8_t *p;
	size_t n;
};

static struct seed *seeds;
static size_t nseeds;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void add_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(2);
	}
	struct seed s = { 0 };
	size_t cap = 0;
	int c;
	while ((c = getc(f)) != EOF) {
		if (s.n == cap) {
			cap = cap ? cap * 2 : 4096;
			s.p = realloc(s.p, cap);
		}
		s.p[s.n++] = (uint8_t)c;
	}
	fclose(f);
	seeds = realloc(seeds, (nseeds + 1) * sizeof(*seeds));
	seeds[nseeds++] = s;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		DIR *dp = opendir(path);
		struct dirent *e;
		char **names = NULL;
		size_t n = 0;
		while (dp && (e = readdir(dp)))
			if (e->d_name[0] != '.') {
				names = realloc(names, (n + 1) * sizeof(*names));
				names[n] = malloc(strlen(path) + strlen(e->d_name) + 2);
				sprintf(names[n++], "%s/%s", path, e->d_name);
			}
		if (dp)
			closedir(dp);
		qsort(names, n, sizeof(*names), by_name);
		for (size_t i = 0; i < n; i++) {
			add_file(names[i]);
			free(names[i]);
		}
		free(names);
	} else {
		add_file(path);
	}
}

static size_t mutate(uint8_t **buf, size_t *cap, const struct seed *s)
{
	size_t n = s->n;
	if (*cap < n + 64) {
		*cap = n + 64;
		*buf = realloc(*buf, *cap);
	}
	memcpy(*buf, s->p, n);
	int rounds = 1 + (int)(next() % 4);
	for (int r = 0; r < rounds; r++) {
		uint8_t *b = *buf;
		size_t at = n ? next() % n : 0;
		switch (next() % 6) {
		case 0: /* flip a bit */
			if (n)
				b[at] ^= (uint8_t)(1u << (next() % 8));
			break;
		case 1: /* set a byte to an interesting value */
			if (n) {
				static const uint8_t v[] = { 0, 0xff, 0x7f, 0x80, '"', '\n', ',', '{' };
				b[at] = v[next() % sizeof(v)];
			}
			break;
		case 2: /* insert a byte */
			if (n + 1 < *cap) {
				memmove(b + at + 1, b + at, n - at);
				b[at] = (uint8_t)next();
				n++;
			}
			break;
		case 3: /* delete a run */
			if (n) {
				size_t len = 1 + next() % 16;
				if (len > n - at)
					len = n - at;
				memmove(b + at, b + at + len, n - at - len);
				n -= len;
			}
			break;
		case 4: /* cut short */
			n = at;
			break;
		default: { /* splice the tail of another seed */
			const struct seed *o = &seeds[next() % nseeds];
			size_t from = o->n ? next() % o->n : 0, len = o->n - from;
			if (at + len > *cap) {
				*cap = at + len + 64;
				*buf = realloc(*buf, *cap);
				b = *buf;
			}
			memcpy(b + at, o->p + from, len);
			n = at + len;
		}
		}
	}
	return n;
}

int main(int argc, char **argv)
{
	long iterations = 1000;
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			iterations = strtol(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "-s") && i + 1 < argc)
			rng ^= strtoull(argv[++i], NULL, 10) * 0x2545f4914f6cdd1dULL;
		else {
			fprintf(stderr, "usage: %s [-n ITERATIONS] [-s SEED] SEED...\n", name);
			return 2;
		}
	}
	for (; i < argc; i++)
		add_path(argv[i]);
	if (!nseeds) {
		fprintf(stderr, "%s: no seeds\n", name);
		return 2;
	}
	for (size_t k = 0; k < nseeds; k++)
		LLVMFuzzerTestOneInput(seeds[k].p, seeds[k].n);
	uint8_t *buf = NULL;
	size_t cap = 0;
	for (long k = 0; k < iterations; k++) {
		size_t n = mutate(&buf, &cap, &seeds[next() % nseeds]);
		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("PASS %s: %zu seeds and %ld mutated inputs\n", name, nseeds, iterations);
	for (size_t k = 0; k < nseeds; k++)
		free(seeds[k].p);
	free(seeds);
	free(buf);
	return 0;
}

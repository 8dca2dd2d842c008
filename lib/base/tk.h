/* tk.h - error codes and diagnostics shared by every lib module.
 *
 * Library functions return 0 on success or a negative enum tk_err.  They
 * never print and never exit; where the caller wants to know which file,
 * line or byte offset was at fault, it passes a struct tk_diag that the
 * function fills in.  Tools turn the pair into a message and an exit code
 * (see cli.h).
 */
#ifndef TK_TK_H
#define TK_TK_H

/* tk's version: --version prints it */
#define TK_VERSION "0.1.0"

#include <stddef.h>
#include <stdint.h>

enum tk_err {
	TK_OK = 0,
	TK_E_IO = -1,          /* a system call failed (errno kept in diag) */
	TK_E_FORMAT = -2,      /* input data is malformed */
	TK_E_NOMEM = -3,       /* allocation failed */
	TK_E_DEVICE = -4,      /* accelerator call failed */
	TK_E_UNSUPPORTED = -5, /* valid input that tk does not handle */
	TK_E_INVAL = -6,       /* bad argument or option value */
	TK_E_MISMATCH = -7,    /* inputs that do not belong together */
	TK_E_CHECKSUM = -8,    /* stored checksum does not match the data */
	TK_E_EXISTS = -9,      /* output exists and overwriting was not asked */
};

/* Where and why something failed.  path may be empty; line and offset are
 * -1 when unknown; sys_errno is 0 unless a system call failed. */
struct tk_diag {
	char path[1024];
	long long line;
	long long offset;
	int sys_errno;
	char msg[1024];
};

/* Returns a static, lowercase description of an error code. */
const char *tk_strerror(int err);

/* Resets d (which may be NULL) to "nothing known". */
void tk_diag_clear(struct tk_diag *d);

/* Records path (may be NULL), line (-1 if none) and a printf-style message
 * in d (which may be NULL) and returns err, so a failing path reads
 * `return tk_diag_set(d, TK_E_FORMAT, path, line, "...", ...);`. */
int tk_diag_set(struct tk_diag *d, int err, const char *path, long long line,
		const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* As tk_diag_set for a failed system call: keeps errno in d->sys_errno and
 * returns TK_E_IO. */
int tk_diag_sys(struct tk_diag *d, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Copies src to dst (of n > 0 bytes, always NUL-terminated, cut short if
 * it does not fit) with control characters made visible, so that a file
 * name cannot break a message or drive the terminal: \n, \r, \t as
 * themselves, other bytes below 0x20 and 0x7f as \xHH (ESC is \x1b), and
 * the C1 controls U+0080..U+009F (UTF-8 c2 80..c2 9f) as \xc2\xHH.
 * Other bytes, backslash included, are copied.  Returns the length that
 * the escaped text needs (as snprintf: a result >= n means it was cut). */
size_t tk_str_escape(char *dst, size_t n, const char *src);

/* Memory helpers that return NULL on failure like their libc twins, with
 * overflow-checked sizes. */
void *tk_mallocn(size_t n, size_t size);
void *tk_reallocn(void *p, size_t n, size_t size);

/* Grows the array *pp (of *cap elements of size sz) to hold at least n,
 * doubling, never shrinking.  Returns 0 or TK_E_NOMEM (the array is then
 * unchanged). */
int tk_grow(void *pp, size_t *cap, size_t n, size_t sz);

/* Growable byte buffer. */
struct tk_buf {
	char *data;
	size_t len, cap;
};
int tk_buf_reserve(struct tk_buf *b, size_t extra);
int tk_buf_append(struct tk_buf *b, const void *p, size_t n);
void tk_buf_free(struct tk_buf *b);

/* Reads a whole file (path "-" means stdin) into *out (NUL-terminated,
 * caller frees out->data). */
int tk_read_file(const char *path, struct tk_buf *out, struct tk_diag *d);

/* 64-bit FNV-1a, for fingerprints (not for security). */
uint64_t tk_fnv1a64(uint64_t h, const void *p, size_t n);
#define TK_FNV1A64_INIT 0xcbf29ce484222325ULL

/* tk's random numbers, the same on every machine and thread count:
 * xoshiro256** seeded through splitmix64 (not torch's generator). */
struct tk_rng {
	uint64_t s[4];
};
/* splitmix64: advances *x and returns the next value (also a seeder). */
uint64_t tk_splitmix64(uint64_t *x);
void tk_rng_seed(struct tk_rng *r, uint64_t seed);
uint64_t tk_rng_next(struct tk_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double tk_rng_double(struct tk_rng *r);

/* CRC-32C (Castagnoli) of n bytes, continuing from crc (start with 0). */
uint32_t tk_crc32c(uint32_t crc, const void *p, size_t n);

#endif

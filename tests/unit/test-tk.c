/* test-tk.c - diagnostics, buffers, hashes and atomic outputs (tk.c, afile.c). */
#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/afile.h"
#include "base/tk.h"
#include "tt.h"

static void test_hashes(void)
{
	/* Published check values: CRC-32C("123456789") = 0xe3069283 (RFC 3720
	 * appendix B.4); FNV-1a 64 of "a" = 0xaf63dc4c8601ec8c (Fowler/Noll/Vo). */
	TT_CHECK(tk_crc32c(0, "123456789", 9) == 0xe3069283u, "crc %08x", tk_crc32c(0, "123456789", 9));
	uint32_t part = tk_crc32c(0, "1234", 4);
	TT_CHECK(tk_crc32c(part, "56789", 5) == 0xe3069283u, "incremental");
	TT_CHECK(tk_fnv1a64(TK_FNV1A64_INIT, "a", 1) == 0xaf63dc4c8601ec8cULL, "fnv");
}

static void test_diag(void)
{
	struct tk_diag d;
	int rc = tk_diag_set(&d, TK_E_FORMAT, "a.csv", 17, "unterminated %s", "quote");
	TT_CHECK(rc == TK_E_FORMAT && d.line == 17 && !strcmp(d.path, "a.csv"), "set");
	TT_CHECK(!strcmp(d.msg, "unterminated quote"), "%s", d.msg);
	TT_CHECK(tk_diag_set(NULL, TK_E_IO, NULL, -1, "x") == TK_E_IO, "NULL diag");
	TT_CHECK(strcmp(tk_strerror(TK_E_CHECKSUM), "checksum mismatch") == 0, "strerror");
}

static void test_escape(void)
{
	char out[64];
	size_t n = tk_str_escape(out, sizeof(out), "a\nb\r\t\033[2J\x7f\x01\\ \xc2\x9b\xc3\xa9");
	const char *want = "a\\nb\\r\\t\\x1b[2J\\x7f\\x01\\ \\xc2\\x9b\xc3\xa9";
	TT_CHECK(!strcmp(out, want) && n == strlen(want), "%s (%zu)", out, n);
	/* cut short: still terminated, the needed length returned */
	n = tk_str_escape(out, 5, "ab\ncd");
	TT_CHECK(!strcmp(out, "ab\\n") && n == 6, "%s %zu", out, n);
	n = tk_str_escape(out, 4, "ab\ncd");
	TT_CHECK(!strcmp(out, "ab\\") && n == 6, "%s %zu", out, n);
	TT_CHECK(tk_str_escape(out, sizeof(out), "") == 0 && !out[0], "empty");
	/* a lone 0xc2 at the end is copied, not read past */
	TT_CHECK(tk_str_escape(out, sizeof(out), "x\xc2") == 2 && !strcmp(out, "x\xc2"), "c2");
}

static void test_buf(void)
{
	struct tk_buf b = { 0 };
	for (int i = 0; i < 10000; i++)
		TT_REQUIRE(tk_buf_append(&b, "abc", 3) == 0, "append");
	TT_CHECK(b.len == 30000 && b.data[b.len] == 0 && !memcmp(b.data + 29997, "abc", 3), "buf");
	tk_buf_free(&b);
	TT_CHECK(tk_mallocn(SIZE_MAX / 2, 3) == NULL, "overflow not caught");
}

static void test_afile_commit_and_abort(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/out.bin", tt_tmpdir());
	struct tk_afile f;
	struct tk_diag d;
	TT_REQUIRE(tk_afile_open(&f, path, 0, &d) == 0, "%s", d.msg);
	fputs("hello", f.fp);
	TT_CHECK(access(path, F_OK) != 0, "final name visible before commit");
	TT_REQUIRE(tk_afile_commit(&f, &d) == 0, "%s", d.msg);
	TT_CHECK(access(path, F_OK) == 0, "not renamed into place");
	int rc = tk_afile_open(&f, path, 0, &d);
	TT_CHECK(rc == TK_E_EXISTS && strstr(d.msg, "--force"), "%d %s", rc, d.msg);
	TT_REQUIRE(tk_afile_open(&f, path, 1, &d) == 0, "%s", d.msg);
	fputs("partial", f.fp);
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s", f.tmp);
	tk_afile_abort(&f);
	TT_CHECK(access(tmp, F_OK) != 0, "temporary left behind");
	struct tk_buf b = { 0 };
	TT_REQUIRE(tk_read_file(path, &b, &d) == 0, "%s", d.msg);
	TT_CHECK(!strcmp(b.data, "hello"), "old content changed: %s", b.data);
	tk_buf_free(&b);
	rc = tk_afile_open(&f, "/nonexistent-dir/x", 0, &d);
	TT_CHECK(rc == TK_E_IO && d.sys_errno != 0, "rc %d", rc);
}

/* Devices and FIFOs are written in place, never renamed over. */
static void test_afile_devices(void)
{
	struct tk_afile f;
	struct tk_diag d;
	TT_REQUIRE(tk_afile_open(&f, "/dev/null", 0, &d) == 0, "%s", d.msg);
	fputs("discarded", f.fp);
	TT_REQUIRE(tk_afile_commit(&f, &d) == 0, "%s", d.msg);
	struct stat st;
	TT_CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode), "/dev/null is no longer a device");
	TT_CHECK(access("/dev/null.tmp-1", F_OK) != 0, "temporary");
	TT_REQUIRE(tk_afile_open(&f, "/dev/full", 1, &d) == 0, "%s", d.msg);
	for (int i = 0; i < 100000; i++)
		fputs("0123456789", f.fp);
	int rc = tk_afile_commit(&f, &d);
	TT_CHECK(rc == TK_E_IO && d.sys_errno == ENOSPC, "disk full not reported: %d", rc);
	TT_CHECK(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode), "/dev/full is no longer a device");
	rc = tk_afile_open(&f, tt_tmpdir(), 1, &d);
	TT_CHECK(rc == TK_E_INVAL && strstr(d.msg, "is a directory"), "%d %s", rc, d.msg);
}

static void test_adir(void)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/outdir", tt_tmpdir());
	struct tk_afile_dir dir;
	struct tk_diag d;
	for (int round = 0; round < 2; round++) {
		TT_REQUIRE(tk_afile_dir_open(&dir, path, round, &d) == 0, "%s", d.msg);
		char *f = tk_afile_dir_file(&dir, "a.txt");
		FILE *fp = fopen(f, "w");
		fprintf(fp, "round %d", round);
		fclose(fp);
		free(f);
		TT_REQUIRE(tk_afile_dir_commit(&dir, &d) == 0, "%s", d.msg);
	}
	char file[600];
	snprintf(file, sizeof(file), "%s/a.txt", path);
	struct tk_buf b = { 0 };
	TT_REQUIRE(tk_read_file(file, &b, &d) == 0, "%s", d.msg);
	TT_CHECK(!strcmp(b.data, "round 1"), "%s", b.data);
	tk_buf_free(&b);
	TT_CHECK(tk_afile_dir_open(&dir, path, 0, &d) == TK_E_EXISTS, "exists");
	TT_REQUIRE(tk_afile_dir_open(&dir, path, 1, &d) == 0, "%s", d.msg);
	char tmp[600];
	snprintf(tmp, sizeof(tmp), "%s", dir.tmp);
	tk_afile_dir_abort(&dir);
	TT_CHECK(access(tmp, F_OK) != 0, "temporary dir left behind");
	TT_CHECK(access(file, F_OK) == 0, "abort removed the old output");
	tk_afile_rmtree(tt_tmpdir());
}

int main(void)
{
	TT_RUN(test_hashes);
	TT_RUN(test_diag);
	TT_RUN(test_escape);
	TT_RUN(test_buf);
	TT_RUN(test_afile_commit_and_abort);
	TT_RUN(test_afile_devices);
	TT_RUN(test_adir);
	return tt_done();
}

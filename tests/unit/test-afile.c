/* test-afile.c - debris of dead runs, cleanup on a signal, the
 * input-inside-output check and the path and copy helpers of afile.c
 * (commit and abort: test-tk.c). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/afile.h"
#include "base/path.h"
#include "base/tk.h"
#include "tt.h"

static char root[512];

static const char *at(const char *name)
{
	static char p[4][700];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", root, name);
	return p[k];
}

static void touch(const char *path)
{
	FILE *fp = fopen(path, "w");
	if (fp) {
		fputs("x", fp);
		fclose(fp);
	}
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* Entries of root whose names start with prefix. */
static int count(const char *prefix)
{
	int n = 0;
	DIR *dp = opendir(root);
	struct dirent *e;
	while (dp && (e = readdir(dp)))
		n += !strncmp(e->d_name, prefix, strlen(prefix));
	if (dp)
		closedir(dp);
	return n;
}

static void test_clean_stale(void)
{
	char live[64];
	snprintf(live, sizeof(live), "out.tmp-%ld", (long)getpid());
	touch(at("out.tmp-99999999"));         /* dead: removed */
	mkdir(at("out.old-99999998"), 0755);   /* dead, a tree: removed */
	mkdir(at("out.old-99999998/sub"), 0755);
	touch(at("out.old-99999998/sub/f"));
	touch(at(live));                       /* ours: kept */
	touch(at("out.tmp-1"));                /* pid 1 lives: kept */
	touch(at("outx.tmp-99999999"));        /* another output's: kept */
	touch(at("out.tmp-99x"));              /* not a pid: kept */
	touch(at("out.tmp-"));                 /* kept */
	touch(at("out.bak-99999999"));         /* kept */
	int n = tk_afile_clean_stale(at("out"));
	TT_CHECK(n == 2, "removed %d", n);
	TT_CHECK(!exists(at("out.tmp-99999999")) && !exists(at("out.old-99999998")), "debris kept");
	TT_CHECK(exists(at(live)) && exists(at("out.tmp-1")) && exists(at("outx.tmp-99999999")) &&
			 exists(at("out.tmp-99x")) && exists(at("out.tmp-")) &&
			 exists(at("out.bak-99999999")),
		 "removed too much");
	/* a trailing slash names the same output */
	touch(at("out.tmp-99999997"));
	TT_CHECK(tk_afile_clean_stale(at("out/")) == 1 && !exists(at("out.tmp-99999997")),
		 "trailing slash");
	/* opening an output cleans up before it writes */
	touch(at("o2.tmp-99999999"));
	mkdir(at("d2.tmp-99999999"), 0755);
	touch(at("d2.tmp-99999999/train-00000.tks"));
	struct tk_afile f;
	struct tk_afile_dir dir;
	struct tk_diag d;
	TT_REQUIRE(tk_afile_open(&f, at("o2"), 0, &d) == 0, "%s", d.msg);
	tk_afile_abort(&f);
	TT_REQUIRE(tk_afile_dir_open(&dir, at("d2"), 0, &d) == 0, "%s", d.msg);
	tk_afile_dir_abort(&dir);
	TT_CHECK(count("o2") == 0 && count("d2") == 0, "open left debris: %d %d", count("o2"),
		 count("d2"));
	unlink(at(live));
}

/* A child builds outputs, then a signal kills it. */
static void killed_child(int sig)
{
	struct tk_afile_dir dir;
	struct tk_afile f, g;
	struct tk_diag d;
	if (tk_afile_dir_open(&dir, at("sigdir"), 1, &d) || tk_afile_open(&f, at("sigfile"), 1, &d))
		_exit(3);
	char *sub = tk_afile_dir_file(&dir, "nested");
	mkdir(sub, 0755);
	for (int i = 0; i < 300; i++) { /* more than one getdents buffer */
		char name[64];
		snprintf(name, sizeof(name), "nested/shard-with-a-long-name-%05d.tks", i);
		char *p = tk_afile_dir_file(&dir, name);
		touch(p);
		free(p);
	}
	free(sub);
	char *p = tk_afile_dir_file(&dir, "train-00000.tks");
	touch(p);
	free(p);
	/* an output committed and one aborted before the signal leave no trace */
	if (tk_afile_open(&g, at("sigdone"), 1, &d))
		_exit(3);
	fputs("done", g.fp);
	if (tk_afile_commit(&g, &d))
		_exit(3);
	fputs("partial", f.fp);
	fflush(f.fp);
	raise(sig);
	_exit(4); /* not reached: the signal ends the process */
}

static void test_signal_cleanup(void)
{
	int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	for (size_t k = 0; k < sizeof(sigs) / sizeof(sigs[0]); k++) {
		/* an old output directory must survive a run killed mid-way */
		mkdir(at("sigdir"), 0755);
		touch(at("sigdir/old"));
		pid_t pid = fork();
		TT_REQUIRE(pid >= 0, "fork");
		if (pid == 0)
			killed_child(sigs[k]);
		int status;
		TT_REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
		TT_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == sigs[k],
			 "signal %d: status %#x, not killed by the signal", sigs[k], status);
		TT_CHECK(count("sigfile") == 0, "signal %d: file temporary left", sigs[k]);
		TT_CHECK(count("sigdir") == 1 && exists(at("sigdir/old")),
			 "signal %d: %d sigdir* entries", sigs[k], count("sigdir"));
		TT_CHECK(count("sigdone") == 1, "committed output lost");
		tk_afile_rmtree(at("sigdir"));
		unlink(at("sigdone"));
	}
}

static void test_path_inside(void)
{
	mkdir(at("o"), 0755);
	mkdir(at("o/sub"), 0755);
	mkdir(at("elsewhere"), 0755);
	touch(at("o/sub/docs.tks"));
	touch(at("elsewhere/docs.tks"));
	TT_CHECK(tk_path_inside(at("o/sub/docs.tks"), at("o")) == 1, "file in a subdirectory");
	TT_CHECK(tk_path_inside(at("o/sub"), at("o")) == 1, "subdirectory");
	TT_CHECK(tk_path_inside(at("o"), at("o")) == 1, "the directory itself");
	TT_CHECK(tk_path_inside(at("o/../elsewhere/docs.tks"), at("o")) == 0, "..");
	TT_CHECK(tk_path_inside(at("elsewhere/docs.tks"), at("o")) == 0, "outside");
	TT_CHECK(tk_path_inside(at("o/missing.tks"), at("o")) == 0, "missing input");
	TT_CHECK(tk_path_inside(at("elsewhere/docs.tks"), at("missing")) == 0, "missing dir");
	/* a name outside that resolves inside, and a directory named by a
	 * different spelling (a symlink to it, a trailing slash) */
	TT_REQUIRE(symlink(at("o/sub/docs.tks"), at("link.tks")) == 0, "symlink");
	TT_REQUIRE(symlink(at("o"), at("olink")) == 0, "symlink");
	TT_CHECK(tk_path_inside(at("link.tks"), at("o")) == 1, "symlink into the directory");
	TT_CHECK(tk_path_inside(at("o/sub/docs.tks"), at("olink")) == 1, "directory via a symlink");
	TT_CHECK(tk_path_inside(at("o/sub/docs.tks"), at("o/")) == 1, "trailing slash");
	/* a name that merely starts like the directory's is not inside */
	mkdir(at("o2"), 0755);
	touch(at("o2/docs.tks"));
	TT_CHECK(tk_path_inside(at("o2/docs.tks"), at("o")) == 0, "string prefix");
	char cwd[512];
	TT_REQUIRE(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
	TT_REQUIRE(chdir(at("o/sub")) == 0, "chdir");
	TT_CHECK(tk_path_inside("docs.tks", "..") == 1, "relative names");
	TT_CHECK(tk_path_inside("docs.tks", "../../elsewhere") == 0, "relative names");
	TT_CHECK(chdir(cwd) == 0, "chdir back");
}

static void test_path_join(void)
{
	char buf[9];
	TT_CHECK(tk_path_join(buf, sizeof(buf), "a", "b.json") == 0 && !strcmp(buf, "a/b.json"),
		 "fits exactly: %s", buf);
	TT_CHECK(tk_path_join(buf, sizeof(buf), "ab", "b.json") == TK_E_INVAL, "one byte over");
	TT_CHECK(strlen(buf) == sizeof(buf) - 1 && !strncmp(buf, "ab/b.jso", 8),
		 "truncated and terminated: %s", buf);
	TT_CHECK(tk_path_join(buf, sizeof(buf), "", "x") == 0 && !strcmp(buf, "/x"), "empty dir");
	TT_CHECK(tk_path_join(buf, sizeof(buf), "a/", "b.json") == 0 && !strcmp(buf, "a/b.json"),
		 "no second slash: %s", buf);
	char *p = tk_path_dup_join("dir/", "x");
	TT_CHECK(p && !strcmp(p, "dir/x"), "dup, no second slash: %s", p ? p : "(null)");
	free(p);
	p = tk_path_dup_join("dir", "x");
	TT_CHECK(p && !strcmp(p, "dir/x"), "dup: %s", p ? p : "(null)");
	free(p);
}

static void test_is_dir(void)
{
	mkdir(at("d"), 0755);
	touch(at("d/f"));
	TT_REQUIRE(symlink(at("d"), at("dlink")) == 0, "symlink");
	TT_CHECK(tk_path_is_dir(at("d")) == 1, "directory");
	TT_CHECK(tk_path_is_dir(at("dlink")) == 1, "symlink to a directory");
	TT_CHECK(tk_path_is_dir(at("d/f")) == 0, "file");
	TT_CHECK(tk_path_is_dir(at("d/missing")) == 0, "missing");
	TT_REQUIRE(symlink(at("d/missing"), at("dangling")) == 0, "dangling symlink");
	TT_CHECK(tk_path_exists(at("d/f")) == 1 && tk_path_exists(at("dlink")) == 1, "exists");
	TT_CHECK(tk_path_exists(at("d/missing")) == 0, "missing: does not exist");
	TT_CHECK(tk_path_exists(at("dangling")) == 0, "dangling symlink: does not exist");
}

static void test_copy_file(void)
{
	struct tk_diag d;
	struct tk_buf b = { 0 };
	mkdir(at("c"), 0755);
	FILE *fp = fopen(at("c/src"), "wb");
	TT_REQUIRE(fp != NULL, "create src");
	for (int i = 0; i < 100000; i++)
		fputc(i * 7 & 0xff, fp);
	fclose(fp);
	touch(at("c/dst")); /* replaced */
	TT_CHECK(tk_afile_copy(at("c/src"), at("c/dst"), &d) == 0, "copy: %s", d.msg);
	TT_REQUIRE(tk_read_file(at("c/dst"), &b, &d) == 0, "read back");
	int same = b.len == 100000;
	for (size_t i = 0; same && i < b.len; i++)
		same = (unsigned char)b.data[i] == ((int)i * 7 & 0xff);
	TT_CHECK(same, "same bytes (%zu)", b.len);
	tk_buf_free(&b);
	fp = fopen(at("c/empty"), "wb");
	if (fp)
		fclose(fp);
	TT_CHECK(tk_afile_copy(at("c/empty"), at("c/empty2"), &d) == 0, "empty: %s", d.msg);
	struct stat st;
	TT_CHECK(stat(at("c/empty2"), &st) == 0 && st.st_size == 0, "empty copy");
	/* a missing source leaves the destination alone, and no temporary */
	TT_CHECK(tk_afile_copy(at("c/missing"), at("c/dst"), &d) == TK_E_IO, "missing source");
	TT_CHECK(stat(at("c/dst"), &st) == 0 && st.st_size == 100000, "destination kept");
	TT_CHECK(tk_afile_copy(at("c/src"), at("c/no/dst"), &d) == TK_E_IO, "no such directory");
	int n = 0;
	DIR *dp = opendir(at("c"));
	struct dirent *e;
	while (dp && (e = readdir(dp)))
		n += strstr(e->d_name, ".tmp-") != NULL;
	if (dp)
		closedir(dp);
	TT_CHECK(n == 0, "%d temporaries left", n);
}

int main(void)
{
	/* A shell starts a background job with SIGINT ignored, and tk rightly
	 * leaves an ignored signal alone; test_signal_cleanup needs the
	 * signals at their defaults, as an interactive shell gives them. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	snprintf(root, sizeof(root), "%s", tt_tmpdir());
	TT_RUN(test_clean_stale);
	TT_RUN(test_signal_cleanup);
	TT_RUN(test_path_inside);
	TT_RUN(test_path_join);
	TT_RUN(test_is_dir);
	TT_RUN(test_copy_file);
	tk_afile_rmtree(root);
	return tt_done();
}

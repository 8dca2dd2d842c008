/* checkpoint.c - the output directory of a training run (train-int.h):
 * its lock, the checkpoint-N directories written atomically into it and
 * their rotation, the newest complete one for a resume, and the optimizer
 * state file, optimizer.safetensors. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/afile.h"
#include "base/path.h"
#include "compute/dist.h"
#include "formats/hf-dir.h"
#include "formats/safetensors.h"
#include "model/peft.h"
#include "train/train-int.h"

/* OUT's lock (flock) for the whole run, holding the PID of its holder */
#define LOCK_NAME ".tk-train.lock"
/* an old checkpoint being removed by train_rotate(): renamed to this prefix
 * first, so that a run killed while deleting it leaves no half checkpoint
 * (the next run removes what is left) */
#define DELETING ".deleting-"

static int ckpt_path(char *buf, size_t size, const char *out, long step)
{
	int n = snprintf(buf, size, "%s/checkpoint-%ld", out, step);
	return n < 0 || (size_t)n >= size ? TK_E_INVAL : 0;
}

/* N of a "checkpoint-N" name, -1 for anything else. */
static long ckpt_step(const char *name)
{
	if (strncmp(name, "checkpoint-", 11) || !name[11])
		return -1;
	long v = 0;
	for (const char *p = name + 11; *p; p++) {
		if (*p < '0' || *p > '9' || v > 100000000000L)
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

struct ckpt_list {
	long *step;
	size_t n, cap;
};

static int list_ckpts(const char *out, struct ckpt_list *l, int stale_too, struct tk_diag *d)
{
	memset(l, 0, sizeof(*l));
	DIR *dp = opendir(out);
	if (!dp)
		return tk_diag_sys(d, out, "cannot open directory");
	struct dirent *e;
	char p[PATH_LEN];
	while ((e = readdir(dp))) {
		long s = ckpt_step(e->d_name);
		if (stale_too && !strncmp(e->d_name, DELETING "checkpoint-", strlen(DELETING) + 11)) {
			/* a rotation that was cut short */
			if (!tk_path_join(p, sizeof(p), out, e->d_name))
				tk_afile_rmtree(p);
			continue;
		}
		if (s < 0 && stale_too && !strncmp(e->d_name, "checkpoint-", 11) &&
		    (strstr(e->d_name, ".tmp-") || strstr(e->d_name, ".old-"))) {
			/* left by a run that was killed while saving */
			if (!tk_path_join(p, sizeof(p), out, e->d_name))
				tk_afile_rmtree(p);
			continue;
		}
		if (s < 0 || tk_path_join(p, sizeof(p), out, e->d_name) || !tk_path_is_dir(p))
			continue;
		if (tk_grow(&l->step, &l->cap, l->n + 1, sizeof(*l->step))) {
			closedir(dp);
			free(l->step);
			return tk_diag_set(d, TK_E_NOMEM, out, -1, "out of memory");
		}
		l->step[l->n++] = s;
	}
	closedir(dp);
	return 0;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;
	return (x > y) - (x < y);
}

/* NULL when dir holds every file a checkpoint has (trainer_state.json,
 * optimizer.safetensors, and a model or adapter), else the first missing. */
static const char *ckpt_missing(const char *dir)
{
	static const char *const need[] = { "trainer_state.json", "optimizer.safetensors", NULL };
	char p[PATH_LEN];
	for (int i = 0; need[i]; i++)
		if (tk_path_join(p, sizeof(p), dir, need[i]) || !tk_path_exists(p))
			return need[i];
	if (!tk_path_join(p, sizeof(p), dir, "adapter_config.json") && tk_path_exists(p))
		return !tk_path_join(p, sizeof(p), dir, "adapter_model.safetensors") && tk_path_exists(p)
			       ? NULL : "adapter_model.safetensors";
	if (tk_path_join(p, sizeof(p), dir, "config.json") || !tk_path_exists(p))
		return "config.json";
	if ((!tk_path_join(p, sizeof(p), dir, "model.safetensors") && tk_path_exists(p)) ||
	    (!tk_path_join(p, sizeof(p), dir, "model.safetensors.index.json") && tk_path_exists(p)))
		return NULL;
	return "model.safetensors";
}

int tk_train_latest_checkpoint(const char *out_dir, char *buf, size_t size, struct tk_diag *d)
{
	struct ckpt_list l;
	int rc = list_ckpts(out_dir, &l, 0, d);
	if (rc)
		return rc;
	long best = -1, bad = -1;
	const char *what = NULL;
	char p[PATH_LEN];
	for (size_t i = 0; i < l.n; i++) {
		if (l.step[i] <= best || ckpt_path(p, sizeof(p), out_dir, l.step[i]))
			continue;
		const char *m = ckpt_missing(p);
		if (!m)
			best = l.step[i];
		else if (l.step[i] > bad) {
			bad = l.step[i];
			what = m;
		}
	}
	free(l.step);
	if (best < 0 && bad >= 0)
		return tk_diag_set(d, TK_E_FORMAT, out_dir, -1,
				   "no complete checkpoint-N directory to resume from "
				   "(checkpoint-%ld has no %s)", bad, what);
	if (best < 0)
		return tk_diag_set(d, TK_E_FORMAT, out_dir, -1,
				   "no checkpoint-N directory to resume from");
	int n = snprintf(buf, size, "%s/checkpoint-%ld", out_dir, best);
	if (n < 0 || (size_t)n >= size)
		return tk_diag_set(d, TK_E_INVAL, out_dir, -1, "path too long");
	return 0;
}

/* Removes checkpoint-step of OUT: away under a hidden name first, so that
 * a kill while deleting leaves no checkpoint-N that is half gone. */
static int remove_ckpt(struct trainer *tr, long step, struct tk_diag *d)
{
	char p[PATH_LEN], gone[PATH_LEN];
	int n = snprintf(gone, sizeof(gone), "%s/" DELETING "checkpoint-%ld", tr->out, step);
	if (ckpt_path(p, sizeof(p), tr->out, step) || n < 0 || (size_t)n >= sizeof(gone))
		return tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
	if (tk_path_exists(gone))
		tk_afile_rmtree(gone);
	if (rename(p, gone))
		return tk_diag_sys(d, p, "cannot remove old checkpoint");
	if (tk_afile_rmtree(gone))
		return tk_diag_sys(d, gone, "cannot remove old checkpoint");
	return 0;
}

/* Removes the oldest checkpoints beyond save_total_limit. */
int train_rotate(struct trainer *tr, struct tk_diag *d)
{
	if (tr->o->save_total_limit <= 0)
		return 0;
	struct ckpt_list l;
	int rc = list_ckpts(tr->out, &l, 0, d);
	if (rc)
		return rc;
	qsort(l.step, l.n, sizeof(*l.step), cmp_long);
	int *del = calloc(l.n ? l.n : 1, sizeof(*del));
	if (!del) {
		free(l.step);
		return tk_diag_set(d, TK_E_NOMEM, NULL, -1, "out of memory");
	}
	/* the newest and the best checkpoint stay, as rotate_checkpoints keeps them */
	tk_best_rotation(l.step, l.n, tr->o->save_total_limit, tr->best_ckpt[0] ? tr->best.step : 0,
			 del);
	for (size_t i = 0; i < l.n && !rc; i++)
		if (del[i])
			rc = remove_ckpt(tr, l.step[i], d);
	free(del);
	free(l.step);
	return rc;
}

/* Creates out and the directories above it that are missing (mkdir -p);
 * top gets the first one it made ("" when out existed). */
static int mkdir_p(const char *out, char *top, size_t size, struct tk_diag *d)
{
	char p[PATH_LEN];
	top[0] = 0;
	if (snprintf(p, sizeof(p), "%s", out) >= (int)sizeof(p))
		return tk_diag_set(d, TK_E_INVAL, out, -1, "path too long");
	for (char *s = p + 1; ; s++) {
		if (*s && *s != '/')
			continue;
		char c = *s;
		*s = 0;
		if (!mkdir(p, 0755)) {
			if (!top[0])
				snprintf(top, size, "%s", p);
		} else if (errno != EEXIST || (!c && !tk_path_is_dir(p))) {
			int e = errno == EEXIST ? ENOTDIR : errno;
			errno = e;
			return tk_diag_sys(d, out, "cannot create output directory");
		}
		if (!c)
			return 0;
		*s = c;
	}
}

/* The holder's PID from the lock file fd, 0 when it has not written it yet. */
static long lock_holder(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strtol(buf, NULL, 10);
}

/* Makes OUT (mkdir -p) and takes its lock for the whole run: one run at a
 * time writes into a directory.  TK_E_EXISTS naming the PID of the run
 * that holds it.  The file is removed when the run ends (train_free); one
 * left by a killed run is taken over. */
int train_lock_output(struct trainer *tr, struct tk_diag *d)
{
	int rc;
	if (tk_path_exists(tr->out) && !tk_path_is_dir(tr->out))
		return tk_diag_set(d, TK_E_FORMAT, tr->out, -1, "not a directory");
	if ((rc = mkdir_p(tr->out, tr->created_top, sizeof(tr->created_top), d)))
		return rc;
	if (tk_path_join(tr->lock_path, sizeof(tr->lock_path), tr->out, LOCK_NAME))
		return tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
	for (int tries = 0; tries < 100; tries++) {
		struct stat a, b;
		int fd = open(tr->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return tk_diag_sys(d, tr->lock_path, "cannot create lock file");
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			int e = errno;
			long pid = e == EWOULDBLOCK ? lock_holder(fd) : 0;
			close(fd);
			if (e != EWOULDBLOCK) {
				errno = e;
				return tk_diag_sys(d, tr->lock_path, "cannot lock");
			}
			char who[48] = "";
			tr->created_top[0] = 0; /* OUT is the other run's, even if made here */
			if (pid > 0)
				snprintf(who, sizeof(who), " (pid %ld)", pid);
			return tk_diag_set(d, TK_E_EXISTS, tr->out, -1,
					   "in use by another tk-train run%s; wait for it to end or "
					   "give another --output-dir", who);
		}
		/* the run that held it may have removed the file in between:
		 * then this lock is on a file nobody else opens, take it anew */
		if (fstat(fd, &a) || stat(tr->lock_path, &b) || a.st_ino != b.st_ino ||
		    a.st_dev != b.st_dev) {
			close(fd);
			continue;
		}
		char pid[32];
		int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		if (ftruncate(fd, 0) || pwrite(fd, pid, (size_t)n, 0) != n) {
			rc = tk_diag_sys(d, tr->lock_path, "cannot write");
			close(fd);
			return rc;
		}
		tr->lock_fd = fd;
		return 0;
	}
	return tk_diag_set(d, TK_E_IO, tr->lock_path, -1, "cannot lock: removed again and again");
}

void train_unlock_output(struct trainer *tr)
{
	if (tr->lock_fd < 0)
		return;
	unlink(tr->lock_path);
	close(tr->lock_fd);
	tr->lock_fd = -1;
}

/* Makes the output directory ready: holding nothing of an earlier run
 * unless force or resuming. */
int train_prepare_output(struct trainer *tr, struct tk_diag *d)
{
	const char *out = tr->out;
	if (tr->created_top[0]) /* lock_output made it: nothing of a run in it */
		return 0;
	if (access(out, W_OK | X_OK))
		return tk_diag_sys(d, out, "cannot write to output directory");
	struct ckpt_list l;
	int rc = list_ckpts(out, &l, 1, d);
	if (rc)
		return rc;
	char p[PATH_LEN];
	int earlier = l.n > 0 || (!tk_path_join(p, sizeof(p), out, "metrics.jsonl") && tk_path_exists(p)) ||
		      (!tk_path_join(p, sizeof(p), out, "model.safetensors") && tk_path_exists(p));
	if (earlier && !tr->resume_dir[0] && !tr->o->force) {
		free(l.step);
		return tk_diag_set(d, TK_E_EXISTS, out, -1,
				   "holds an earlier run (use --force to replace it, or "
				   "--resume-from-checkpoint latest to continue it)");
	}
	if (earlier && !tr->resume_dir[0]) { /* force: a fresh run */
		for (size_t i = 0; i < l.n && !rc; i++) {
			if (ckpt_path(p, sizeof(p), out, l.step[i]) || tk_afile_rmtree(p))
				rc = tk_diag_sys(d, p, "cannot remove");
		}
		if (!rc && !tk_path_join(p, sizeof(p), out, "metrics.jsonl") && unlink(p) && errno != ENOENT)
			rc = tk_diag_sys(d, p, "cannot remove");
	}
	free(l.step);
	return rc;
}

/* Ends an optimizer.safetensors writer: __metadata__ optimizer (which
 * state it holds) and step (the global step it belongs to), then commit,
 * or free it when rc says the tensors failed.  Returns rc or the commit's. */
static int commit_optimizer(struct trainer *tr, tk_safetensors_writer_t *w, const char *optim,
			    const char *path, int rc, struct tk_diag *d)
{
	char step[32];
	snprintf(step, sizeof(step), "%ld", tr->global_step);
	if (!rc && (tk_safetensors_writer_metadata(w, "optimizer", optim) ||
		    tk_safetensors_writer_metadata(w, "step", step)))
		rc = tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	if (rc) {
		tk_safetensors_writer_free(w);
		return rc;
	}
	return tk_safetensors_writer_commit(w, path, 1, d);
}

/* optim adamw_8bit: optimizer.safetensors holds bitsandbytes' state
 * (train/adamw8.h), __metadata__ optimizer "adamw_8bit" and step. */
static int save_optimizer8(struct trainer *tr, const char *path, struct tk_diag *d)
{
	tk_safetensors_writer_t *w = NULL;
	float *tmp = NULL;
	if (tk_safetensors_writer_new(&w))
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	int rc = tk_adamw8_state_save(&tr->a8, &tr->m, tr->tp, w, &tmp, d);
	rc = commit_optimizer(tr, w, "adamw_8bit", path, rc, d); /* w points into tmp */
	free(tmp);
	return rc;
}

/* The other side of save_optimizer8, as strict as load_optimizer; closes
 * st. */
static int load_optimizer8(struct trainer *tr, tk_safetensors_t *st, const char *path,
			   struct tk_diag *d)
{
	const char *mo = tk_safetensors_metadata(st, "optimizer"), *ms = tk_safetensors_metadata(st, "step");
	char step[32];
	int rc;
	snprintf(step, sizeof(step), "%ld", tr->global_step);
	if (!mo || strcmp(mo, "adamw_8bit"))
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "__metadata__.optimizer: %s%.40s%s, not "
				 "\"adamw_8bit\" (--optim adamw_8bit resumes only its own state)",
				 mo ? "\"" : "", mo ? mo : "missing", mo ? "\"" : "");
	else if (!ms || strcmp(ms, step))
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "__metadata__.step: %s%.40s%s, not the "
				 "trainer state's global_step %s", ms ? "\"" : "", ms ? ms : "missing",
				 ms ? "\"" : "", step);
	else
		rc = tk_adamw8_state_load(&tr->a8, &tr->m, tr->tp, st, path, d);
	tk_safetensors_close(st);
	return rc;
}

/* Optimizer state: arenas of the parameters' layout; on disk each tensor
 * is in its checkpoint layout (Conv1D [in, out]) under NAME.exp_avg and
 * NAME.exp_avg_sq. */
static int save_optimizer(struct trainer *tr, const char *path, struct tk_diag *d)
{
	if (tr->o->optim == TK_OPTIM_ADAMW_8BIT)
		return save_optimizer8(tr, path, d);
	const struct tk_model *m = &tr->m;
	float *buf = tk_mallocn(tr->n_opt_full ? 2 * tr->n_opt_full : 1, sizeof(float));
	tk_safetensors_writer_t *w = NULL;
	if (!buf || tk_safetensors_writer_new(&w)) {
		free(buf);
		return tk_diag_set(d, TK_E_NOMEM, path, -1, "out of memory");
	}
	int rc = 0;
	char name[256];
	float *at = buf;
	for (int i = 0; i < tr->n_tp && !rc; i++) {
		const struct tk_param *p = &tr->tp[i];
		for (int k = 0; k < 2 && !rc; k++) {
			const float *st = (k ? tr->exp_avg_sq : tr->exp_avg) + tr->popt[i];
			if (tr->o->zero && (rc = train_zero_gather_state(tr, i, k, d)))
				break;
			if (tr->o->zero)
				st = tr->ztmp;
			if (p->t) /* the arena layout of a base tensor at st */
				tk_model_export(m, p->t, st - p->t->off, at);
			else
				memcpy(at, st, p->n * sizeof(float));
			snprintf(name, sizeof(name), "%s.%s", p->name, k ? "exp_avg_sq" : "exp_avg");
			rc = tk_safetensors_writer_add(w, name, TK_DT_F32, p->ndim, p->shape, at, d);
			at += p->n;
		}
	}
	rc = commit_optimizer(tr, w, "adamw_torch", path, rc, d); /* w points into buf */
	free(buf);
	return rc;
}

/* Reads the checkpoint's optimizer state (save_optimizer's layout), as
 * strictly as trainer_state.json: the metadata of an AdamW state of this
 * global step, exactly the two F32 tensors of each trained parameter, and
 * values AdamW can have reached (finite; exp_avg_sq, a mean of squares,
 * not negative). */
static int load_optimizer(struct trainer *tr, const char *path, struct tk_diag *d)
{
	tk_safetensors_t *st;
	int rc = tk_safetensors_open(&st, path, d);
	if (rc)
		return rc;
	if (tr->o->optim == TK_OPTIM_ADAMW_8BIT)
		return load_optimizer8(tr, st, path, d);
	const struct tk_model *m = &tr->m;
	float *tmp = NULL;
	size_t cap = 0;
	char name[256], step[32];
	const char *mo = tk_safetensors_metadata(st, "optimizer"), *ms = tk_safetensors_metadata(st, "step");
	snprintf(step, sizeof(step), "%ld", tr->global_step);
	if (!mo || strcmp(mo, "adamw_torch"))
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "__metadata__.optimizer: %s%.40s%s, not "
				 "\"adamw_torch\"", mo ? "\"" : "", mo ? mo : "missing", mo ? "\"" : "");
	else if (!ms || strcmp(ms, step))
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "__metadata__.step: %s%.40s%s, not the "
				 "trainer state's global_step %s", ms ? "\"" : "", ms ? ms : "missing",
				 ms ? "\"" : "", step);
	else if (tk_safetensors_count(st) != 2 * (size_t)tr->n_tp)
		rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "holds %zu tensors, not the %d of the "
				 "%d trained parameters' exp_avg and exp_avg_sq", tk_safetensors_count(st),
				 2 * tr->n_tp, tr->n_tp);
	for (int i = 0; i < tr->n_tp && !rc; i++) {
		const struct tk_param *p = &tr->tp[i];
		for (int k = 0; k < 2 && !rc; k++) {
			const struct tk_tensor_info *ti;
			float *dst = tr->o->zero ? tr->ztmp : (k ? tr->exp_avg_sq : tr->exp_avg) + tr->popt[i];
			snprintf(name, sizeof(name), "%s.%s", p->name, k ? "exp_avg_sq" : "exp_avg");
			if ((rc = tk_safetensors_expect(st, name, p->ndim, p->shape, &ti, d)))
				break;
			if (ti->dtype != TK_DT_F32) {
				rc = tk_diag_set(d, TK_E_FORMAT, path, -1, "tensor %s: %s, not F32", name,
						 tk_dtype_name(ti->dtype));
				break;
			}
			if ((rc = tk_grow(&tmp, &cap, p->n, sizeof(*tmp)))) {
				rc = tk_diag_set(d, rc, path, -1, "out of memory");
				break;
			}
			if ((rc = tk_safetensors_to_f32(ti, tmp, d)))
				break;
			for (size_t j = 0; j < p->n; j++)
				if (!isfinite(tmp[j]) || (k && tmp[j] < 0)) {
					rc = tk_diag_set(d, TK_E_FORMAT, path, -1,
							 "tensor %s: element %zu is %g, which AdamW's %s "
							 "cannot be", name, j, (double)tmp[j],
							 k ? "exp_avg_sq" : "exp_avg");
					break;
				}
			if (rc)
				break;
			if (p->t)
				tk_model_import(m, p->t, tmp, dst - p->t->off);
			else
				memcpy(dst, tmp, p->n * sizeof(float));
			const struct tr_seg *sg = tr->o->zero ? train_seg_of(tr, i) : NULL;
			if (sg) /* ZeRO-1: this process's shard of it */
				memcpy((k ? tr->exp_avg_sq : tr->exp_avg) + sg->loc, dst + sg->a,
				       sg->n * sizeof(float));
		}
	}
	free(tmp);
	tk_safetensors_close(st);
	return rc;
}

/* A checkpoint that could not be saved (its temporary directory is gone):
 * the message names the checkpoint, the file in it that failed and the
 * last good checkpoint; the system error stays in d->sys_errno. */
static int save_failed(struct trainer *tr, const char *path, const char *tmp, int rc,
		       struct tk_diag *d)
{
	if (!d)
		return rc;
	if (rc == TK_E_INVAL && !d->msg[0])
		return tk_diag_set(d, rc, path, -1, "path too long");
	char msg[sizeof(d->msg) + 2 * PATH_LEN + 64], ck[PATH_LEN + 64] = "";
	size_t n = strlen(tmp);
	const char *file = "";
	if (n && !strncmp(d->path, tmp, n) && d->path[n] == '/')
		file = d->path + n + 1;
	else if (strcmp(d->path, path))
		file = d->path;
	if (tr->saved)
		snprintf(ck, sizeof(ck), " (the last good checkpoint is %s)", tr->last_ckpt);
	snprintf(msg, sizeof(msg), "cannot save checkpoint%s: %s%s%s", ck, file, *file ? ": " : "",
		 d->msg);
	int e = d->sys_errno;
	tk_diag_set(d, rc, path, -1, "%s", msg);
	d->sys_errno = e;
	return rc;
}

/* The model, or the adapter when one is trained, into dir. */
int train_save_model(struct trainer *tr, const char *dir, struct tk_diag *d)
{
	if (tr->m.lora)
		return tk_peft_save(&tr->m, dir, 1, d);
	return tk_model_save(&tr->m, dir, 1, d);
}

int train_save_checkpoint(struct trainer *tr, struct tk_diag *d)
{
	char path[PATH_LEN], file[PATH_LEN], tmp[PATH_LEN];
	if (tk_dist_rank()) /* data parallel: rank 0 writes (ZeRO-1: the state from all) */
		return tr->o->zero ? train_zero_send_state(tr, d) : 0;
	if (ckpt_path(path, sizeof(path), tr->out, tr->global_step))
		return tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
	struct tk_afile_dir ad;
	int rc = tk_afile_dir_open(&ad, path, 1, d);
	if (rc)
		return save_failed(tr, path, "", rc, d);
	snprintf(tmp, sizeof(tmp), "%s", ad.tmp);
	/* best_model_checkpoint: the best step's checkpoint, this one or one
	 * still there (_save_checkpoint's test, before the state is written) */
	char best[PATH_LEN];
	if (tr->best.step > 0 && !ckpt_path(best, sizeof(best), tr->out, tr->best.step) &&
	    (tr->best.step == tr->global_step || tk_path_is_dir(best)))
		snprintf(tr->best_ckpt, sizeof(tr->best_ckpt), "%s", best);
	if (!(rc = train_save_model(tr, ad.tmp, d)) &&
	    !(rc = tk_path_join(file, sizeof(file), ad.tmp, "optimizer.safetensors")) &&
	    !(rc = save_optimizer(tr, file, d)) &&
	    !(rc = tk_path_join(file, sizeof(file), ad.tmp, "trainer_state.json")) &&
	    !(rc = train_save_state(tr, file, d)) && !(rc = train_copy_side_files(tr, ad.tmp, d)))
		rc = tk_afile_dir_commit(&ad, d);
	else
		tk_afile_dir_abort(&ad);
	if (rc)
		return save_failed(tr, path, tmp, rc, d);
	tr->saved = 1;
	snprintf(tr->last_ckpt, sizeof(tr->last_ckpt), "%s", path);
	struct tk_train_event ev = { .kind = TK_TRAIN_EV_SAVE, .step = tr->global_step,
				     .max_steps = tr->max_steps, .epoch = tr->epoch_f,
				     .path = path };
	train_event(tr, &ev);
	return train_rotate(tr, d);
}

int train_load_checkpoint(struct trainer *tr, struct tk_diag *d)
{
	char p[PATH_LEN];
	int rc = train_load_state(tr, &tr->resumed, d);
	train_state_file_free(&tr->resumed); /* all it was needed for */
	if (rc)
		return rc;
	if (tk_path_join(p, sizeof(p), tr->resume_dir, "optimizer.safetensors"))
		return tk_diag_set(d, TK_E_INVAL, tr->resume_dir, -1, "path too long");
	if ((rc = load_optimizer(tr, p, d)))
		return rc;
	snprintf(tr->last_ckpt, sizeof(tr->last_ckpt), "%s", tr->resume_dir);
	tr->saved = 1;
	return 0;
}

/* load_best_model_at_end: the output is the best checkpoint's model, the
 * files train_save_model wrote there (its optimizer and trainer state stay
 * behind). */
int train_write_best(struct trainer *tr, struct tk_diag *d)
{
	static const char *const state_files[] = { "optimizer.safetensors", "trainer_state.json" };
	DIR *dir = opendir(tr->best_ckpt);
	if (!dir)
		return tk_diag_sys(d, tr->best_ckpt, "cannot read the best checkpoint");
	char src[PATH_LEN], dst[PATH_LEN];
	int rc = 0;
	for (struct dirent *e; !rc && (e = readdir(dir));) {
		int skip = e->d_name[0] == '.';
		for (size_t i = 0; i < sizeof(state_files) / sizeof(state_files[0]); i++)
			skip |= !strcmp(e->d_name, state_files[i]);
		if (skip || tk_hf_side_index(e->d_name) >= 0) /* side files: train_copy_side_files */
			continue;
		if (tk_path_join(src, sizeof(src), tr->best_ckpt, e->d_name) ||
		    tk_path_join(dst, sizeof(dst), tr->out, e->d_name))
			rc = tk_diag_set(d, TK_E_INVAL, tr->out, -1, "path too long");
		else
			rc = tk_afile_copy(src, dst, d);
	}
	closedir(dir);
	return rc;
}

/* With save_total_limit 1 and a best checkpoint, the Trainer deletes every
 * other checkpoint when training ends. */
int train_keep_only_best(struct trainer *tr, struct tk_diag *d)
{
	struct ckpt_list l;
	int rc;
	if (!tr->best_ckpt[0] || tr->o->save_total_limit != 1 || tk_dist_rank())
		return 0;
	if ((rc = list_ckpts(tr->out, &l, 0, d)))
		return rc;
	for (size_t i = 0; i < l.n && !rc; i++)
		if (l.step[i] != tr->best.step)
			rc = remove_ckpt(tr, l.step[i], d);
	free(l.step);
	return rc;
}

/* tboard.h - TensorBoard event files: scalars that `tensorboard --logdir`
 * (and `%tensorboard` in a notebook) plots.
 *
 * An event file is a sequence of TFRecords, each
 *
 *	uint64 length (little endian)
 *	uint32 masked CRC-32C of the 8 length bytes
 *	length bytes of data: one serialized tensorflow.Event protobuf
 *	uint32 masked CRC-32C of the data
 *
 * where masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8.  The first event
 * carries file_version "brain.Event:2"; each later one a wall time, a step
 * and a Summary with one simple_value scalar per tag, as PyTorch's
 * SummaryWriter.add_scalar writes them.  The file is named
 * events.out.tfevents.TIME.HOSTNAME.PID.N (N: the first number that names
 * no existing file), the name TensorBoard looks for.
 *
 * The file is written as training goes, so that TensorBoard can show a run
 * that is still going: it is not built under a temporary name (as
 * metrics.jsonl is not), and every tk_tboard_flush() hands the records written
 * so far to the kernel.
 */
#ifndef TK_TBOARD_H
#define TK_TBOARD_H

#include <stdint.h>
#include <stdio.h>

#include "base/tk.h"

struct tk_tb {
	FILE *fp;
	char *path;        /* the event file (malloc'ed) */
	struct tk_buf rec; /* the event being built */
	int nvals;         /* scalars in it */
	long long step;
	double wall_time;
};

/* Creates dir (and its missing parents, as mkdir -p) and a new event file
 * in it, and writes the file_version event.  Returns 0, or TK_E_IO naming
 * the directory or file that could not be made (no event file is left
 * behind; directories made on the way stay), TK_E_NOMEM or TK_E_INVAL (an empty or too long dir). */
int tk_tboard_open(struct tk_tb *w, const char *dir, struct tk_diag *d);

/* Starts an event for step at wall_time (seconds since the epoch; <= 0:
 * now).  An event started before and not yet ended is dropped. */
void tk_tboard_begin(struct tk_tb *w, long long step, double wall_time);

/* Adds a scalar tag = v to the event begun.  Returns 0 or TK_E_NOMEM. */
int tk_tboard_scalar(struct tk_tb *w, const char *tag, double v);

/* Writes the event begun (nothing when it has no scalar) as one record.
 * Returns 0, or TK_E_IO naming the file. */
int tk_tboard_end(struct tk_tb *w, struct tk_diag *d);

/* Flushes the records written so far to the file.  Returns 0 or TK_E_IO. */
int tk_tboard_flush(struct tk_tb *w, struct tk_diag *d);

/* Flushes, fsyncs and closes the file; frees w (safe on a zeroed struct,
 * and after a failure).  Returns 0 or TK_E_IO naming the file. */
int tk_tboard_close(struct tk_tb *w, struct tk_diag *d);

/* Reading back (for tests and tools that check a file).  One event as
 * decoded by tk_tboard_decode_event(): the fields tk writes; the scalars point
 * into the record buffer. */
struct tk_tboard_event {
	double wall_time;
	long long step;
	char file_version[64]; /* "" unless the event is a file_version one */
	int nvals;
	struct {
		const char *tag; /* not NUL-terminated: tag_len bytes */
		size_t tag_len;
		float value;
	} vals[32];            /* the first 32 scalars */
};

/* Reads the next record from fp into rec (reused; caller frees) and
 * checks both CRCs.  Returns 1 with a record, 0 at a clean end of file,
 * TK_E_CHECKSUM for a CRC that does not match, TK_E_FORMAT for a cut
 * record or TK_E_IO; path and the record's byte offset go into d. */
int tk_tboard_read_record(FILE *fp, const char *path, struct tk_buf *rec, struct tk_diag *d);

/* Decodes one Event protobuf (the data of a record): wall_time, step,
 * file_version and simple_value scalars of a summary; other fields are
 * skipped.  Returns 0 or TK_E_FORMAT (malformed wire data). */
int tk_tboard_decode_event(const void *data, size_t n, struct tk_tboard_event *ev);

#endif

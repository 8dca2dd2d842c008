/* fuzz-shard.c - the .tks reader on arbitrary bytes: never a crash, and a
 * shard that reads to its end has records consistent with its header. */
#include <stdlib.h>

#include "formats/shard.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	FILE *fp = fmemopen((void *)data, size, "rb");
	if (!fp)
		return 0;
	struct tk_diag d;
	for (int shards = 0; shards < 8; shards++) {
		tk_shard_reader_t *r;
		if (tk_shard_reader_open(&r, fp, "fuzz", &d))
			break;
		const struct tk_shard_info *info = tk_shard_reader_info(r);
		struct tk_record rec;
		int rc;
		while ((rc = tk_shard_read(r, &rec, &d)) == 1) {
			for (uint64_t i = 0; i < rec.n; i++)
				if (rec.ids[i] >= info->vocab_size)
					abort(); /* the reader must have refused this */
			if (info->kind == TK_SHARD_BLOCKS && rec.n != info->seq_len)
				abort();
			if (rec.n_pad > rec.n)
				abort();
			for (uint32_t s = 1; s < rec.n_seg; s++)
				if (rec.seg[s] <= rec.seg[s - 1] || rec.seg[s] >= rec.n)
					abort();
		}
		tk_shard_reader_free(r);
		if (rc != 0 || tk_shard_more(fp, "fuzz", &d) != 1)
			break;
	}
	fclose(fp);
	return 0;
}

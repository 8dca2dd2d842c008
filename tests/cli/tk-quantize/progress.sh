# Progress as every tool's (TK_PROGRESS; 0 here: at every chance): the
# tensor being quantized, GB done of the input and the rate; none with -q.
TK_PROGRESS=0 tk-quantize "$FIX/train/model" -o q 2>err || exit $?
grep -c ' GB/s)$' err | sed 's/^[1-9][0-9]*$/some lines/'
grep -m1 'GB/s)$' err | sed -E 's/[0-9]+\.[0-9]+/N/g'
tail -1 err | sed -E 's/[0-9]+\.[0-9]+/N/g'
TK_PROGRESS=0 tk-quantize -q "$FIX/train/model" -o q2 2>&1 | wc -l

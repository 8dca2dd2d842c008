# -o a/b/c of an output directory creates the directories above it that
# do not exist (mkdir -p of its parent), as notebook users expect; a
# parent that is a file is an error naming it.  (An output file's parent
# must exist: tk-tokenize/err-unwritable.)
printf 'hello world\nfoo bar baz\n' >t.txt
mkdir -p x/y
tk-tokenize -q -t "$FIX/gpt2" t.txt -o x/y/docs.tks; echo "tk-tokenize: exit $?"
tk-pack -q -s 2 x/y/docs.tks -o a/b/blocks; echo "tk-pack: exit $?"
ls x/y a/b/blocks
tk-train -q --model "$FIX/train/model" --data "$FIX/train/blocks" --max-steps 1 \
	--threads 1 -o runs/r1/out >/dev/null; echo "tk-train: exit $?"
ls runs/r1/out | grep -c 'model.safetensors'
touch file
tk-pack -q -s 2 x/y/docs.tks -o file/blocks; echo "under a file: exit $?"

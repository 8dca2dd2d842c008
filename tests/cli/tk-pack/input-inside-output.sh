# -f replaces the output directory, so an input inside it (by any name: a
# path through .., a symlink to it) is refused before anything is written.
for i in $(seq 1 40); do echo "Quote number $i: the quick brown fox jumps over the lazy dog, again and again."; done > in.txt
mkdir dir sub
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o dir/docs.tks || exit 99
ln -s dir/docs.tks link.tks
status=0
tk-pack -q -f -s 64 dir/docs.tks -o dir || status=$?
tk-pack -q -f -s 64 -o sub/../dir link.tks || status=$?
ls dir
# a directory whose name merely starts like the output's is another one
mkdir d d2
cp dir/docs.tks d2/docs.tks
tk-pack -q -f -s 64 -o d d2/docs.tks || exit 99
ls d
exit $status

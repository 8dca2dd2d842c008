# Text given where a shard is expected.
echo "just some text" > in.txt
tk-pack -o out in.txt
rc=$?
ls
exit $rc

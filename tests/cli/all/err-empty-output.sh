# an empty output path is bad usage (exit 2) in every tool that writes
# one, refused before any work
for t in tk-tokenize tk-pack tk-convert tk-quantize tk-merge; do
	$t in -o ''
	echo "$t: exit $?"
done
tk-train --output-dir= --model m --data d
echo "tk-train: exit $?"
ls

# A model far too large for the memory (768 GiB to train in full here) is
# refused by the plan from its config.json alone, before anything of it is
# allocated: under ulimit -v 1 GB an allocation would fail differently
# ("out of memory for the model"), and the weights are not even read (the
# directory has none).  Nothing is written.  (AddressSanitizer reserves
# terabytes of shadow memory at start, so an ASan build runs without the
# ulimit: the refusal is the same.)
sed 's/"n_embd": 36/"n_embd": 8192/; s/"n_head": 3/"n_head": 64/; s/"n_layer": 2/"n_layer": 64/' \
	"$FIX/train/model/config.json" >big.json
mkdir big
cp big.json big/config.json
args="--data $FIX/train/blocks -o out --max-steps 1 -q --threads 1"
small() { # runs "$@" in 1 GB of address space
	if ldd "$(command -v tk-train)" | grep -q libasan; then
		"$@"
	else
		(ulimit -v 1000000; "$@")
	fi
}
# the limit named is ulimit -v's, or under ASan the machine's memory
limit() {
	sed -E 's/but ulimit -v allows [0-9.]+ [KMGT]?i?B/but LIMIT allows N/
		s/but the host has [0-9.]+ [KMGT]?i?B of memory and swap/but LIMIT allows N/' err >&2
}
small tk-train --init big.json $args 2>err; echo "exit $?"; limit
small tk-train --model big $args 2>err; echo "exit $?"; limit
small tk-train --model big --lora-r 8 $args 2>err; echo "exit $?"; limit
TK_DEVICE_MEMORY_LIMIT=200G tk-train --model big $args
echo "exit $?"
rm -f err
ls

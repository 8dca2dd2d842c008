# A model far too large for the memory (768 GiB to train in full here) is
# refused by the plan from its config.json alone, before anything of it is
# allocated: under ulimit -v 1 GB an allocation would fail differently
# ("out of memory for the model"), and the weights are not even read (the
# directory has none).  Nothing is written.
sed 's/"n_embd": 36/"n_embd": 8192/; s/"n_head": 3/"n_head": 64/; s/"n_layer": 2/"n_layer": 64/' \
	"$FIX/train/model/config.json" >big.json
mkdir big
cp big.json big/config.json
args="--data $FIX/train/blocks -o out --max-steps 1 -q --threads 1"
(ulimit -v 1000000; tk-train --init big.json $args; echo "exit $?")
(ulimit -v 1000000; tk-train --model big $args; echo "exit $?")
(ulimit -v 1000000; tk-train --model big --lora-r 8 $args; echo "exit $?")
TK_DEVICE_MEMORY_LIMIT=200G tk-train --model big $args
echo "exit $?"
ls

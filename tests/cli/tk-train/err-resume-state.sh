# A checkpoint's trainer_state.json and optimizer.safetensors are checked
# as strictly as a safetensors header before a resume uses them: each value
# tk reads back has its type, is an integer where it counts, lies in its
# range and agrees with the run and the data; the message names the file
# and the key, and the checkpoint is left as it was.
args="--model $FIX/train/model --data $FIX/train/blocks --per-device-train-batch-size 2
	--save-steps 2 --threads 1 -q"
tk-train $args -o out --max-steps 2 >/dev/null || exit 99
cp -r out/checkpoint-2 good
state=out/checkpoint-2/trainer_state.json
try() { # sed expression on trainer_state.json
	cp good/trainer_state.json $state
	sed -i -E "$1" $state
	tk-train $args -o out --max-steps 4 --resume-from-checkpoint latest >/dev/null
	echo "exit $?"
}
try 's/("global_step":\s*)2,/\1-1,/'
try 's/("global_step":\s*)2,/\11.5,/'
try 's/("global_step":\s*)2,/\11e12,/'
try 's/("global_step":\s*)2,/\1"2",/'
try '/"global_step"/d'
try 's/("max_steps":\s*)2,/\10,/'
try 's/("update_in_epoch":\s*)2,/\13,/'
try 's/("epoch_index":\s*)0,/\11,/'
try 's/("epoch":\s*)0\.13[0-9]*,/\10.5,/'
try 's/("num_input_tokens_seen":\s*)96,/\197,/'
try 's/("tr_loss":\s*)[0-9.e+-]*,/\1-1,/'
try 's/("last_logged":\s*)0,/\13,/'
try 's/("skipped_steps":\s*)0,/\1"none",/'
try 's/("n_blocks":\s*)29,/\129.5,/'
try 's/("seq_len":\s*)24,/\1-24,/'
try 's/("seed":\s*)"42"/\1"42x"/'
try 's/("shuffle":\s*)true/\11/'
try 's/("rng":\s*)"[^"]*"/\1"mt19937:1234"/'
try 's/("type":\s*)"linear"/\1"stepwise"/'
try 's/("total_steps":\s*)2/\13/'
try 's/("log_history":\s*)\[\]/\1[{"loss": 1, "step": 9}]/'
try 's/("log_history":\s*)\[\]/\1[{"loss": "low", "step": 1}]/'
try 's/("tk":\s*)\{/\1{"scaler": {"scale": 3, "growth_tracker": 0},/'
try 's/("tk":\s*)\{/\1{"scaler": {"scale": 65536, "growth_tracker": -2},/'
try 's/("source":\s*)\{/\1{"file": "x",/'
cp good/trainer_state.json $state
# optimizer.safetensors: the step it was saved at, and its values
opt=out/checkpoint-2/optimizer.safetensors
sed -i 's/"step":"2"/"step":"1"/' $opt
tk-train $args -o out --max-steps 4 --resume-from-checkpoint latest >/dev/null
echo "exit $?"
cp good/optimizer.safetensors $opt
n=$(od -An -tu8 -N8 $opt | tr -d ' ')
printf '\000\000\300\177' | dd of=$opt bs=1 seek=$((8 + n)) conv=notrunc 2>/dev/null
tk-train $args -o out --max-steps 4 --resume-from-checkpoint latest >/dev/null
echo "exit $?"
cp good/optimizer.safetensors $opt
diff -r good out/checkpoint-2 && echo checkpoint unchanged
tk-train $args -o out --max-steps 4 --resume-from-checkpoint latest >/dev/null && echo resumed

# --bf16 and --fp16 together (here one from --config, as HF's keys) is a
# usage error, before anything is made.
echo '{"bf16": true}' >args.json
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --config args.json --fp16
rc=$?
ls
exit $rc

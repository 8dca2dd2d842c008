# An integration tk does not have is a usage error, before anything is made.
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --report-to wandb
rc=$?
ls
exit $rc

# A --report-to name that is no integration at all (a typo) is a usage
# error, before anything is made (transformers' own integrations, such as
# wandb, get a warning instead: config-cannot.sh).
tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o out --report-to wandbb
rc=$?
ls
exit $rc

# --pad (one conversation a block, as TRL's SFTTrainer without packing):
# a document with no token left in the loss once truncated (here assistant
# turns cut off at 32 tokens under --assistant-only-loss) is dropped, as
# SFTTrainer drops such an example after truncating it ("Dropping fully
# masked examples"); the summary counts them, and every block written has
# a token in the loss.
tk-tokenize -q -t "$FIX/generate/chatml" --assistant-only-loss "$FIX/pack-chat/conversations.jsonl" -o c.tks || exit 1
tk-pack --pad -s 32 c.tks -o b >err 2>&1 || exit 1
grep -o '[0-9]* documents, [0-9]* blocks\|[0-9]* documents\? with no token left in the loss, dropped' err
tk-tokenize -q --ids --show-mask b/train-*.tks | awk 'NR % 2 == 0 && !/1/ { bad++ } END { print bad ? bad " blocks with no loss" : "every block has a token in the loss" }'

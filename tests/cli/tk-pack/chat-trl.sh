# Packed conversations equal TRL's: SFTTrainer(packing=True,
# packing_strategy="wrapped", max_length=64) on the four conversations of
# $FIX/pack-chat (tests/parity/gen-pack-chat-fixture.py, trl 1.16), with
# the ChatML fixture tokenizer, whose EOS is <|im_end|>.  TRL appends no EOS
# to a conversation: it ends as the template ends it, "<|im_end|>\n", and
# the next one starts right after.  tk-tokenize marks its shard "ended",
# so tk-pack adds none either (before, each conversation ended
# "<|im_end|>\n<|im_end|>" with the extra EOS in the loss).
#
# 181 tokens: two blocks of 64 and 53 left; TRL keeps that last row short,
# tk pads it (--keep-remainder) with <|im_end|> out of the loss, so each
# block is compared over the length of TRL's row and the rest must be
# padding.  Every token in the loss by default; with --assistant-only-loss
# the mask is TRL's assistant_masks (labels != -100).
cmp_trl() { # tk's --ids --show-mask lines vs TRL's rows
	awk 'NR == FNR { want[FNR] = $0; nw = FNR; next }
	     { got = ""; for (i = 1; i <= split(want[FNR], w, " "); i++) got = got (i > 1 ? " " : "") $i
	       if (got != want[FNR]) { print "line " FNR " differs"; bad = 1 }
	       for (; i <= NF; i++) if ($i != (FNR % 2 ? 2 : 0)) { print "line " FNR ": not padding"; bad = 1 } }
	     END { if (FNR != nw) { print FNR " lines, TRL has " nw; bad = 1 }
		   if (!bad) print nw / 2 " blocks as TRL packs them" }' "$1" -
}
t=$FIX/generate/chatml
tk-tokenize -q -t "$t" "$FIX/pack-chat/conversations.jsonl" -o docs.tks || exit 99
tk-pack -q -s 64 --keep-remainder docs.tks > b.tks || exit $?
tk-tokenize -q --ids --show-mask b.tks | cmp_trl "$FIX/pack-chat/wrapped.txt"
tk-tokenize -q -t "$t" --assistant-only-loss "$FIX/pack-chat/conversations.jsonl" -o asst.tks || exit 99
tk-pack -q -s 64 --keep-remainder asst.tks > b2.tks || exit $?
tk-tokenize -q --ids --show-mask b2.tks | cmp_trl "$FIX/pack-chat/wrapped-assistant-only.txt"
# without --keep-remainder the 53 tokens are dropped, as run_clm does
tk-pack -q -s 64 asst.tks > b3.tks || exit $?
tk-tokenize -q --ids --show-mask b3.tks | cmp_trl <(head -4 "$FIX/pack-chat/wrapped-assistant-only.txt")

# --cache-type bf16 keeps the KV cache as bf16 (each key and value rounded
# as it is stored; half the memory): for every family fixture, greedy, the
# same ids as the float cache, and log-probabilities within 0.05 of its
# (bf16 keeps 8 bits of each value; the largest difference seen here was
# 0.0063, llama).  The attention's bits over the rounded values are
# test-decode's (test_attention_bf16_cache).
for m in gpt2 llama qwen2 qwen3 phi3 gemma2 gemma3 smollm3; do
	for t in f32 bf16; do
		tk-generate -q --model "$FIX/models/$m" --max-new-tokens 12 --json \
			--prompt-ids "1 2 3 4 5 6 7 8 9 10 11 12 13" --cache-type $t > $t.json || exit 1
	done
	python3 - "$m" <<'PY' || exit 1
import json, sys
a, b = (json.load(open(t + ".json")) for t in ("f32", "bf16"))
d = max(abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"]))
print(sys.argv[1] + ":", "same ids" if a["token_ids"] == b["token_ids"] else "other ids",
      "and log-probabilities within 0.05" if d < 0.05 else "log-probabilities %g apart" % d)
PY
done
# A batch's prompt pass widens each of its sequences of a bf16 cache:
# --batch-size 3 prints what --batch-size 1 prints (as batch-same.sh).
printf 'Hello world\nThe quick brown fox jumps over\nA\nB b\n' > p.txt
for b in 1 3; do
	tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --prompt-file p.txt --ids \
		--cache-type bf16 --batch-size $b > b$b.txt || exit 1
done
cmp b1.txt b3.txt && wc -l < b3.txt

# --batch-size 3 prints what --batch-size 1 prints, greedy and sampled with
# several sequences per prompt (the same tokens; log-probabilities agree to GEMM
# summation order).
printf 'Hello world\nThe quick brown fox jumps over\nA\nB b\n' > p.txt
for o in '' '--do-sample --num-return-sequences 2 --seed 7 --top-k 0'; do
	tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --prompt-file p.txt --ids $o > one.txt
	tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --prompt-file p.txt --ids $o --batch-size 3 > three.txt
	cmp one.txt three.txt && wc -l < three.txt
done

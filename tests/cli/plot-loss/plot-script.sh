# What plot-loss asks gnuplot to draw (a stand-in gnuplot keeps the script
# and the data): a title naming the run (its directory, LoRA r and base,
# steps; or --title), the legend under the plot where it covers no curve,
# the raw train loss under its smoothed curve (TensorBoard's debiased EMA,
# weight 0.6), and with --base-eval the base model's eval loss at step 0.
cat > gp <<'GP'
#!/bin/sh
cat > "$PWD/script"
out=$(sed -n "s/^set output '\(.*\)'$/\1/p" "$PWD/script")
for f in $(grep -o "'[^']*\.dat'" "$PWD/script" | tr -d "'"); do cp "$f" "$PWD/${f##*/}"; done
printf 'PNG' > "$out"
GP
chmod +x gp
mkdir run
printf '%s\n' '{"loss":4,"step":1}' '{"loss":2,"step":2}' '{"loss":3,"step":3}' \
	'{"eval_loss":2.5,"eval_perplexity":12.2,"step":3}' '{"train_loss":3,"step":3}' > run/metrics.jsonl
printf '{\n  "base_model_name_or_path": "models/smol/",\n  "r": 8,\n  "lora_alpha": 16\n}\n' \
	> run/adapter_config.json
echo '{"eval_loss": 4.5, "eval_perplexity": 90.0}' > before.json
GNUPLOT=$PWD/gp "$TK_ROOT/pipelines/plot-loss" --base-eval before.json run/metrics.jsonl || exit $?
grep -E '^set (title|key)' script
sed -n 's/^plot //p' script | tr ',' '\n' | sed -E "s/'[^']*\/([a-z]+\.dat)'/\1/; s/^ *//"
for f in train smooth eval; do echo "$f: $(tr '\n' ' ' < $f.dat)"; done
echo "== --title, --base-eval LOSS, a title with quotes"
GNUPLOT=$PWD/gp "$TK_ROOT/pipelines/plot-loss" --title 'my "best" run' --base-eval 4.25 \
	run/metrics.jsonl x.png || exit $?
grep '^set title' script
echo "eval: $(tr '\n' ' ' < eval.dat)"
echo "== errors"
GNUPLOT=$PWD/gp "$TK_ROOT/pipelines/plot-loss" --base-eval nothing.json run/metrics.jsonl; echo "exit $?"
echo '{}' > none.json
GNUPLOT=$PWD/gp "$TK_ROOT/pipelines/plot-loss" --base-eval none.json run/metrics.jsonl; echo "exit $?"
GNUPLOT=$PWD/gp "$TK_ROOT/pipelines/plot-loss" --bogus run/metrics.jsonl; echo "exit $?"

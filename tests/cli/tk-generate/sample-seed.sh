# Sampling is reproducible for a seed and changes with it.
a=$(tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --do-sample --seed 1 --ids 'Hello world')
b=$(tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --do-sample --seed 1 --ids 'Hello world')
c=$(tk-generate --model "$FIX/generate/chatml" --max-new-tokens 12 --do-sample --seed 2 --ids 'Hello world')
[ "$a" = "$b" ] && echo same; [ "$a" != "$c" ] && echo different

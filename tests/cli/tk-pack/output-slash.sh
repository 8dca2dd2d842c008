# An output directory named with a trailing slash ("-o blocks/", as the
# README writes it) is the directory itself: written, then replaced with
# --force, and no temporary or old copy is left inside it or beside it.
printf 'a b c d e f\ng h i j k l\n' > in.txt
tk-tokenize -q -t "$FIX/gpt2" --format text --split-lines in.txt -o docs.tks || exit 99
tk-pack -q -s 4 docs.tks -o blocks/ || exit $?
tk-pack -q -s 4 --force docs.tks -o blocks// || exit $?
ls -a blocks
ls

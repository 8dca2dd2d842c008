# Too few arguments or an unknown option: usage on stderr, exit 2.
P=$TK_ROOT/pipelines
"$P/csv-to-adapter" a.csv text model; echo "exit $?"
"$P/csv-to-adapter" a.csv text model out --bogus; echo "exit $?"
"$P/full-finetune" a.csv text model out --qlora; echo "exit $?"
"$P/from-scratch" a.csv text cfg.json; echo "exit $?"
"$P/csv-to-adapter" a.csv text model out; echo "exit $?"
"$P/csv-to-adapter" --help | head -c 27; echo

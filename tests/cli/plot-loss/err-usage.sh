# No metrics file: usage on stderr, exit 2.
"$TK_ROOT/pipelines/plot-loss"

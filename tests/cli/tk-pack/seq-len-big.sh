# --seq-len above 1<<20 is bad usage.
tk-pack -s 1048577 -o out x.tks

# --seq-len 0 is bad usage.
tk-pack --seq-len 0 -o out x.tks

# --model names a directory that does not exist.
tk-generate --model nothing --prompt-ids 1 --ids

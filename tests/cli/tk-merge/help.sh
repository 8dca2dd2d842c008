# --help: usage on stdout, exit 0
tk-merge --help | head -1

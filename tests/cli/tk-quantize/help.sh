# --help goes to stdout and exits 0
tk-quantize --help | head -2; echo "rc=${PIPESTATUS[0]}"

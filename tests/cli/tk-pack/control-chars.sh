# A file name with control characters in it is printed with them escaped:
# it cannot end the line early or send the terminal an escape sequence.
tk-pack -q -o out "$(printf 'bad\033[2Jname\nline2\t\177')" 2>err
echo "exit $?"
cat err

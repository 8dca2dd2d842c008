# Nothing on stdin.
tk-pack -o out < /dev/null
rc=$?
ls
exit $rc

# Under mpirun only rank 0 gets stdin: --data - is refused as a usage error
# (exit 2) before anything is written.
. "$TK_ROOT/tests/cli/tk-train/mpi.bash"
mpi_run 2 --model "$FIX/train/model" --data - -o out -q <"$FIX/train/blocks/train-00000.tks" \
	>/dev/null 2>&1
echo "exit $?"
grep -m1 'tk-train: ' mpi.err
if [ -e out ]; then echo "out was created"; fi

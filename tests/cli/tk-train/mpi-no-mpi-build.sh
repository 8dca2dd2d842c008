# A tk-train built without MPI (no mpicc at build time) that a launcher
# started as one of several processes refuses to run instead of training
# the same model N times.  The launcher's environment stands in for
# mpirun; skipped where tk-train has MPI support (make MPICC= builds
# without it).
if ldd "$(command -v tk-train)" 2>/dev/null | grep -q libmpi; then
	echo "this tk-train has MPI support (make MPICC= builds one without)" >&2
	exit 77
fi
OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 tk-train --model "$FIX/train/model" \
	--data "$FIX/train/blocks" -o out -q
echo "exit $?"
if [ -e out ]; then echo "out was created"; fi
OMPI_COMM_WORLD_SIZE=1 tk-train --model "$FIX/train/model" --data "$FIX/train/blocks" -o one \
	--max-steps 1 -q >/dev/null && echo "one process: trains"

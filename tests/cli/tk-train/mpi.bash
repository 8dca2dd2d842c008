# Sourced by the mpi-*.sh cases (not a case itself): $mpi runs a command on
# N processes with OpenMPI's mpirun on this machine; the case is skipped
# (exit 77) where there is no mpirun.  mpi_run N ARGS... runs tk-train on N
# processes and skips when this tk-train was built without MPI.
command -v mpirun >/dev/null || { echo "mpirun not found (apt-get install openmpi-bin)" >&2; exit 77; }
exec 3>&2 # the case's stderr, for the reason of a skip
# Under make asan, OpenMPI's own allocations at MPI_Init/MPI_Finalize (some
# in components it has unloaded by exit, which no suppression can name) are
# not reported as leaks in the processes mpirun starts; the rest of ASan is on.
mpi=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" mpirun --oversubscribe)
[ "$(id -u)" -eq 0 ] && mpi+=(--allow-run-as-root)
mpi_run() {
	local n=$1 rc
	shift
	timeout 120 "${mpi[@]}" -np "$n" tk-train "$@" 2>mpi.err
	rc=$?
	if grep -q 'this build has no MPI support' mpi.err; then
		echo "tk-train was built without MPI (no mpicc at build time)" >&3
		exit 77
	fi
	cat mpi.err >&2
	return $rc
}
# Max |a - b| over the F32 tensors of two safetensors files with the same
# header (exit 1 when the headers differ), as od prints fp32 (8 digits).
maxdiff() {
	local n m
	n=$(od -An -tu8 -N8 "$1") && m=$(od -An -tu8 -N8 "$2") || return 1
	[ "$n" -eq "$m" ] && cmp -s -n $((8 + n)) "$1" "$2" || { echo "headers differ"; return 1; }
	paste <(od -An -v -tf4 -j $((8 + n)) "$1" | tr -s ' ' '\n' | sed '/^$/d') \
	      <(od -An -v -tf4 -j $((8 + n)) "$2" | tr -s ' ' '\n' | sed '/^$/d') |
		awk '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d } END { printf "%.3g\n", m }'
}
# within X LIMIT: X <= LIMIT (numbers as awk reads them)
within() {
	awk -v x="$1" -v l="$2" 'BEGIN { exit !(x + 0 <= l + 0) }'
}

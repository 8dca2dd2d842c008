# shellcheck shell=bash disable=SC2154
# pipelines/common.sh: what the tk pipeline scripts share; sourced, not run.
#
# The caller sets $me (its name for messages) and $WORK (the directory for
# intermediate files and stage stamps; $STAMPS, when set, holds the stamps
# instead: jobs that share $WORK keep theirs apart), then calls stage for
# each step:
#
#   stage NAME TARGET COMMAND [ARG...]
#
# runs COMMAND unless TARGET exists, was made by the same command line (the
# stamp $WORK/stamps/NAME.cmd holds it) and is newer than every file or
# directory named among the ARGs.  Before the command it prints "== NAME"
# and the command line, so that a log file or a notebook cell shows what
# ran; a failing command stops the pipeline with "$me: NAME failed (exit N)"
# after the tool's own message.  The tools write their outputs whole or not
# at all, so a failed stage leaves no TARGET behind; its stamp is removed
# before it runs, so an interrupted stage is redone on the next run.

# Progress of the tools goes to stderr as plain lines (they draw no bars
# when stderr is not a terminal): readable in a log and in a notebook cell.

say() { printf '\n== %s\n' "$*"; }
die() { echo "$me: $*" >&2; exit 1; }

# quote ARG...: the arguments as one shell-quoted line.
quote() {
	local a out=
	for a in "$@"; do
		if [[ $a =~ ^[A-Za-z0-9_./:=,+@%-]+$ ]]; then out+=" $a"
		else out+=" '${a//\'/\'\\\'\'}'"; fi
	done
	printf '%s' "${out# }"
}

# stamp NAME: the stamp file of stage NAME (any text: spaces and the like
# become dashes).
stamp() {
	local n=${1//[^A-Za-z0-9._-]/-}
	printf '%s' "${STAMPS:-$WORK/stamps}/$n.cmd"
}

# up_to_date NAME TARGET COMMAND...: 0 when stage NAME need not run.
up_to_date() {
	local name=$1 target=$2 a
	shift 2
	[ -e "$target" ] && [ -f "$(stamp "$name")" ] || return 1
	[ "$(cat "$(stamp "$name")")" = "$(quote "$@")" ] || return 1
	for a in "$@"; do
		[ "$a" != "$target" ] && [ -e "$a" ] && [ "$a" -nt "$target" ] && return 1
	done
	return 0
}

stage() {
	local name=$1 target=$2 rc
	shift 2
	if up_to_date "$name" "$target" "$@"; then
		say "$name: $target is up to date"
		return 0
	fi
	mkdir -p "${STAMPS:-$WORK/stamps}"
	rm -f "$(stamp "$name")"
	say "$name"
	case $1 in
	to_file) echo "\$ $(quote "${@:3}") > $(quote "$2")" ;;
	*) echo "\$ $(quote "$@")" ;;
	esac
	"$@" || { rc=$?; die "$name failed (exit $rc)"; }
	{ quote "$@"; echo; } > "$(stamp "$name")"
}

# has_checkpoint DIR: 0 when DIR holds a finished checkpoint-N directory.
has_checkpoint() {
	[ -n "$(find "$1" -maxdepth 1 -type d -regextype posix-extended \
		-regex '.*/checkpoint-[0-9]+' -print -quit 2>/dev/null)" ]
}

# to_file FILE COMMAND...: COMMAND's stdout into FILE, whole or not at all.
to_file() {
	local f=$1 rc
	shift
	"$@" > "$f.tmp-$$" || { rc=$?; rm -f "$f.tmp-$$"; return $rc; }
	mv -f "$f.tmp-$$" "$f"
}

# tk_samples MODEL ADAPTER OUT PROMPT...: greedy continuations of the
# prompts, one "PROMPT -> continuation" block each, into OUT.  ADAPTER may be
# empty.  tk-generate --adapter is used when tk-generate has it; otherwise the
# adapter is merged first into OUT.merged/ (removed afterwards).  With
# TK_SAMPLE_CHAT=1 each prompt is a user message (tk-generate --chat) and
# the answer follows it on the next line.
tk_samples() {
	local model=$1 adapter=$2 out=$3 p m rc=0 chat=()
	shift 3
	[ "${TK_SAMPLE_CHAT:-0}" = 1 ] && chat=(--chat)
	m=$model
	if [ -n "$adapter" ] && ! tk-generate --help | grep -q -- '--adapter'; then
		m=$out.merged
		rm -rf "$m"
		tk-merge -q --model "$model" --adapter "$adapter" -o "$m" || return
	fi
	{
		for p in "$@"; do
			printf '%s' "$p"
			[ ${#chat[@]} -eq 0 ] || printf '\n'
			if [ -n "$adapter" ] && [ "$m" = "$model" ]; then
				tk-generate -q --model "$model" --adapter "$adapter" "${chat[@]}" \
					--max-new-tokens "${SAMPLE_TOKENS:-32}" "$p" || exit
			else
				tk-generate -q --model "$m" "${chat[@]}" \
					--max-new-tokens "${SAMPLE_TOKENS:-32}" "$p" || exit
			fi
		done
	} > "$out.tmp-$$" || rc=$?
	[ "$m" != "$model" ] && rm -rf "$m"
	[ $rc -eq 0 ] || { rm -f "$out.tmp-$$"; return $rc; }
	mv -f "$out.tmp-$$" "$out"
}

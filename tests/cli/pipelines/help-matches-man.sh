# Each pipeline's --help usage line is a SYNOPSIS line of man/tk-pipelines.7,
# every option in the usage is under OPTIONS, and the page renders cleanly.
page=$TK_ROOT/man/tk-pipelines.7
synopsis=$(awk '/^\.SH SYNOPSIS/{on=1; next} /^\.SH/{on=0} on && !/^\./' "$page" | sed 's/\\-/-/g')
options=$(awk '/^\.SH OPTIONS/{on=1; next} /^\.SH/{on=0} on' "$page" | sed 's/\\-/-/g')
for p in csv-to-adapter full-finetune from-scratch; do
	usage=$("$TK_ROOT/pipelines/$p" --help | sed -n 's/^usage: //p')
	grep -qxF -- "$usage" <<<"$synopsis" && echo "$p: synopsis ok" || echo "$p: '$usage' is not in the SYNOPSIS"
	for o in $(grep -oE -- '--[a-z][a-z-]*' <<<"$usage" | sort -u); do
		grep -qE -- "(^|[^a-z-])$o([^a-z-]|$)" <<<"$options" || echo "$p: $o is not under OPTIONS"
	done
done
LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null

# make install puts every tool in $(bindir) and every man page in
# $(mandir)/manN under DESTDIR, executable and readable; the installed tools
# run from there; make uninstall takes exactly those files away again.
# The built tools (as tests/run put them first on PATH) are taken as they
# are (-o): this case must not rebuild them.
bin=$(dirname "$(command -v tk-train)")
keep=()
for t in "$bin"/tk-*; do keep+=(-o "$t"); done
m() { make -s --no-print-directory -C "$TK_ROOT" BIN="$bin" NVCC= MPICC= "${keep[@]}" "$@"; }
m install DESTDIR="$PWD/stage" PREFIX=/opt/tk >log 2>&1 || { echo "make install: exit $?"; cat log; }
cd stage
# what should be there, from tools/ and man/ (so that a new tool or page
# needs no change here), against what is
{
	for t in "$TK_ROOT"/tools/tk-*.c; do t=${t##*/}; echo "./opt/tk/bin/${t%.c}"; done
	for p in "$TK_ROOT"/man/*.[1-8]; do echo "./opt/tk/share/man/man${p##*.}/${p##*/}"; done
} | sort >../want
find . -type f | sort >../have
diff ../want ../have && echo "every tool of tools/ in bin, every page of man/ in man/manN"
grep -c '/man1/tk-train\.1$\|/man5/tk-shard\.5$\|/man7/tk\.7$' ../have
echo "modes: $(find . -type f -path '*/bin/*' ! -perm 755 | wc -l) tools not 755," \
	"$(find . -type f -path '*/man/*' ! -perm 644 | wc -l) pages not 644"
opt/tk/bin/tk-pack --version | head -1 | sed 's/ (tk) .*/ (tk) VERSION/'
cd ..
m uninstall DESTDIR="$PWD/stage" PREFIX=/opt/tk >log 2>&1 || { echo "make uninstall: exit $?"; cat log; }
echo "after uninstall: $(find stage -type f | wc -l) files"
# prefix (GNU's lowercase spelling) and bindir work too
m install DESTDIR="$PWD/s2" prefix=/usr bindir=/usr/libexec/tk >log 2>&1 || cat log
[ -x s2/usr/libexec/tk/tk-train ] && echo "bindir: s2/usr/libexec/tk/tk-train"
[ -f s2/usr/share/man/man1/tk-train.1 ] && echo "prefix: s2/usr/share/man/man1/tk-train.1"

#!/bin/sh
# test_install.sh - make install / make uninstall, used the way a user does:
# installs into a temporary PREFIX, checks the installed files, builds
# examples/simple.c with nothing but `pkg-config --cflags --libs gpt` and
# runs it against the installed shared library, runs the installed gpt
# command (which must find its data under PREFIX/share/gpt, also after the
# whole tree is moved), loads the installed library from Python, imports the
# installed gpt.py with no GPT_LIBRARY (it must find the library and the demo
# model of its installation, also moved), installs bindings/python with pip
# offline (the package builds its own library and ships the demo model), then
# uninstalls and checks that nothing is left; and the same with DESTDIR.
# Run from the repository root; environment: GPT, BUILD, PYTHON, TEST_WRAPPER.
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-python3}
T=$BUILD/tmp_install.$$  # one folder per run: two runs of make test may overlap
rm -rf "$T"; mkdir -p "$T"
trap 'rm -rf "$T"' EXIT
T=$(cd "$T" && pwd)

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }
have() { command -v "$1" >/dev/null 2>&1; }

if [ -n "${TEST_WRAPPER:-}" ]; then
    skip install "installs and runs programs of this machine; it runs in the native make test"
    exit 0
fi
if [ ! -f "$BUILD/libgpt.so" ]; then
    skip install "no $BUILD/libgpt.so (the install test is written for ELF systems)"
    exit 0
fi

VERSION=$(sed -n 's/^#define GPT_VERSION_STRING "\(.*\)"/\1/p' gpt.h)
MAJOR=$(sed -n 's/^#define GPT_VERSION_MAJOR \([0-9]*\)/\1/p' gpt.h)
P=$T/prefix

# --- make install ----------------------------------------------------------------
if ! make -s --no-print-directory install BUILD="$BUILD" PREFIX="$P" >"$T/make.log" 2>&1; then
    fail install "make install PREFIX=$P failed: $(tail -5 "$T/make.log" | tr '\n' ' ')"
    exit 0
fi
{
    echo bin/gpt
    echo include/gpt.h
    echo lib/libgpt.a
    echo lib/libgpt.so
    echo lib/libgpt.so.$MAJOR
    echo lib/libgpt.so.$VERSION
    echo lib/pkgconfig/gpt.pc
    [ -f models/demo.bin ] && echo share/gpt/demo.bin
    echo share/gpt/tokenizer/encoder.json
    echo share/gpt/tokenizer/vocab.bpe
    # the Python binding, in PREFIX/lib/pythonX.Y/site-packages (or dist-packages)
    (cd "$P" && ls lib/python*/*-packages/gpt.py 2>/dev/null | head -n 1)
} | sort >"$T/want"
PYDIR=$(cd "$P" && ls -d lib/python*/*-packages 2>/dev/null | head -n 1)
(cd "$P" && find . -type f -o -type l | sed 's|^\./||' | sort) >"$T/got"
if ! cmp -s "$T/want" "$T/got"; then
    fail install_files "installed files differ from the list: $(diff "$T/want" "$T/got" | grep '^[<>]' | tr '\n' ' ')"
elif [ "$(readlink "$P/lib/libgpt.so")" != "libgpt.so.$VERSION" ] ||
     [ "$(readlink "$P/lib/libgpt.so.$MAJOR")" != "libgpt.so.$VERSION" ]; then
    fail install_files "libgpt.so and libgpt.so.$MAJOR should be symlinks to libgpt.so.$VERSION"
elif ! cmp -s gpt.h "$P/include/gpt.h" || [ ! -x "$P/bin/gpt" ]; then
    fail install_files "gpt.h or bin/gpt not installed as built"
elif [ -z "$PYDIR" ] || ! cmp -s bindings/python/gpt.py "$P/$PYDIR/gpt.py"; then
    fail install_files "bindings/python/gpt.py is not installed in $P/lib/pythonX.Y/site-packages"
else
    pass install_files
fi

# --- pkg-config and a program built with it alone ---------------------------------------
if ! have pkg-config; then
    skip install_pkg_config "pkg-config is not installed"
else
    PKG_CONFIG_PATH=$P/lib/pkgconfig
    export PKG_CONFIG_PATH
    mv_=$(pkg-config --modversion gpt 2>&1)
    flags=$(pkg-config --cflags --libs gpt 2>&1)
    static=$(pkg-config --static --libs gpt 2>&1)
    if [ "$mv_" != "$VERSION" ]; then
        fail install_pkg_config "pkg-config --modversion gpt says '$mv_', expected $VERSION"
    elif ! echo "$static" | grep -q -- '-lm'; then
        fail install_pkg_config "pkg-config --static --libs gpt lacks -lm: $static"
    else
        pass install_pkg_config
    fi
    # a user's folder: the example only, no -I or -L into the repository
    mkdir -p "$T/user"
    cp examples/simple.c "$T/user/"
    extra=
    # a sanitizer build (make test-sanitize) needs its runtime in the program
    if nm -D --undefined-only "$BUILD/libgpt.so" 2>/dev/null | grep -q __asan_; then
        extra="-fsanitize=address,undefined"
    fi
    if ! (cd "$T/user" && cc $extra simple.c $flags -o simple) >"$T/cc.log" 2>&1; then
        fail install_build_example "cc simple.c \$(pkg-config --cflags --libs gpt) failed: $(head -5 "$T/cc.log" | tr '\n' ' ')"
    elif ! LD_LIBRARY_PATH=$P/lib ldd "$T/user/simple" 2>/dev/null | grep -q "libgpt.so.$MAJOR => $P/lib/"; then
        fail install_build_example "the program does not use $P/lib/libgpt.so.$MAJOR: $(LD_LIBRARY_PATH=$P/lib ldd "$T/user/simple" | grep gpt)"
    else
        M=$T/random.bin
        "$P/bin/gpt" convert --random 2,2,32,256 --n-vocab 512 --seed 9 -o "$M" >/dev/null 2>"$T/err"
        { printf 'Hello'; "$P/bin/gpt" generate -m "$M" -p Hello -n 60 --seed 7 2>>"$T/err"; echo; } >"$T/want-text"
        LD_LIBRARY_PATH=$P/lib ASAN_OPTIONS=detect_leaks=0 "$T/user/simple" "$M" Hello >"$T/got-text" 2>>"$T/err"
        rc=$?
        if [ $rc -ne 0 ] || ! cmp -s "$T/want-text" "$T/got-text" || [ "$(wc -c <"$T/got-text")" -le 6 ]; then
            fail install_build_example "the program (exit $rc) and the installed gpt generate differ: $(head -3 "$T/err" | tr '\n' ' ')"
        else
            pass install_build_example
        fi
    fi
fi

# --- the installed command finds its data under PREFIX/share/gpt ------------------------------
if [ ! -f models/demo.bin ]; then
    skip install_command_demo "models/demo.bin does not exist yet"
else
    # and again after moving the whole installation elsewhere
    cp -R "$P" "$T/moved"
    ok=1; why=
    for dir in "$P" "$T/moved"; do
        info=$("$dir/bin/gpt" info 2>&1)
        file=$(echo "$info" | sed -n 's/^file *//p')
        case $file in
            "$dir"/*share/gpt/demo.bin) ;;
            *) ok=0; why="$why $dir/bin/gpt info uses '$file', not $dir/share/gpt/demo.bin;" ;;
        esac
        if ! "$dir/bin/gpt" generate -p "And God said" -n 10 >"$T/gen" 2>"$T/err" || [ ! -s "$T/gen" ]; then
            ok=0; why="$why $dir/bin/gpt generate failed: $(head -2 "$T/err" | tr '\n' ' ');"
        fi
    done
    if [ $ok = 1 ]; then pass install_command_demo; else fail install_command_demo "$why"; fi
fi

# --- Python with the installed library ------------------------------------------------------
if ! have "$PYTHON"; then
    skip install_python "no Python interpreter ($PYTHON)"
elif [ -n "$extra" ]; then
    skip install_python "a sanitizer build; tests/test_python.sh covers it"
else
    out=$(GPT_LIBRARY=$P/lib/libgpt.so.$MAJOR "$PYTHON" -c '
import sys; sys.path.insert(0, "bindings/python")
import gpt
print(gpt.version(), gpt.library_path)' 2>&1)
    if [ "$out" = "$VERSION $P/lib/libgpt.so.$MAJOR" ]; then pass install_python; else fail install_python "$out"; fi
fi

# --- the installed binding finds the installed library and demo model by itself ------------
# (no GPT_LIBRARY, run outside the repository), also after the tree is moved
if ! have "$PYTHON"; then
    skip install_python_binding "no Python interpreter ($PYTHON)"
elif [ -n "$extra" ]; then
    skip install_python_binding "a sanitizer build; tests/test_python.sh covers the binding"
elif [ ! -f models/demo.bin ] || [ -z "$PYDIR" ]; then
    skip install_python_binding "models/demo.bin does not exist yet, or gpt.py was not installed"
else
    want_text=$("$P/bin/gpt" generate -p "And God said" -n 12 --seed 7 2>/dev/null)
    ok=1; why=
    for dir in "$P" "$T/moved"; do
        out=$(cd "$T" && env -u GPT_LIBRARY PYTHONPATH="$dir/$PYDIR" "$PYTHON" -c '
import gpt
with gpt.Model() as m:
    print(gpt.__file__)
    print(gpt.library_path)
    print(m.path)
    print(m.generate("And God said", max_new_tokens=12, seed=7), end="")' 2>&1)
        case $(echo "$out" | sed -n 1p) in "$dir/$PYDIR/gpt.py") ;; *) ok=0; why="$why module: $out;" ;; esac
        case $(echo "$out" | sed -n 2p) in "$dir"/lib/libgpt.so*) ;; *) ok=0; why="$why library: $out;" ;; esac
        [ "$(echo "$out" | sed -n 3p)" = "$dir/share/gpt/demo.bin" ] || { ok=0; why="$why model: $out;"; }
        [ "$(echo "$out" | sed -n '4,$p')" = "$want_text" ] || { ok=0; why="$why text differs: $out;"; }
    done
    if [ $ok = 1 ]; then pass install_python_binding; else fail install_python_binding "$why"; fi
fi

# --- pip install bindings/python, offline: builds the library and ships the demo model -----
if ! have "$PYTHON" || ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    skip install_pip "no pip for $PYTHON"
elif [ -n "$extra" ]; then
    skip install_pip "a sanitizer build; pip builds its own library, tested in make test"
else
    if ! PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 "$PYTHON" -m pip install --quiet --no-cache-dir \
        --no-build-isolation --no-index --target "$T/pip" bindings/python >"$T/pip.log" 2>&1; then
        fail install_pip "pip install --no-build-isolation bindings/python failed: $(tail -5 "$T/pip.log" | tr '\n' ' ')"
    else
        want_text=$("$BUILD/gpt" generate -p "And God said" -n 12 --seed 7 2>/dev/null)
        out=$(cd "$T" && env -u GPT_LIBRARY PYTHONPATH="$T/pip" "$PYTHON" -c '
import gpt
with gpt.Model() as m:
    print(gpt.library_path)
    print(m.path)
    print(m.generate("And God said", max_new_tokens=12, seed=7), end="")' 2>&1)
        if [ "$(echo "$out" | sed -n 1p)" != "$T/pip/gpt/libgpt.so" ] || [ "$(echo "$out" | sed -n 2p)" != "$T/pip/gpt/demo.bin" ]; then
            fail install_pip "the package does not use its own library and model: $out"
        elif [ "$(echo "$out" | sed -n '3,$p')" != "$want_text" ]; then
            fail install_pip "its text differs from gpt generate's: $out"
        else
            pass install_pip
        fi
    fi
fi

# --- make uninstall -----------------------------------------------------------------------
if ! make -s --no-print-directory uninstall BUILD="$BUILD" PREFIX="$P" >"$T/make.log" 2>&1; then
    fail uninstall "make uninstall failed: $(tail -5 "$T/make.log" | tr '\n' ' ')"
else
    left=$(cd "$P" && find . -type f -o -type l)
    if [ -n "$left" ]; then
        fail uninstall "files left after make uninstall: $(echo $left)"
    elif [ -d "$P/share/gpt" ]; then
        fail uninstall "$P/share/gpt is left after make uninstall"
    else
        pass uninstall
    fi
fi

# --- DESTDIR: staged install for packaging ------------------------------------------------------
S=$T/stage
if ! make -s --no-print-directory install BUILD="$BUILD" PREFIX=/opt/gpt-test DESTDIR="$S" >"$T/make.log" 2>&1; then
    fail install_destdir "make install DESTDIR=$S failed: $(tail -5 "$T/make.log" | tr '\n' ' ')"
else
    (cd "$S/opt/gpt-test" 2>/dev/null && find . -type f -o -type l | sed 's|^\./||' | sort) >"$T/got"
    if ! cmp -s "$T/want" "$T/got"; then
        fail install_destdir "staged files differ: $(diff "$T/want" "$T/got" | grep '^[<>]' | tr '\n' ' ')"
    elif ! grep -q '^prefix=/opt/gpt-test$' "$S/opt/gpt-test/lib/pkgconfig/gpt.pc"; then
        fail install_destdir "gpt.pc should name the final prefix /opt/gpt-test: $(head -3 "$S/opt/gpt-test/lib/pkgconfig/gpt.pc" | tr '\n' ' ')"
    elif ! make -s --no-print-directory uninstall BUILD="$BUILD" PREFIX=/opt/gpt-test DESTDIR="$S" >"$T/make.log" 2>&1 ||
         [ -n "$(find "$S" -type f -o -type l)" ]; then
        fail install_destdir "make uninstall DESTDIR=$S left files: $(find "$S" -type f | head -5 | tr '\n' ' ')"
    else
        pass install_destdir
    fi
fi
rm -rf "$T"

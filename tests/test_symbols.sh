#!/bin/sh
# test_symbols.sh - the libraries export exactly the public API, and gpt.h
# works from C99 and C++:
#   - libgpt.so: every dynamic symbol it defines starts with gpt_, every
#     GPT_API function of gpt.h is among them, SONAME libgpt.so.0 and the
#     versioned file names; on Windows gpt.dll's export table likewise;
#   - libgpt.a: no global symbol outside gpt_ (nothing to clash with a
#     user's names);
#   - gpt.h compiles alone with gcc and clang at -std=c99 -pedantic -Werror
#     and with g++/clang++ as C++98 and C++17, and a C and a C++ program
#     linked against the shared library see GPT_VERSION_* == gpt_version().
# Run from the repository root; environment: BUILD, TEST_WRAPPER.
BUILD=${BUILD:-build}
T=$BUILD/tmp_symbols.$$  # one folder per run: two runs of make test may overlap
rm -rf "$T"; mkdir -p "$T"
trap 'rm -rf "$T"' EXIT

pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
skip() { echo "SKIP $1: $2"; }
have() { command -v "$1" >/dev/null 2>&1; }

VERSION=$(sed -n 's/^#define GPT_VERSION_STRING "\(.*\)"/\1/p' gpt.h)
MAJOR=$(sed -n 's/^#define GPT_VERSION_MAJOR \([0-9]*\)/\1/p' gpt.h)

# The functions gpt.h declares with GPT_API (the name before the first '(').
sed -n 's/^GPT_API[^(]*[ *]\([a-z_0-9]*\)(.*/\1/p' gpt.h | sort -u >"$T/api"
n_api=$(wc -l <"$T/api")
if [ "$n_api" -lt 30 ]; then
    fail header_api_list "found only $n_api GPT_API functions in gpt.h"
fi

# --- shared library ----------------------------------------------------------
if [ -f "$BUILD/gpt.dll" ]; then
    dump=objdump
    have x86_64-w64-mingw32-objdump && dump=x86_64-w64-mingw32-objdump
    # the export table lists "[ordinal] name" rows after "[Ordinal/Name Pointer] Table"
    $dump -p "$BUILD/gpt.dll" >"$T/pe" 2>&1
    sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' "$T/pe" | sed -n 's/^[[:space:]]*\[ *[0-9]*\] \([A-Za-z_0-9]*\).*/\1/p' |
        sort -u >"$T/exported"
    if [ ! -s "$T/exported" ]; then
        fail dll_exports "no export table in $BUILD/gpt.dll ($dump -p)"
    elif grep -v '^gpt_' "$T/exported" >"$T/extra"; then
        fail dll_exports "gpt.dll exports names outside gpt_: $(tr '\n' ' ' <"$T/extra")"
    elif comm -23 "$T/api" "$T/exported" >"$T/missing" && [ -s "$T/missing" ]; then
        fail dll_exports "gpt.dll does not export: $(tr '\n' ' ' <"$T/missing")"
    elif comm -13 "$T/api" "$T/exported" >"$T/undeclared" && [ -s "$T/undeclared" ]; then
        fail dll_exports "gpt.dll exports functions gpt.h does not declare: $(tr '\n' ' ' <"$T/undeclared")"
    else
        pass dll_exports
    fi
    grep -i 'DLL Name' "$T/pe" | sed 's/.*DLL Name: //' | tr 'A-Z' 'a-z' | sort -u >"$T/imports"
    # a DLL that needs only Windows' own libraries can be copied anywhere
    if grep -v -E '^(kernel32|msvcrt|ucrtbase|api-ms-win-.*|advapi32|user32|ntdll)\.dll' "$T/imports" >"$T/extra"; then
        fail dll_imports "gpt.dll needs DLLs that Windows does not have: $(tr '\n' ' ' <"$T/extra")"
    else
        pass dll_imports
    fi
elif [ -f "$BUILD/libgpt.so" ]; then
    if ! have nm || ! have readelf; then
        skip shared_exports "nm and readelf (binutils) are not installed"
    else
        nm -D --defined-only "$BUILD/libgpt.so" | awk 'NF >= 3 { print $3 }' | sort -u >"$T/exported"
        if [ ! -s "$T/exported" ]; then
            fail shared_exports "nm -D shows no symbols in $BUILD/libgpt.so"
        elif grep -v '^gpt_' "$T/exported" >"$T/extra"; then
            fail shared_exports "libgpt.so exports names outside gpt_: $(head -20 "$T/extra" | tr '\n' ' ')"
        elif comm -23 "$T/api" "$T/exported" >"$T/missing" && [ -s "$T/missing" ]; then
            fail shared_exports "libgpt.so does not export: $(tr '\n' ' ' <"$T/missing")"
        elif comm -13 "$T/api" "$T/exported" >"$T/undeclared" && [ -s "$T/undeclared" ]; then
            fail shared_exports "libgpt.so exports functions gpt.h does not declare: $(tr '\n' ' ' <"$T/undeclared")"
        else
            pass shared_exports
        fi
        soname=$(readelf -d "$BUILD/libgpt.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
        if [ "$soname" != "libgpt.so.$MAJOR" ]; then
            fail shared_soname "SONAME is '$soname', expected libgpt.so.$MAJOR"
        elif [ ! -f "$BUILD/libgpt.so.$VERSION" ] || [ ! -L "$BUILD/libgpt.so" ] || [ ! -L "$BUILD/libgpt.so.$MAJOR" ] ||
             [ "$(readlink "$BUILD/libgpt.so")" != "libgpt.so.$VERSION" ] ||
             [ "$(readlink "$BUILD/libgpt.so.$MAJOR")" != "libgpt.so.$VERSION" ]; then
            fail shared_soname "expected libgpt.so -> libgpt.so.$VERSION and libgpt.so.$MAJOR -> libgpt.so.$VERSION in $BUILD"
        else
            pass shared_soname
        fi
    fi
else
    fail shared_exports "no shared library in $BUILD (libgpt.so or gpt.dll)"
fi

# --- static library ------------------------------------------------------------
if ! have nm; then
    skip static_globals "nm (binutils) is not installed"
else
    # global symbols an object defines: nm types in upper case except U/w/v
    nm -g --defined-only "$BUILD/libgpt.a" 2>/dev/null | awk 'NF >= 3 { print $3 }' | sort -u >"$T/globals"
    # a leading underscore is the symbol prefix of some targets (none on ELF or x86-64 PE)
    sed 's/^_\(gpt_\)/\1/' "$T/globals" | grep -v '^gpt_' | grep -v '^\.' >"$T/extra"
    if [ ! -s "$T/globals" ]; then
        fail static_globals "nm shows no global symbols in $BUILD/libgpt.a"
    elif [ -s "$T/extra" ]; then
        fail static_globals "libgpt.a defines global names outside gpt_: $(head -20 "$T/extra" | tr '\n' ' ')"
    else
        pass static_globals
    fi
fi

# --- gpt.h from C and C++ ---------------------------------------------------------
cat >"$T/version.c" <<'EOF'
#include "gpt.h" /* first: the header includes what it needs */
#include "gpt.h" /* twice: include guard */
#include <stdio.h>
#include <string.h>

#if !defined(GPT_VERSION_MAJOR) || !defined(GPT_VERSION_MINOR) || !defined(GPT_VERSION_PATCH)
#error "GPT_VERSION_MAJOR/MINOR/PATCH missing"
#endif
#if GPT_VERSION_NUMBER != GPT_VERSION_MAJOR * 10000 + GPT_VERSION_MINOR * 100 + GPT_VERSION_PATCH
#error "GPT_VERSION_NUMBER does not match"
#endif

int main(void)
{
    char want[32];
    gpt_error err;
    gpt_model *m;
    sprintf(want, "%d.%d.%d", GPT_VERSION_MAJOR, GPT_VERSION_MINOR, GPT_VERSION_PATCH);
    if (strcmp(want, GPT_VERSION_STRING) != 0) {
        printf("GPT_VERSION_STRING %s != %s\n", GPT_VERSION_STRING, want);
        return 1;
    }
    if (strcmp(gpt_version(), GPT_VERSION_STRING) != 0) {
        printf("gpt_version() %s != GPT_VERSION_STRING %s\n", gpt_version(), GPT_VERSION_STRING);
        return 1;
    }
    /* a failing call through the library: status and message come back */
    m = gpt_model_load("no/such/model.bin", &err);
    if (m || err.status != GPT_ERR_IO || !strstr(err.message, "no/such/model.bin") ||
        strcmp(gpt_status_name(err.status), "GPT_ERR_IO") != 0) {
        printf("gpt_model_load of a missing file: %p %d %s\n", (void *)m, (int)err.status, err.message);
        return 1;
    }
    printf("ok %s\n", gpt_version());
    return 0;
}
EOF
cp "$T/version.c" "$T/version.cpp"

# compile NAME COMPILER FLAGS... : compiles the probe to an object file
compile() {
    name=$1; cc=$2; shift 2
    if ! have "$cc"; then
        skip "$name" "$cc is not installed"
        return 1
    fi
    if "$cc" "$@" -I. -c -o "$T/$name.o" >"$T/$name.log" 2>&1; then
        return 0
    fi
    fail "$name" "$cc $* failed: $(head -5 "$T/$name.log" | tr '\n' ' ')"
    return 1
}

# link_run NAME LINKER : links the object with the shared library, runs it
link_run() {
    name=$1; ld=$2
    if [ -n "${TEST_WRAPPER:-}" ] || [ ! -f "$BUILD/libgpt.so" ]; then
        pass "$name"  # compiled; the library is for another machine or not ELF
        return
    fi
    lib=$(cd "$BUILD" && pwd)
    extra=
    # A sanitizer build (make test-sanitize) needs the sanitizer runtime of
    # the compiler that built it in the program; another compiler's cannot
    # be mixed in, so such a probe is only compiled.
    if [ -n "$sanitized" ]; then
        case $ld in *clang*) family=clang ;; *) family=gcc ;; esac
        if [ "$family" != "$sanitized" ]; then
            pass "$name"
            return
        fi
        extra="-fsanitize=address,undefined"
    fi
    if ! "$ld" $extra "$T/$name.o" -L"$lib" -lgpt -Wl,-rpath,"$lib" -o "$T/$name" >"$T/$name.log" 2>&1; then
        fail "$name" "linking with -lgpt failed: $(head -5 "$T/$name.log" | tr '\n' ' ')"
        return
    fi
    out=$(ASAN_OPTIONS=detect_leaks=0 "$T/$name" 2>&1)
    if [ "$out" = "ok $VERSION" ]; then pass "$name"; else fail "$name" "$out"; fi
}

sanitized=
if [ -f "$BUILD/libgpt.so" ] && have nm && nm -D --undefined-only "$BUILD/libgpt.so" 2>/dev/null | grep -q __asan_; then
    if readelf -p .comment "$BUILD/libgpt.so" 2>/dev/null | grep -q clang; then sanitized=clang; else sanitized=gcc; fi
fi

W="-pedantic -Wall -Wextra -Werror"
compile header_c99_gcc gcc -std=c99 $W "$T/version.c" && link_run header_c99_gcc gcc
compile header_c99_clang clang -std=c99 $W "$T/version.c" && link_run header_c99_clang clang
compile header_cxx98_gxx g++ -std=c++98 $W -Wno-long-long "$T/version.cpp" && link_run header_cxx98_gxx g++
compile header_cxx17_gxx g++ -std=c++17 $W "$T/version.cpp" && link_run header_cxx17_gxx g++
if have clang++; then
    compile header_cxx17_clangxx clang++ -std=c++17 $W "$T/version.cpp" && link_run header_cxx17_clangxx clang++
fi

# --- Windows: programs linked with gpt.dll through its import library -------------------
# (make test-windows): as C, and as C++ with -DGPT_DLL (dllimport)
if [ -f "$BUILD/gpt.dll" ]; then
    MINGW=${MINGW:-x86_64-w64-mingw32-}
    cp "$BUILD/gpt.dll" "$T/"  # Windows finds a program's DLLs next to it
    for v in "dll_link_c ${MINGW}gcc -std=c99 version.c" "dll_link_cxx ${MINGW}g++ -std=c++11 -DGPT_DLL version.cpp"; do
        set -- $v
        name=$1; cc=$2; std=$3
        if [ "$#" = 5 ]; then def=$4; src=$5; else def=; src=$4; fi
        if ! have "$cc"; then
            skip "$name" "$cc is not installed"
        elif ! "$cc" $std $def $W -I. "$T/$src" -L"$BUILD" -lgpt -o "$T/$name.exe" >"$T/$name.log" 2>&1; then
            fail "$name" "$cc ... -lgpt failed: $(head -5 "$T/$name.log" | tr '\n' ' ')"
        elif ! objdump -p "$T/$name.exe" | grep -qi 'DLL Name: gpt.dll'; then
            fail "$name" "$name.exe does not import gpt.dll (linked the static library?)"
        else
            out=$(${TEST_WRAPPER:-} "$T/$name.exe" 2>&1 | tr -d '\r')
            if [ "$out" = "ok $VERSION" ]; then pass "$name"; else fail "$name" "$out"; fi
        fi
    done
    # File names are UTF-8 for the library on Windows too, also in a program
    # whose code page is not UTF-8 (python.exe, or this probe: no manifest).
    name=dll_utf8_path
    cat >"$T/u8.c" <<'EOF'
#include <stdio.h>
#include "gpt.h"
int main(void)
{
    gpt_error err;
    gpt_model *m = gpt_model_load("mod\303\251\342\202\254.bin", &err);
    gpt_tokenizer *t = m ? gpt_tokenizer_load("enc\303\251.json", "bpe\303\251.txt", &err) : NULL;
    if (!m || !t) {
        printf("%s\n", err.message);
        return 1;
    }
    gpt_tokenizer_free(t);
    gpt_model_free(m);
    printf("ok\n");
    return 0;
}
EOF
    if [ "$(locale charmap 2>/dev/null)" != UTF-8 ]; then
        skip $name "the locale's character set is not UTF-8, so wine cannot name the files"
    elif ! have "${MINGW}gcc" || [ -z "${GPT:-}" ]; then
        skip $name "needs ${MINGW}gcc and \$GPT"
    elif ! $GPT convert --random 1,1,16,8 --n-vocab 300 -o "$T/$(printf 'mod\303\251\342\202\254.bin')" \
             >/dev/null 2>"$T/$name.log" ||
         ! cp models/tokenizer/encoder.json "$T/$(printf 'enc\303\251.json')" ||
         ! cp models/tokenizer/vocab.bpe "$T/$(printf 'bpe\303\251.txt')"; then
        fail $name "cannot write the files: $(head -3 "$T/$name.log" | tr '\n' ' ')"
    elif ! "${MINGW}gcc" -std=c99 $W -I. "$T/u8.c" -L"$BUILD" -lgpt -o "$T/u8.exe" >"$T/$name.log" 2>&1; then
        fail $name "${MINGW}gcc u8.c -lgpt failed: $(head -5 "$T/$name.log" | tr '\n' ' ')"
    else
        out=$(cd "$T" && ${TEST_WRAPPER:-} ./u8.exe 2>&1 | tr -d '\r')
        if [ "$out" = ok ]; then pass $name; else fail $name "a UTF-8 file name does not open: $out"; fi
    fi
fi
rm -rf "$T"

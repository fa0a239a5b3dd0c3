#!/bin/sh
# fetch-gpt2.sh - downloads OpenAI's GPT-2 from Hugging Face and converts it
# to a gpt.c checkpoint.
#
#   models/fetch-gpt2.sh [124M|355M|774M|1558M] [--dtype f32|f16|bf16|q8_0] [--force] [--dir DIR]
#
# Downloads config.json, model.safetensors, vocab.json and merges.txt of
# openai-community/gpt2 (124M), gpt2-medium (355M), gpt2-large (774M) or
# gpt2-xl (1558M) into DIR/gpt2-SIZE/ (DIR defaults to this script's folder,
# models/), then runs `gpt convert --hf DIR/gpt2-SIZE -o DIR/gpt2-SIZE.bin`
# (DIR/gpt2-SIZE-TYPE.bin with --dtype TYPE other than f32).
#
# Downloads resume where an interrupted run stopped (FILE.part). Each file's
# size is checked against the size Hugging Face reports for it, and the
# weights' SHA-256 against the hash it reports for LFS files (the
# X-Linked-Etag header), when sha256sum or shasum is installed. Files that are
# already complete are not fetched again.
#
# Environment: GPT = the gpt binary (default: ../build/gpt next to this
# script; a command with words, like "qemu-aarch64 build/gpt", works too); HF_ENDPOINT = the server (default https://huggingface.co);
# HF_TOKEN = a token sent as "Authorization: Bearer" (not needed for GPT-2).
set -u

usage() {
    cat <<'EOF'
usage: models/fetch-gpt2.sh [124M|355M|774M|1558M] [--dtype f32|f16|bf16|q8_0] [--force] [--dir DIR]

Downloads GPT-2 (default 124M) from Hugging Face into DIR/gpt2-SIZE/ and
converts it to DIR/gpt2-SIZE.bin (DIR: models/). Downloads: 124M (0.55 GB),
355M (1.5 GB), 774M (3.25 GB), 1558M (6.4 GB) of float32 weights.
  --dtype T   weight type of the checkpoint (default f32)
  --force     convert again even if the checkpoint exists
  --dir DIR   where to put the files
Set GPT=/path/to/gpt if the gpt binary is not ../build/gpt.
EOF
}

die() {
    echo "fetch-gpt2.sh: $*" >&2
    exit 1
}

here=$(cd "$(dirname "$0")" && pwd)
size=124M
dtype=f32
force=
dir=$here
while [ $# -gt 0 ]; do
    case $1 in
        124M | 355M | 774M | 1558M) size=$1 ;;
        --dtype)
            [ $# -ge 2 ] || { usage >&2; exit 2; }
            dtype=$2
            shift
            ;;
        --force) force=--force ;;
        --dir)
            [ $# -ge 2 ] || { usage >&2; exit 2; }
            dir=$2
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        *)
            echo "fetch-gpt2.sh: unknown argument \"$1\" (sizes: 124M, 355M, 774M, 1558M)" >&2
            usage >&2
            exit 2
            ;;
    esac
    shift
done
case $size in
    124M) repo=gpt2 ;;
    355M) repo=gpt2-medium ;;
    774M) repo=gpt2-large ;;
    1558M) repo=gpt2-xl ;;
esac
case $dtype in
    f32 | f16 | bf16 | q8_0) ;;
    *) echo "fetch-gpt2.sh: --dtype must be f32, f16, bf16 or q8_0, not \"$dtype\"" >&2; exit 2 ;;
esac

gpt=${GPT:-$here/../build/gpt}
if [ -x "$gpt" ]; then
    run_gpt() { "$gpt" "$@"; }
elif [ -n "$gpt" ] && $gpt --version >/dev/null 2>&1; then # a command with a wrapper: "qemu-aarch64 build/gpt"
    run_gpt() { $gpt "$@"; }
else
    die "$gpt not found: build it with make (or set GPT=/path/to/gpt)"
fi
command -v curl >/dev/null 2>&1 || die "curl is needed to download the files"

endpoint=${HF_ENDPOINT:-https://huggingface.co}
endpoint=${endpoint%/}
base=$endpoint/openai-community/$repo/resolve/main
folder=$dir/gpt2-$size
if [ "$dtype" = f32 ]; then out=$dir/gpt2-$size.bin; else out=$dir/gpt2-$size-$dtype.bin; fi
tmp=$(mktemp "${TMPDIR:-/tmp}/fetch-gpt2.XXXXXX") || die "cannot create a temporary file"
trap 'rm -f "$tmp"' EXIT
trap 'rm -f "$tmp"; exit 130' INT TERM

# curl with the options of every request
hf_curl() {
    if [ -n "${HF_TOKEN:-}" ]; then
        curl -sS --connect-timeout 10 -H "Authorization: Bearer $HF_TOKEN" "$@"
    else
        curl -sS --connect-timeout 10 "$@"
    fi
}

# curl's exit status -> what went wrong
curl_problem() {
    case $1 in
        5 | 6) echo "cannot resolve the host of $endpoint: the network is unreachable (or there is no DNS)" ;;
        7) echo "cannot connect to $endpoint: the network is unreachable (or the server is down)" ;;
        28) echo "no answer from $endpoint in time: the network is unreachable or too slow" ;;
        35 | 60) echo "TLS/certificate error talking to $endpoint" ;;
        22) echo "the server refused the request (HTTP error)" ;;
        *) echo "curl failed with status $1" ;;
    esac
}

# Fails at once without network: one HEAD request with a short timeout.
hf_curl -I -f --max-time 30 -o /dev/null "$base/config.json" 2>"$tmp"
rc=$?
[ $rc = 0 ] || die "$(curl_problem $rc) ($(tr '\n' ' ' <"$tmp" | sed 's/ *$//'))"

mkdir -p "$folder" || die "cannot create $folder"

file_size() { wc -c <"$1" | tr -d ' '; }

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then shasum -a 256 "$1" | cut -d' ' -f1
    fi
}

# Size and SHA-256 Hugging Face reports for a file: "SIZE SHA" (either may be "-").
remote_info() {
    hf_curl -I -L --max-time 60 "$base/$1" 2>/dev/null | tr -d '\r' |
        awk 'tolower($1) == "x-linked-size:" { ls = $2 }
             tolower($1) == "x-linked-etag:" { e = $2; gsub(/"/, "", e); if (e ~ /^[0-9a-f]+$/ && length(e) == 64) sha = e }
             tolower($1) == "content-length:" { cl = $2 }
             END { s = ls != "" ? ls : cl; printf "%s %s\n", s == "" ? "-" : s, sha == "" ? "-" : sha }'
}

fetch() {
    name=$1
    dest=$folder/$name
    part=$dest.part
    info=$(remote_info "$name")
    want_size=${info% *}
    want_sha=${info#* }
    if [ -f "$dest" ]; then
        if [ "$want_size" = - ] || [ "$(file_size "$dest")" = "$want_size" ]; then
            echo "fetch-gpt2.sh: $dest is there"
            return 0
        fi
        echo "fetch-gpt2.sh: $dest has $(file_size "$dest") bytes, expected $want_size; fetching it again"
        mv -f "$dest" "$part"
    fi
    if [ -f "$part" ] && [ "$want_size" != - ] && [ "$(file_size "$part")" -gt "$want_size" ]; then
        rm -f "$part"
    fi
    if [ -f "$part" ] && [ "$want_size" != - ] && [ "$(file_size "$part")" = "$want_size" ]; then
        : # complete already
    else
        [ -s "$part" ] && echo "fetch-gpt2.sh: resuming $name at $(file_size "$part") bytes"
        echo "fetch-gpt2.sh: downloading $base/$name"
        if [ -t 2 ]; then set -- -#; else set --; fi
        hf_curl "$@" -f -L --retry 3 --retry-delay 2 -C - -o "$part" "$base/$name"
        rc=$?
        if [ $rc = 33 ]; then # the server cannot resume: start over
            rm -f "$part"
            hf_curl "$@" -f -L --retry 3 --retry-delay 2 -o "$part" "$base/$name"
            rc=$?
        fi
        [ $rc = 0 ] || die "downloading $name: $(curl_problem $rc); run again to resume"
    fi
    got=$(file_size "$part")
    if [ "$want_size" != - ] && [ "$got" != "$want_size" ]; then
        die "$part has $got bytes, but Hugging Face says $name has $want_size; run again to resume"
    fi
    if [ "$want_sha" != - ]; then
        sum=$(sha256_of "$part")
        if [ -z "$sum" ]; then
            echo "fetch-gpt2.sh: no sha256sum or shasum here; $name is checked by its size only"
        elif [ "$sum" != "$want_sha" ]; then
            rm -f "$part"
            die "$name is corrupt: SHA-256 $sum, expected $want_sha; it was deleted, run again"
        else
            echo "fetch-gpt2.sh: $name: SHA-256 ok"
        fi
    fi
    mv -f "$part" "$dest" || die "cannot rename $part to $dest"
}

for f in config.json vocab.json merges.txt model.safetensors; do
    fetch "$f"
done

if [ -e "$out" ] && [ -z "$force" ]; then
    echo "fetch-gpt2.sh: $out exists already (use --force to convert again)"
    exit 0
fi
echo "fetch-gpt2.sh: converting to $out"
run_gpt convert --hf "$folder" -o "$out" --dtype "$dtype" $force || die "the conversion failed"
echo "fetch-gpt2.sh: done. Try: $gpt generate -m $out -p \"Hello, my name is\""

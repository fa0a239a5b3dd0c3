"""gpt_build.py - the PEP 517 build backend of bindings/python (standard
library only, so that `pip install bindings/python` works offline and needs
neither setuptools nor wheel).

A wheel holds the package `gpt`: gpt.py as gpt/__init__.py, the shared
library compiled from gpt.c and tokenizer.c next to it (gpt.py looks there
first), and the demo model as gpt/demo.bin (gpt.Model() finds it there). The
sources are the repository's (two folders up), or csrc/ in an sdist.

Environment: CC (default cc), CFLAGS (default -O2, plus -march=native unless
GPT_NATIVE=0: the library is built for the machine that installs it, as
`make` does).

MIT licence; see LICENSE.
"""

import base64
import hashlib
import io
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import zipfile

DIST = "gpt_c"  # the distribution "gpt-c" in file names
HERE = os.path.dirname(os.path.abspath(__file__))
SUMMARY = "Python binding of gpt.c: GPT-2 style language models on the CPU, in dependency-free C99"


def _sources():
    """The folder with gpt.h, gpt.c and tokenizer.c."""
    for d in (os.path.join(HERE, "csrc"), os.path.normpath(os.path.join(HERE, "..", ".."))):
        if all(os.path.isfile(os.path.join(d, f)) for f in ("gpt.h", "gpt.c", "tokenizer.c")):
            return d
    raise RuntimeError("gpt_build: gpt.h, gpt.c and tokenizer.c are neither in %s/csrc nor two folders up" % HERE)


def _version(src):
    with open(os.path.join(src, "gpt.h")) as f:
        for line in f:
            if line.startswith("#define GPT_VERSION_STRING"):
                return line.split('"')[1]
    raise RuntimeError("gpt_build: no GPT_VERSION_STRING in gpt.h")


def _demo_model(src):
    for p in (os.path.join(src, "demo.bin"), os.path.join(src, "models", "demo.bin")):
        if os.path.isfile(p):
            return p
    return None


def _library_name():
    if sys.platform == "win32":
        raise RuntimeError("gpt_build: building on Windows is not supported; build gpt.dll with make "
                           "(README.md, Windows) and set GPT_LIBRARY to it")
    return "libgpt.dylib" if sys.platform == "darwin" else "libgpt.so"


def _compile(src, out):
    """Compiles the library into the file out (what the Makefile's
    libgpt.so is, without the version in its name)."""
    cc = shlex.split(os.environ.get("CC", "cc"))
    cflags = shlex.split(os.environ.get("CFLAGS", "-O2"))
    native = [] if os.environ.get("GPT_NATIVE") == "0" else ["-march=native"]
    link = ["-dynamiclib"] if sys.platform == "darwin" else ["-shared"]
    files = [os.path.join(src, "gpt.c"), os.path.join(src, "tokenizer.c")]
    for arch in (native, []):  # a compiler without -march=native builds for its baseline
        cmd = cc + ["-std=c99"] + cflags + arch + ["-fPIC", "-fvisibility=hidden"] + link + ["-o", out] + files + \
            ["-lm", "-pthread"]
        print("gpt_build: " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
        if subprocess.call(cmd) == 0:
            return
        if not arch:
            break
    raise RuntimeError("gpt_build: compiling the gpt library failed (set CC and CFLAGS to choose the compiler)")


def _metadata(version):
    readme = os.path.join(HERE, "README.md")
    text = ""
    if os.path.isfile(readme):
        with open(readme, encoding="utf-8") as f:
            text = f.read()
    return ("Metadata-Version: 2.1\nName: gpt-c\nVersion: %s\nSummary: %s\nLicense: MIT\nRequires-Python: >=3.6\n"
            "Description-Content-Type: text/markdown\n\n%s" % (version, SUMMARY, text))


def _tag():
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "py3-none-" + plat


def _record_line(name, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode("ascii")
    return "%s,sha256=%s,%d" % (name, digest, len(data))


# --------------------------------------------------------------------------
# PEP 517 hooks


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    src = _sources()
    version = _version(src)
    lib_name = _library_name()
    info = "%s-%s.dist-info" % (DIST, version)
    tag = _tag()
    wheel_name = "%s-%s-%s.whl" % (DIST, version, tag)
    tmp = tempfile.mkdtemp(prefix="gpt_build_")
    try:
        lib = os.path.join(tmp, lib_name)
        _compile(src, lib)
        files = [("gpt/__init__.py", os.path.join(HERE, "gpt.py")), ("gpt/" + lib_name, lib)]
        demo = _demo_model(src)
        if demo:
            files.append(("gpt/demo.bin", demo))
        licence = os.path.join(src, "LICENSE")
        if os.path.isfile(licence):
            files.append((info + "/LICENSE", licence))
        generated = [
            (info + "/METADATA", _metadata(version).encode("utf-8")),
            (info + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: gpt_build\nRoot-Is-Purelib: false\nTag: %s\n"
                               % tag).encode("ascii")),
            (info + "/top_level.txt", b"gpt\n"),
        ]
        record = []
        path = os.path.join(wheel_directory, wheel_name)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for name, from_path in files:
                with open(from_path, "rb") as f:
                    data = f.read()
                zi = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                zi.external_attr = (0o755 if name.endswith(lib_name) else 0o644) << 16
                zi.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(zi, data)
                record.append(_record_line(name, data))
            for name, data in generated:
                z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
                record.append(_record_line(name, data))
            record.append(info + "/RECORD,,")
            z.writestr(zipfile.ZipInfo(info + "/RECORD", date_time=(2020, 1, 1, 0, 0, 0)),
                       ("\n".join(record) + "\n").encode("utf-8"))
        return wheel_name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def build_sdist(sdist_directory, config_settings=None):
    """A source archive that builds on its own: this folder's files and the
    library's sources (and the demo model) under csrc/."""
    src = _sources()
    version = _version(src)
    base = "%s-%s" % (DIST, version)
    name = base + ".tar.gz"
    members = [(f, os.path.join(HERE, f)) for f in ("pyproject.toml", "gpt_build.py", "gpt.py", "README.md")]
    members += [("csrc/" + f, os.path.join(src, f)) for f in ("gpt.h", "gpt.c", "tokenizer.c", "LICENSE")]
    demo = _demo_model(src)
    if demo:
        members.append(("csrc/demo.bin", demo))
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        pkg_info = _metadata(version).encode("utf-8")
        ti = tarfile.TarInfo(base + "/PKG-INFO")
        ti.size = len(pkg_info)
        ti.mode = 0o644
        t.addfile(ti, io.BytesIO(pkg_info))
        for arc, path in members:
            if os.path.isfile(path):
                t.add(path, arcname=base + "/" + arc)
    return name

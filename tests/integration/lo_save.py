"""LibreOffice saving documents in place, as a clerk's Ctrl+S does (UNO ``store()``).

    /usr/bin/python3 tests/integration/lo_save.py --profile DIR FILE...

Runs under Debian's system Python (``python3-uno``), never the venv. Starts its own headless
soffice with a private profile on a private pipe, opens each file hidden, stores it in place
(same format, same name: LibreOffice's own save path), closes it, and exits 0 only when every
file was saved. Its pid and soffice's are what secops sees writing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import uno  # type: ignore[import-not-found]
from com.sun.star.beans import PropertyValue  # type: ignore[import-not-found]
from com.sun.star.connection import NoConnectException  # type: ignore[import-not-found]


def prop(name: str, value: object) -> PropertyValue:
    p = PropertyValue()
    p.Name, p.Value = name, value
    return p


def connect(pipe: str, deadline: float) -> object:
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext(
        "com.sun.star.bridge.UnoUrlResolver", local)
    while True:
        try:
            ctx = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
            return ctx.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop",
                                                                ctx)
        except NoConnectException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", required=True, type=Path)
    parser.add_argument("--edit", default="", help="text appended to a Writer document")
    parser.add_argument("--times", action="store_true",
                        help="print each store()'s seconds (JSON lines), for bench/")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds to wait after opening a file and after closing it: a "
                        "clerk edits before saving, and saves now and then (for bench/)")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    pipe = f"secops-test-{os.getpid()}"
    soffice = subprocess.Popen(
        ["soffice", "--headless", "--invisible", "--norestore", "--nologo", "--nodefault",
         f"-env:UserInstallation={args.profile.resolve().as_uri()}",
         f"--accept=pipe,name={pipe};urp;"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        desktop = connect(pipe, time.monotonic() + 300)
        for path in args.files:
            doc = desktop.loadComponentFromURL(  # type: ignore[attr-defined]
                path.resolve().as_uri(), "_blank", 0, (prop("Hidden", True),))
            if doc is None:
                print(f"cannot open {path}", file=sys.stderr)
                return 1
            if args.edit and hasattr(doc, "getText"):
                text = doc.getText()
                text.insertString(text.getEnd(), args.edit, False)
            time.sleep(args.pause)
            start = time.perf_counter()
            doc.store()
            took = time.perf_counter() - start
            doc.close(True)
            time.sleep(args.pause)
            print(json.dumps({"path": str(path), "store_s": took}) if args.times
                  else f"saved {path}", flush=True)
        with contextlib.suppress(Exception):  # the bridge goes away with soffice: expected
            desktop.terminate()  # type: ignore[attr-defined]
        return 0
    finally:
        try:
            soffice.wait(60)
        except subprocess.TimeoutExpired:
            soffice.kill()
            soffice.wait(30)


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: PAdES signing of one report with the key on a SoftHSM2 token.

Goal (issue 17): under 1 s per report on this machine, with and without the TSA.

What is timed (in-process, ``time.perf_counter``), per report, over ``--rounds`` rounds,
median and max: ``secops.signing.pades.sign_pdf`` of a rendered report (a three-page
Vietnamese PDF made by WeasyPrint, as the weekly report is), which opens the token
(PKCS#11 login), checks the certificate and its chain, draws the box and signs on the token:

* B-B: no TSA;
* B-T: an RFC 3161 TSA on 127.0.0.1 (pyHanko's test stamper behind ``http.server``: the
  network round trip to the government's TSA is not in this figure);
* B-LT: B-T with a certificate naming a CRL distribution point served on 127.0.0.1 (the
  CA's CRL, fetched, checked and embedded each time);
* anchor: rendering the same report's HTML to PDF (``render_pdf``), which every report
  pays anyway; the ratios are signing time over rendering time.

The first signing in a process also loads the PKCS#11 module and pyHanko (``cold``).

Run: ``.venv/bin/python bench/sign_bench.py [--rounds 20] [--pages 3]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT / "tests"))

from integration import pki  # noqa: E402
from secops.config.schema import Signing  # noqa: E402
from secops.reports.pdf import render_pdf  # noqa: E402

GOAL_S = 1.0


def report_html(pages: int) -> str:
    row = ("<tr><td>Biên bản kiểm phiếu tổ {i}.docx</td><td>đã sao lưu</td>"
           "<td>16/03/2026 07:{m:02d}</td></tr>")
    rows = "".join(row.format(i=i, m=i % 60) for i in range(pages * 38))
    return ("<html lang='vi'><head><title>Báo cáo tuần</title></head><body>"
            "<h1>Báo cáo tuần 2026-W11: UBND xã Tân Kỳ</h1><table>" + rows +
            "</table></body></html>")


def _level(signed: Any, want: str) -> Any:
    if signed.level != want:
        raise SystemExit(f"signed at {signed.level}, not {want}: {signed.warning}")
    return signed


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--pages", type=int, default=3)
    args = ap.parse_args()
    from secops.signing.pades import sign_pdf

    module = pki.softhsm_module()
    if module is None:
        print("SoftHSM2 is not installed: apt-get install softhsm2", file=sys.stderr)
        return 3
    with tempfile.TemporaryDirectory(prefix="sign-bench-") as tmp:
        root = Path(tmp)
        now = pki.utcnow()
        ca = pki.make_ca("CA gốc thử nghiệm", now)
        public = pki.init_token(root / "hsm", module)
        cert = ca.issue(public, pki.name("Nguyễn Văn Thắng"), not_before=now - pki.DAY,
                        not_after=now + 30 * pki.DAY)
        pki.write_pem(root / "cert.pem", cert)
        crls = pki.CrlServer()
        pki.write_pem(root / "cert-crl.pem", ca.issue(
            public, pki.name("Nguyễn Văn Thắng"), not_before=now - pki.DAY,
            not_after=now + 30 * pki.DAY, crl_url=crls.publish("root", ca)))
        pki.write_pem(root / "root.pem", ca.cert)
        pin = root / "pin"
        pin.write_text(pki.USER_PIN)
        pin.chmod(0o600)
        tsa = pki.Tsa(ca, now)
        try:
            bb = Signing(pkcs11_module=module, token_label=pki.TOKEN, key_label=pki.KEY,
                         pin_file=str(pin), certificate=str(root / "cert.pem"),
                         chain=[str(root / "root.pem")], signer_title="Chủ tịch")
            bt = Signing(**{**{f: getattr(bb, f) for f in bb.__struct_fields__},
                            "tsa_url": tsa.url})
            blt = Signing(**{**{f: getattr(bt, f) for f in bt.__struct_fields__},
                             "certificate": str(root / "cert-crl.pem")})
            html = report_html(args.pages)
            pdf = render_pdf(html)
            t = time.perf_counter()
            sign_pdf(pdf, bb, "UBND xã Tân Kỳ", "vi")
            cold = time.perf_counter() - t
            render = timed(lambda: render_pdf(html), max(3, args.rounds // 4))
            results = {"B-B": timed(lambda: sign_pdf(pdf, bb, "UBND xã Tân Kỳ", "vi"),
                                    args.rounds),
                       "B-T": timed(lambda: sign_pdf(pdf, bt, "UBND xã Tân Kỳ", "vi"),
                                    args.rounds),
                       "B-LT": timed(lambda: _level(sign_pdf(pdf, blt, "UBND xã Tân Kỳ", "vi"),
                                                    "B-LT"), args.rounds)}
        finally:
            tsa.stop()
            crls.stop()
    from pyhanko.pdf_utils.reader import PdfFileReader

    pages = int(PdfFileReader(BytesIO(pdf)).root["/Pages"]["/Count"])
    anchor = statistics.median(render)
    print(f"report: {pages} pages, {len(pdf) // 1024} KiB; rounds: {args.rounds}; "
          f"first signing in the process (cold, B-B): {cold:.3f} s")
    print(f"| level | median | max | ratio to rendering ({anchor:.3f} s) | goal {GOAL_S:.0f} s |")
    print("|---|---|---|---|---|")
    for level, times in results.items():
        med = statistics.median(times)
        print(f"| {level} | {med:.3f} s | {max(times):.3f} s | {med / anchor:.2f} | "
              f"{'met' if max(times) < GOAL_S else 'not met'} |")
    return 0 if all(max(t) < GOAL_S for t in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

"""PAdES signatures on the PDF reports with the office's X.509 certificate (issue 17).

- ``policy``: pure. What must hold before signing (validity now, key usage), the
  signature box's text, the signing level's name.
- ``words``: pure. The Vietnamese and English wording of signing and verification.
- ``outcome``: pure. A verification's checks, its JSON and its human lines.
- ``keys``: adapter. The key (PKCS#11 token or PKCS#12 file) and its certificates; the PIN
  from a 0600 file or a systemd credential; token errors translated into ``SigningError``.
- ``tsa``: adapter. The RFC 3161 client (stdlib HTTP).
- ``revocation``: adapter. The chain's CRL/OCSP fetched with a deadline and checked (a
  revoked certificate signs nothing), then embedded in the DSS.
- ``pades``: adapter. Check, then sign with pyHanko: B-LT with a timestamp and the
  revocation data embedded, B-T with a timestamp, else B-B.
- ``verify``: adapter. ``secops report verify``: pyHanko's validator, at the signing time,
  with the revocation data the file embeds.
"""

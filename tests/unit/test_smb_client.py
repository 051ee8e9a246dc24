"""Naming the clerk PC behind a stopped smbd (pure parts; the real Samba server is in
tests/integration/test_samba.py)."""

from __future__ import annotations

import json

from secops.fim import smb


def test_proc_net_tcp_endpoints() -> None:
    assert smb.parse_endpoint("0100007F:D431", v6=False) == ("127.0.0.1", 54321)
    assert smb.parse_endpoint("0A01A8C0:01BD", v6=False) == ("192.168.1.10", 445)
    mapped = "0000000000000000FFFF00000A01A8C0:D431"
    assert smb.parse_endpoint(mapped, v6=True) == ("192.168.1.10", 54321)
    assert smb.parse_endpoint("00000000000000000000000001000000:0050", v6=True) == ("::1", 80)


def test_the_session_of_the_stopped_process_is_found_by_pid() -> None:
    doc = {"sessions": {
        "1": {"server_id": {"pid": "4242"}, "username": "UBND\\van-thu",
              "remote_machine": "192.168.1.23", "hostname": "ipv4:192.168.1.23:50123"},
        "2": {"server_id": {"pid": "777"}, "username": "ke-toan",
              "remote_machine": "192.168.1.40"}}}
    assert smb.session_of(json.dumps(doc), 4242)["username"] == "UBND\\van-thu"
    assert smb.session_of(json.dumps(doc), 1) == {}
    assert smb.session_of("not json", 4242) == {}
    assert smb.session_of(json.dumps([1, 2]), 4242) == {}


def test_which_config_the_smbd_runs_with() -> None:
    assert smb._conf_of(["/usr/sbin/smbd", "-s", "/tmp/x/smb.conf"]) == "/tmp/x/smb.conf"
    assert smb._conf_of(["smbd", "--configfile=/etc/s.conf"]) == "/etc/s.conf"
    assert smb._conf_of(["smbd", "--foreground"]) is None
    assert smb.is_smbd("/usr/sbin/smbd", None)
    assert smb.is_smbd(None, ["smbd: client [192.168.1.23]"])
    assert not smb.is_smbd("/usr/bin/python3", ["python3", "smbd.py"])


def test_a_report_line_names_user_address_and_machine() -> None:
    assert smb.described({"user": "van-thu", "address": "192.168.1.23",
                          "machine": "PC-VANTHU"}) == "SMB: van-thu from 192.168.1.23 (PC-VANTHU)"
    assert smb.described({"address": "10.0.0.5"}) == "SMB: ? from 10.0.0.5"

"""Script lines with quotes and escapes, read as keepalived 2.2.7 reads them
(``notify_script_init`` / ``set_script_params_array``: ``alloc_strvec_quoted_escaped`` on the
line, then on the script string)."""

from __future__ import annotations

from pathlib import Path

from pylvs.config._ka_reader import quoted_escaped
from pylvs.config.keepalived import parse_keepalived
from pylvs.ha.vrrp import script_argv


def test_quoted_escaped_words() -> None:
    assert quoted_escaped('a "b c" d') == ["a", "b c", "d"]
    assert quoted_escaped("a 'b \"c' d") == ["a", 'b "c', "d"]
    assert quoted_escaped('x"y z"w') == ["xy zw"]
    assert quoted_escaped(r"a\ b \x41\101 \n") == ["a b", "AA", "\n"]
    assert quoted_escaped(r'"tab\there"') == ["tab\there"]
    assert quoted_escaped('a "b') is None
    assert quoted_escaped("a \\") is None
    assert quoted_escaped("") == []


def test_escaped_quotes_in_a_notify_script(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        "vrrp_instance VI_1 {\n"
        "    interface eth0\n"
        "    virtual_router_id 51\n"
        "    priority 100\n"
        '    notify_master "/bin/sh -c \\"echo \'a b\' > /tmp/x\\""\n'
        '    notify_backup "/usr/bin/logger backup" nobody nogroup\n'
        "    notify /usr/local/bin/notify.sh\n"
        "    virtual_ipaddress {\n"
        "        10.0.0.100\n"
        "    }\n"
        "}\n"
    )
    config = parse_keepalived(conf.read_text(), str(conf))
    ka = config.keepalived
    assert ka is not None
    (vi,) = ka.vrrp_instances
    assert vi.notify_master == "/bin/sh -c \"echo 'a b' > /tmp/x\""
    assert script_argv(vi.notify_master) == ["/bin/sh", "-c", "echo 'a b' > /tmp/x"]
    assert vi.notify_backup == "/usr/bin/logger backup"
    assert any("user/group nobody nogroup not used by pylvs" in w for w in config.warnings)
    assert vi.notify == "/usr/local/bin/notify.sh"
    assert script_argv('/bin/sh -c "exit 0"') == ["/bin/sh", "-c", "exit 0"]
    assert script_argv('/bin/echo "unterminated') == []

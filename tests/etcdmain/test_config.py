"""etcdmain's configuration and log, against what etcd 3.4.23 itself does (pure Python, no server started).

Every expected message and exit code below was taken from running the real ``etcd`` 3.4.23 binary with the
same arguments; the IDs in ``test_compute_ids_match_etcd`` are the ones real etcd logged.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from pyetcd_fast.etcdmain import config as config_mod
from pyetcd_fast.etcdmain.config import Config, ConfigError, compute_ids, parse
from pyetcd_fast.etcdmain.flagdefs import HIDDEN, new_flag_set
from pyetcd_fast.etcdmain.flags import go_bool, go_duration, go_int, go_uint, new_urls
from pyetcd_fast.etcdmain.log import Logger, capnslog_line, configure, get_logger, zap_line

CAPNSLOG = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ([A-Z]) \| (.*)$")


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Default data dirs are relative ("default.etcd"); keep any WAL lookups inside the test's directory.
    monkeypatch.chdir(tmp_path)


def run(argv: list[str], environ: dict[str, str] | None = None) -> tuple[Config, str]:
    err = io.StringIO()
    cfg = parse(argv, environ or {}, stderr=err)
    return cfg, err.getvalue()


def fail(argv: list[str], environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(argv, environ or {}, stderr=io.StringIO())
    return info.value


def capnslog(message: str) -> tuple[str, str]:
    m = CAPNSLOG.match(message.splitlines()[0])
    assert m, message
    return m.group(1), m.group(2)


# --- defaults ---


def test_defaults_are_etcd_34() -> None:
    cfg, _ = run([])
    assert cfg.name == "default"
    assert cfg.data_dir == "" and cfg.data_dir_path == "default.etcd"
    assert cfg.member_dir == "default.etcd/member"
    assert cfg.wal_dir == "" and cfg.wal_dir_path == "default.etcd/member/wal"
    assert cfg.snap_dir == "default.etcd/member/snap"
    # etcd 3.4 listens on 2379 only; we also take etcd 2's 4001 (test_clients_are_served_on_2379_and_4001_by_default).
    assert cfg.listen_client_urls == ["http://localhost:2379", "http://localhost:4001"]
    assert cfg.advertise_client_urls == ["http://localhost:2379", "http://localhost:4001"]
    assert cfg.listen_peer_urls == ["http://localhost:2380"]
    assert cfg.initial_advertise_peer_urls == ["http://localhost:2380"]
    assert cfg.initial_cluster == "default=http://localhost:2380"
    assert (cfg.initial_cluster_state, cfg.initial_cluster_token) == ("new", "etcd-cluster")
    assert (cfg.heartbeat_interval, cfg.election_timeout) == (100, 1000)
    assert cfg.snapshot_count == 100000
    assert cfg.quota_backend_bytes == 0 and cfg.quota_backend_bytes_effective == 2 * 1024**3
    assert (cfg.max_request_bytes, cfg.max_txn_ops) == (1572864, 128)
    assert cfg.pre_vote is False and cfg.unsafe_no_fsync is False
    # etcd 3.4 serves v2 only with --enable-v2; we serve it unless --enable-v2=false (old tutorials work as written).
    assert cfg.enable_v2 is True
    assert (cfg.log_level, cfg.logger, cfg.log_outputs) == ("info", "capnslog", ["default"])
    assert (cfg.auto_compaction_mode, cfg.auto_compaction_retention) == ("periodic", "0")
    assert cfg.grpc_keepalive_min_time == 5.0 and cfg.grpc_keepalive_interval == 7200.0


def test_flag_defaults_match_config_defaults() -> None:
    cfg = Config()
    for flag in new_flag_set().flags.values():
        if flag.attr:
            assert getattr(cfg, flag.attr) == flag.default, flag.name


def test_wal_dir_and_data_dir() -> None:
    cfg, _ = run(["--data-dir", "d", "--wal-dir", "/w"])
    assert (cfg.data_dir_path, cfg.wal_dir_path, cfg.snap_dir) == ("d", "/w", "d/member/snap")
    cfg, _ = run(["--name", "n1"])
    assert cfg.data_dir_path == "n1.etcd"


# --- IDs ---


@pytest.mark.parametrize(
    ("argv", "member", "cluster"),
    [
        ([], 0x8E9E05C52164694D, 0xCDF818194E3A8C32),
        (
            ["--name", "z", "--initial-advertise-peer-urls", "http://127.0.0.1:23792"],
            0xBAC7EFC361F1457E,
            0x6C438BA6CE8A0F60,
        ),
        (
            [
                "--name=a",
                "--initial-advertise-peer-urls=http://127.0.0.1:23811",
                "--initial-cluster-token=tok",
                "--initial-cluster=b=http://127.0.0.1:23812,a=http://127.0.0.1:23811,c=http://127.0.0.1:23813",
            ],
            0x710A7906B60E0340,
            0xE18B45D235E5DA02,
        ),
    ],
)
def test_compute_ids_match_etcd(argv: list[str], member: int, cluster: int) -> None:
    cfg, _ = run(argv)
    assert compute_ids(cfg) == (cluster, member)
    assert f"{compute_ids(cfg)[1]:x}" == f"{member:x}"


def test_compute_ids_needs_the_member_in_the_cluster() -> None:
    cfg = Config(name="x")
    with pytest.raises(ConfigError, match='couldn\'t find local name "x"'):
        compute_ids(cfg)


# --- flag syntax ---


@pytest.mark.parametrize("argv", [["--name", "x"], ["--name=x"], ["-name", "x"], ["-name=x"]])
def test_flag_forms(argv: list[str]) -> None:
    cfg, _ = run(argv)
    assert cfg.name == "x"
    assert cfg.initial_cluster == "x=http://localhost:2380"  # etcd derives it when only --name changes


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--enable-v2"], True),
        (["-enable-v2"], True),
        (["--enable-v2=true"], True),
        (["--enable-v2=T"], True),
        (["--enable-v2=1"], True),
        (["--enable-v2=false"], False),
        (["--enable-v2=0"], False),
    ],
)
def test_bool_forms(argv: list[str], expected: bool) -> None:
    assert run(argv)[0].enable_v2 is expected


def test_bool_flag_does_not_take_the_next_argument() -> None:
    err = fail(["--enable-v2", "false"])
    assert (err.exit_code, capnslog(err.message)) == (
        1,
        ("E", "etcdmain: error verifying flags, 'false' is not a valid flag. See 'etcd --help'."),
    )


def test_values_parse_like_go() -> None:
    cfg, _ = run(
        ["--max-txn-ops=0x10", "--snapshot-count", "010", "--max-request-bytes=1_000", "--quota-backend-bytes=-1"]
    )
    assert (cfg.max_txn_ops, cfg.snapshot_count, cfg.max_request_bytes, cfg.quota_backend_bytes) == (16, 8, 1000, -1)
    cfg, _ = run(["--grpc-keepalive-min-time=1m30s", "--experimental-warning-apply-duration", "250ms"])
    assert (cfg.grpc_keepalive_min_time, cfg.experimental_warning_apply_duration) == (90.0, 0.25)
    assert go_duration("1h2m3.5s") == 3723.5 and go_duration("0") == 0.0 and go_duration(".5s") == 0.5
    assert go_uint("0b101") == 5 and go_int("+5") == 5 and go_int("-0x10") == -16
    assert go_bool("TRUE") is True and go_bool("f") is False


def test_url_lists_are_sorted_and_normalized() -> None:
    urls = "http://127.0.0.2:2379,HTTP://127.0.0.1:2379"
    cfg, _ = run([f"--listen-client-urls={urls}", f"--advertise-client-urls={urls}"])
    assert cfg.listen_client_urls == ["http://127.0.0.1:2379", "http://127.0.0.2:2379"]
    assert new_urls(["unix://localhost:1", "https://[::1]:2379"]) == ["https://[::1]:2379", "unix://localhost:1"]


def test_ignored_etcd2_flags_warn() -> None:
    _, log = run(["-v", "--force"])
    assert [capnslog(line) for line in log.splitlines()] == [
        ("W", 'pkg/flags: flag "-v" is no longer supported - ignoring.'),
        ("W", 'pkg/flags: flag "-force" is no longer supported - ignoring.'),
        ("W", "etcdmain: no data-dir provided, using default data-dir ./default.etcd"),
    ]
    _, log = run(["--logger=zap"])
    assert json.loads(log) | {"ts": ""} == {
        "level": "warn",
        "ts": "",
        "caller": "etcdmain/etcd.go:115",
        "msg": "'data-dir' was empty; using default",
        "data-dir": "default.etcd",
    }


def test_accepts_etcd_34_flags_it_does_not_act_on() -> None:
    argv = [
        "--cert-file=c",
        "--key-file=k",
        "--client-cert-auth",
        "--trusted-ca-file=t",
        "--peer-auto-tls",
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=1000",
        "--strict-reconfig-check=false",
        "--enable-pprof",
        "--metrics=extensive",
        "--listen-metrics-urls=http://127.0.0.1:2381",
        "--max-snapshots=1",
        "--max-wals=1",
        "--cors=http://a:1",
        "--experimental-initial-corrupt-check",
        "--experimental-corrupt-check-time=1m",
        "--experimental-watch-progress-notify-interval=5s",
        "--experimental-compaction-batch-limit=10",
        "--grpc-keepalive-timeout=1s",
        "--debug",
        "--log-outputs=stderr",
        "--logger=zap",
        "--unsafe-no-fsync",
        "--force-new-cluster",
        "--auth-token=simple",
    ]
    cfg, _ = run(argv)
    assert cfg.unsafe_no_fsync and cfg.client_cert_auth and cfg.force_new_cluster
    assert cfg.log_level == "debug"  # --debug
    assert cfg.listen_metrics_urls == ["http://127.0.0.1:2381"] and cfg.cors == ["http://a:1"]


# --- errors, as etcd reports them ---

USAGE_START = "Usage:"


@pytest.mark.parametrize(
    ("argv", "first_line"),
    [
        (["--foo"], "flag provided but not defined: -foo"),
        (["-foo=1"], "flag provided but not defined: -foo"),
        (["--experimental-memory-mlock"], "flag provided but not defined: -experimental-memory-mlock"),
        (["--heartbeat-interval", "abc"], 'invalid value "abc" for flag -heartbeat-interval: parse error'),
        (["--heartbeat-interval=-5"], 'invalid value "-5" for flag -heartbeat-interval: parse error'),
        (
            ["--experimental-snapshot-catchup-entries=-1"],
            'invalid value "-1" for flag -experimental-snapshot-catchup-entries: parse error',
        ),
        (["--max-txn-ops=+5"], 'invalid value "+5" for flag -max-txn-ops: parse error'),
        (
            ["--max-txn-ops=99999999999999999999"],
            'invalid value "99999999999999999999" for flag -max-txn-ops: value out of range',
        ),
        (["--grpc-keepalive-min-time", "5"], 'invalid value "5" for flag -grpc-keepalive-min-time: parse error'),
        (["--initial-cluster-state", "bogus"], 'invalid value "bogus" for flag -initial-cluster-state: invalid value'),
        (["--enable-v2=maybe"], 'invalid boolean value "maybe" for -enable-v2: parse error'),
        (["--name"], "flag needs an argument: -name"),
        (["---name", "x"], "bad flag syntax: ---name"),
        (
            ["--max-concurrent-streams=x"],
            'invalid value "x" for flag -max-concurrent-streams: strconv.ParseUint: parsing "x": invalid syntax',
        ),
        (
            ["--listen-client-urls", "http://foo"],
            'invalid value "http://foo" for flag -listen-client-urls: URL address does not have the form "host:port": '
            "http://foo",
        ),
        (
            ["--listen-client-urls", "ftp://127.0.0.1:23790"],
            'invalid value "ftp://127.0.0.1:23790" for flag -listen-client-urls: URL scheme must be http, https, unix, '
            "or unixs: ftp://127.0.0.1:23790",
        ),
        (
            ["--listen-client-urls", "127.0.0.1:23790"],
            'invalid value "127.0.0.1:23790" for flag -listen-client-urls: parse "127.0.0.1:23790": first path '
            "segment in URL cannot contain colon",
        ),
        (
            ["--listen-client-urls", "http://127.0.0.1:1/x"],
            'invalid value "http://127.0.0.1:1/x" for flag -listen-client-urls: URL must not contain a path: '
            "http://127.0.0.1:1/x",
        ),
        (
            ["--cors=http://a:1,*"],
            'invalid value "http://a:1,*" for flag -cors: URL scheme must be http, https, unix, or unixs: *',
        ),
    ],
)
def test_flag_errors_exit_2_with_usage(argv: list[str], first_line: str) -> None:
    err = fail(argv)
    assert err.exit_code == 2
    lines = err.message.splitlines()
    assert lines[0] == first_line
    assert lines[1] == USAGE_START


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ["--heartbeat-interval", "500"],
            "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]",
        ),
        (["--heartbeat-interval", "0"], "--heartbeat-interval must be >0 (set to 0ms)"),
        (
            ["--election-timeout", "60000"],
            "--election-timeout[60000ms] is too long, and should be set less than 50000ms",
        ),
        (["--logger", "bogus"], 'unknown logger option "bogus"'),
        (["--auto-compaction-mode", "bogus"], 'unknown auto-compaction-mode "bogus"'),
        (
            ["--listen-client-urls=http://foo.bar:23797", "--advertise-client-urls=http://foo.bar:23797"],
            "expected IP in URL for binding (http://foo.bar:23797)",
        ),
        (
            ["--initial-advertise-peer-urls=http://:23796"],
            '--initial-advertise-peer-urls "http://:23796" must be "host:port" (unexpected empty host (http://:23796))',
        ),
        (
            ["--initial-cluster", "a=http://127.0.0.1:1", "--discovery", "http://x:1"],
            'multiple discovery or bootstrap flags are set. Choose one of "initial-cluster", "discovery" or '
            '"discovery-srv"',
        ),
        (["foo"], "'foo' is not a valid flag"),
        (["--", "--name", "x"], "'--name' is not a valid flag"),
    ],
)
def test_invalid_configuration_exits_1(argv: list[str], error: str) -> None:
    err = fail(argv)
    assert err.exit_code == 1
    assert capnslog(err.message) == ("E", f"etcdmain: error verifying flags, {error}. See 'etcd --help'.")


def test_invalid_configuration_with_zap_logger_is_a_zap_line() -> None:
    err = fail(["--logger", "zap", "--heartbeat-interval", "500"])
    assert err.exit_code == 1
    line = json.loads(err.message)
    assert list(line) == ["level", "ts", "caller", "msg", "error"]
    assert (line["level"], line["caller"], line["msg"]) == ("warn", "etcdmain/etcd.go:66", "failed to verify flags")
    assert line["error"] == "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]"


def test_listen_client_urls_needs_advertise_client_urls() -> None:
    err = fail(["--listen-client-urls", "http://127.0.0.1:23795"])
    lines = err.message.splitlines()
    assert err.exit_code == 1 and len(lines) == 2
    assert capnslog(lines[0])[1] == (
        "etcdmain: error verifying flags, --advertise-client-urls is required when --listen-client-urls is set "
        "explicitly. See 'etcd --help'."
    )
    # etcd 3.4 quirk: --listen-client-urls "" counts as set and keeps the default URL.
    assert fail(["--listen-client-urls", ""]).exit_code == 1


def test_unknown_log_level_exits_2_like_etcds_panic() -> None:
    err = fail(["--log-level", "bogus"])
    assert (err.exit_code, err.message) == (2, 'panic: unknown level "bogus"')


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ["--initial-cluster", "foo=http://127.0.0.1:23796"],
            'couldn\'t find local name "default" in the initial cluster configuration',
        ),
        (
            ["--initial-advertise-peer-urls", "http://127.0.0.1:23796"],
            "--initial-cluster has default=http://localhost:2380 but missing from --initial-advertise-peer-urls="
            'http://127.0.0.1:23796 (resolved urls: "http://127.0.0.1:23796" != "http://localhost:2380")',
        ),
        (
            [
                "--initial-cluster=default=http://127.0.0.1:23796,default=http://127.0.0.1:23796",
                "--initial-advertise-peer-urls=http://127.0.0.1:23796",
            ],
            "failed to resolve http://127.0.0.1:23796 to match --initial-cluster=default=http://127.0.0.1:23796 "
            '(len(["http://127.0.0.1:23796"]) != len(["http://127.0.0.1:23796" "http://127.0.0.1:23796"]))',
        ),
        (
            ["--initial-cluster=default=127.0.0.1:23796"],
            'error setting up initial cluster: parse "127.0.0.1:23796": first path segment in URL cannot contain colon',
        ),
        (
            [
                "--initial-cluster=default=http://127.0.0.1:23796,b=http://127.0.0.1:23796",
                "--initial-advertise-peer-urls=http://127.0.0.1:23796",
            ],
            "initial cluster b=http://127.0.0.1:23796,default=http://127.0.0.1:23796 has duplicate url",
        ),
        (
            ["--initial-cluster-state=existing", "--discovery=http://x:1"],
            "discovery URL should not be set when joining existing initial cluster",
        ),
    ],
)
def test_bootstrap_errors(argv: list[str], error: str) -> None:
    err = fail(argv)
    assert (err.exit_code, capnslog(err.message)) == (1, ("C", f"etcdmain: {error}"))
    zap = fail(["--logger=zap", *argv]).message.splitlines()
    assert [json.loads(line)["msg"] for line in zap] == ["failed to start etcd", "discovery failed"]
    assert json.loads(zap[0])["error"] == error


def test_bootstrap_checks_skip_a_member_with_a_wal(tmp_path: Path) -> None:
    wal = tmp_path / "d" / "member" / "wal"
    wal.mkdir(parents=True)
    (wal / "0000000000000000-0000000000000000.wal").write_bytes(b"")
    cfg, _ = run(["--data-dir", str(tmp_path / "d"), "--initial-cluster", "foo=http://127.0.0.1:23796"])
    assert cfg.initial_cluster == "foo=http://127.0.0.1:23796"


# --- help and version ---


def test_help_exits_0_and_lists_the_flags() -> None:
    for argv in (["--help"], ["-h"], ["-help=false"]):
        err = fail(argv)
        assert err.exit_code == 0
    text = fail(["--help"]).message
    for flag in new_flag_set().flags.values():
        if flag.section != HIDDEN:
            assert f"  --{flag.name} " in text, flag.name
    assert "--unsafe-no-fsync 'false'" in text
    assert "--listen-client-urls 'http://localhost:2379,http://localhost:4001'" in text


def test_version() -> None:
    err = fail(["--version"])
    assert err.exit_code == 0
    lines = err.message.splitlines()
    assert lines[0] == "etcd Version: 3.4.23" and lines[1] == "pyetcd_fast Version: 0.1.0"
    # etcd checks --version before the environment, so a conflict does not matter yet.
    assert fail(["--name", "y", "--version"], {"ETCD_NAME": "x"}).exit_code == 0


# --- environment ---


def test_env_vars_set_unset_flags() -> None:
    env = {
        "ETCD_NAME": "e1",
        "ETCD_DATA_DIR": "/data/e1",
        "ETCD_LISTEN_CLIENT_URLS": "http://127.0.0.1:23790",
        "ETCD_ADVERTISE_CLIENT_URLS": "http://127.0.0.1:23790",
        "ETCD_ENABLE_V2": "true",
        "ETCD_HEARTBEAT_INTERVAL": "",  # empty: ignored, as etcd does
        "PATH": "/bin",
    }
    cfg, log = run(["--snapshot-count", "5"], env)
    assert (cfg.name, cfg.data_dir_path, cfg.snapshot_count, cfg.enable_v2) == ("e1", "/data/e1", 5, True)
    assert cfg.listen_client_urls == ["http://127.0.0.1:23790"] and cfg.heartbeat_interval == 100
    assert cfg.initial_cluster == "e1=http://localhost:2380"
    assert ("I", "pkg/flags: recognized and used environment variable ETCD_NAME=e1") in [
        capnslog(line) for line in log.splitlines()
    ]


def test_unknown_env_var_only_warns() -> None:
    cfg, log = run([], {"ETCD_BOGUS": "1"})
    assert cfg.name == "default"
    assert [capnslog(line) for line in log.splitlines()] == [
        ("W", "pkg/flags: unrecognized environment variable ETCD_BOGUS=1"),
        ("W", "etcdmain: no data-dir provided, using default data-dir ./default.etcd"),
    ]


def test_env_var_shadowed_by_flag_is_fatal() -> None:
    err = fail(["--name", "y"], {"ETCD_NAME": "x"})
    assert err.exit_code == 1
    assert capnslog(err.message) == (
        "C",
        'pkg/flags: conflicting environment variable "ETCD_NAME" is shadowed by corresponding command-line flag '
        "(either unset environment variable or disable flag)",
    )


def test_bad_env_value() -> None:
    err = fail([], {"ETCD_HEARTBEAT_INTERVAL": "abc"})
    assert (err.exit_code, capnslog(err.message)[1]) == (
        1,
        'etcdmain: error verifying flags, invalid value "abc" for ETCD_HEARTBEAT_INTERVAL: parse error. '
        "See 'etcd --help'.",
    )
    # Env values go through the same validation as flags.
    err = fail([], {"ETCD_LISTEN_CLIENT_URLS": "http://127.0.0.1:23797"})
    assert "--advertise-client-urls is required" in err.message


# --- config file ---


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "etcd.conf.yml"
    path.write_text(text)
    return str(path)


def test_config_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "name: cf\n"
        "data-dir: /var/lib/cf\n"
        "listen-client-urls: http://127.0.0.1:23790,http://127.0.0.2:23790\n"
        "listen-peer-urls: http://127.0.0.1:23800\n"
        "initial-advertise-peer-urls: http://127.0.0.1:23800\n"
        "heartbeat-interval: 50\n"
        "election-timeout: 500\n"
        "snapshot-count: 7\n"
        "quota-backend-bytes: 1024\n"
        "max-request-bytes: 2048\n"
        "max-txn-ops: 3\n"
        "log-level: warn\n"
        "logger: zap\n"
        "log-outputs: [stderr]\n"
        "grpc-keepalive-min-time: 2000000000\n"
        "enable-v2: true\n"
        "client-transport-security:\n  cert-file: /c.pem\n  client-cert-auth: true\n"
        "some-future-key: 1\n",
    )
    cfg, log = run(["--config-file", path, "--name", "ignored"], {"ETCD_DATA_DIR": "/ignored", "ETCD_BOGUS": "1"})
    assert cfg.name == "cf" and cfg.data_dir_path == "/var/lib/cf"
    assert cfg.listen_client_urls == ["http://127.0.0.1:23790", "http://127.0.0.2:23790"]
    assert cfg.advertise_client_urls == Config().advertise_client_urls  # no "required" check for config files
    assert cfg.initial_cluster == "cf=http://127.0.0.1:23800"
    assert (cfg.heartbeat_interval, cfg.election_timeout, cfg.snapshot_count) == (50, 500, 7)
    assert (cfg.quota_backend_bytes, cfg.max_request_bytes, cfg.max_txn_ops) == (1024, 2048, 3)
    assert (cfg.log_level, cfg.logger, cfg.log_outputs) == ("warn", "zap", ["stderr"])
    assert cfg.grpc_keepalive_min_time == 2.0 and cfg.enable_v2 and cfg.cert_file == "/c.pem" and cfg.client_cert_auth
    assert cfg.config_file == path
    assert capnslog(log) == (
        "I",
        f'etcdmain: Loading server configuration from "{path}". Other configuration command line flags and '
        "environment variables will be ignored if provided.",
    )
    assert run([], {"ETCD_CONFIG_FILE": path})[0].name == "cf"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "heartbeat-interval: abc\n",
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal string into Go struct field "
            "configYAML.heartbeat-interval of type uint",
        ),
        (
            "heartbeat-interval: -5\n",
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal number -5 into Go struct field "
            "configYAML.heartbeat-interval of type uint",
        ),
        (
            "name: 123\n",
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal number into Go struct field "
            "configYAML.name of type string",
        ),
        (
            "log-outputs: stderr\n",
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal string into Go struct field "
            "configYAML.log-outputs of type []string",
        ),
        (
            "- a\n",
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal array into Go value of type "
            "embed.configYAML",
        ),
        (
            "name: cf\nheartbeat-interval: 500\n",
            "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[500ms]",
        ),
        ("initial-cluster-state: bogus\n", 'unexpected clusterState "bogus"'),
    ],
)
def test_config_file_errors(tmp_path: Path, text: str, error: str) -> None:
    err = fail(["--config-file", write(tmp_path, text)])
    assert (err.exit_code, capnslog(err.message)) == (
        1,
        ("E", f"etcdmain: error verifying flags, {error}. See 'etcd --help'."),
    )


def test_config_file_missing_or_bad(tmp_path: Path) -> None:
    err = fail(["--config-file", "nonexist.yaml"])
    assert capnslog(err.message)[1].startswith(
        "etcdmain: error verifying flags, open nonexist.yaml: no such file or directory."
    )
    err = fail(["--config-file", write(tmp_path, "name: [\n")])
    assert "error verifying flags, error converting YAML to JSON: yaml: line" in err.message
    err = fail(["--config-file", write(tmp_path, "logger: zap\nlisten-client-urls: http://foo\n")])
    assert (err.exit_code, err.message) == (
        1,
        'unexpected error setting up listen-client-urls: URL address does not have the form "host:port": http://foo',
    )


# --- log ---


def test_zap_line_shape(capsys: pytest.CaptureFixture[str]) -> None:
    logger = Logger()
    logger.info("starting an etcd server", name="n1", **{"data-dir": "/d", "listen-client-urls": ["http://a:1"]})
    line = capsys.readouterr().err
    assert line.endswith("\n") and line.count("\n") == 1
    record = json.loads(line)
    assert list(record) == ["level", "ts", "caller", "msg", "name", "data-dir", "listen-client-urls"]
    assert record["level"] == "info" and record["msg"] == "starting an etcd server"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d{4})", record["ts"])
    assert re.fullmatch(r"etcdmain/test_config\.py:\d+", record["caller"])
    assert record["listen-client-urls"] == ["http://a:1"]
    assert json.loads(zap_line("warn", "m", "x/y.go:1"))["caller"] == "x/y.go:1"
    assert CAPNSLOG.match(capnslog_line("E", "etcdmain", "x"))


def test_log_level_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logger = get_logger()
    saved = (logger.level, logger.outputs)
    try:
        configure(Config(log_level="warn"))
        logger.info("hidden")
        logger.debug("hidden")
        logger.warn("shown", n=1)
        logger.error("shown too")
        levels = [json.loads(line)["level"] for line in capsys.readouterr().err.splitlines()]
        assert levels == ["warn", "error"]

        out = tmp_path / "etcd.log"
        configure(Config(debug=True, log_outputs=["stdout", str(out)]))
        logger.debug("to both")
        assert json.loads(capsys.readouterr().out)["msg"] == "to both"
        assert json.loads(out.read_text())["level"] == "debug"
    finally:
        logger.close()
        logger.level, logger.outputs = saved


def test_module_contract_docstrings() -> None:
    import pyetcd_fast.etcdmain as pkg
    from pyetcd_fast.etcdmain import configfile, flagdefs, flags, help, log

    for module in (pkg, config_mod, configfile, flagdefs, flags, help, log):
        assert module.__doc__ and "Contract" in module.__doc__, module.__name__


# --- etcd 2's listening defaults and etcd 0.4's address flags (ours, as etcd 2 had them) ---


def test_clients_are_served_on_2379_and_4001_by_default() -> None:
    cfg, _ = run([])
    assert cfg.listen_client_urls == cfg.advertise_client_urls == ["http://localhost:2379", "http://localhost:4001"]


def test_legacy_address_flags_map_onto_the_url_flags() -> None:
    cfg, _ = run(
        ["-name", "m2", "-addr", "127.0.0.1:4002", "-bind-addr", "0.0.0.0:4002", "-peer-addr", "127.0.0.1:7002"]
        + ["-peer-bind-addr", "127.0.0.1:7002"]
    )
    assert cfg.advertise_client_urls == ["http://127.0.0.1:4002"]
    assert cfg.listen_client_urls == ["http://0.0.0.0:4002"]
    assert cfg.initial_advertise_peer_urls == cfg.listen_peer_urls == ["http://127.0.0.1:7002"]
    assert cfg.initial_cluster == "m2=http://127.0.0.1:7002"


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["-addr", "127.0.0.1:4001", "--advertise-client-urls", "http://127.0.0.1:2379"],
         "Set only one of flags -advertise-client-urls and -addr"),
        (["-peer-bind-addr", "127.0.0.1:7001", "-listen-peer-urls", "http://127.0.0.1:2380"],
         "Set only one of flags -listen-peer-urls and -peer-bind-addr"),
        (["-bind-addr", "127.0.0.1:4001"],
         "--advertise-client-urls is required when --listen-client-urls is set explicitly"),
    ],
)  # fmt: skip
def test_legacy_address_flags_conflict_with_the_new_ones(argv: list[str], error: str) -> None:
    e = fail(argv)
    assert e.exit_code == 1 and error in str(e)


@pytest.mark.parametrize(
    ("value", "reason"),
    [("localhost:4001", "invalid IP address: localhost"), ("127.0.0.1", "address 127.0.0.1: missing port in address")],
)
def test_legacy_address_flags_take_an_ip_and_port(value: str, reason: str) -> None:
    e = fail(["-addr", value])
    assert e.exit_code == 2 and str(e).startswith(f'invalid value "{value}" for flag -addr: {reason}')


def test_snapshot_catchup_entries_is_etcd_35s_hidden_flag() -> None:
    """etcd 3.4 keeps 5000 raft entries behind a snapshot; etcd 3.5's hidden flag sets it (the robustness suite
    sets 20 so that followers install snapshots under faults). Not listed by --help, as 3.4 has no such flag."""
    assert parse([], {}).experimental_snapshot_catchup_entries == 5000
    assert parse(["--experimental-snapshot-catchup-entries=20"], {}).experimental_snapshot_catchup_entries == 20
    env = {"ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES": "7"}
    assert parse([], env).experimental_snapshot_catchup_entries == 7

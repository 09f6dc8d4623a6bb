"""End-to-end tests: the NixOS module (nix/module.nix) and the flake.

tests/fixtures/nix holds what the module gave for a tsnsrv user with three
services, evaluated against a nixpkgs lib (regen.sh, see docs/nixos.md):
the JSON configuration and the unit. These tests check that record: portico
accepts the configuration, the unit agrees with dist/portico.service, and
the record was made from the module as it is now."""

import hashlib
import json

from common import *  # noqa: F401,F403

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIXTURE = os.path.join(ROOT, "tests", "fixtures", "nix")
MODULE = os.path.join(ROOT, "nix", "module.nix")
DIST_UNIT = os.path.join(ROOT, "dist", "portico.service")
NIX_FILES = ["flake.nix", "nix/module.nix", "nix/package.nix", "tests/fixtures/nix/eval.nix"]

# Keys whose value in the module's unit must be the shipped unit's (booleans
# compared as systemd reads them: yes/true, no/false).
SAME_AS_DIST = [
    "NotifyAccess", "Restart", "RestartSec", "TimeoutStopSec", "WatchdogSec", "LimitNOFILE",
    "DynamicUser", "User", "StateDirectory", "StateDirectoryMode", "RuntimeDirectory",
    "RuntimeDirectoryMode", "UMask", "CapabilityBoundingSet", "NoNewPrivileges", "ProtectSystem",
    "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectHostname", "ProtectClock",
    "ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups",
    "ProtectProc", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime",
    "RestrictSUIDSGID", "LockPersonality", "MemoryDenyWriteExecute", "SystemCallArchitectures",
    "SystemCallFilter", "SystemCallErrorNumber", "After", "Wants", "WantedBy",
]


def unit_entries(path):
    """{key: [value, ...]} of a unit file, comments and sections left out."""
    out = {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        k, _, v = line.partition("=")
        out.setdefault(k, []).append(v)
    return out


def systemd_value(v):
    return {"yes": "true", "no": "false"}.get(v, v)


@test()
def test_nix_fixture_is_from_the_current_module(ctx):
    """A change to nix/module.nix without regen.sh's new record fails here."""
    recorded = dict(l.split(" ", 1) for l in open(os.path.join(FIXTURE, "source.txt")).read()
                    .splitlines())
    now = hashlib.sha256(open(MODULE, "rb").read()).hexdigest()
    eq(recorded["module_sha256"], now,
       "sha256 of nix/module.nix against tests/fixtures/nix/source.txt: the module changed "
       "since the fixture was made; run tests/fixtures/nix/regen.sh NIXPKGS_LIB (docs/nixos.md)")


@test()
def test_nix_fixture_configuration_passes_check(ctx):
    """The JSON the module rendered for three tsnsrv services is a configuration
    portico accepts, with every service in it."""
    path = os.path.join(FIXTURE, "portico.json")
    r = subprocess.run([ctx.binary, "check", "-c", path], capture_output=True, text=True,
                       timeout=30)
    eq(r.returncode, 0, "portico check on the module's JSON; stderr: %s" % r.stderr)
    expect("ok: 3 services" in r.stdout, "check output: %r" % r.stdout)
    doc = json.load(open(path))
    eq(sorted(doc["services"]), ["docs", "grafana", "photos"], "services")
    photos = doc["services"]["photos"]
    eq(photos["upstream"], "http://127.0.0.1:2283", "urlParts became the upstream")
    eq(photos["auth"], "photos", "authURL became a provider named after the service")
    eq(photos["auth_bypass_tailnet"], True, "authBypassForTailnet")
    eq(doc["auth"]["photos"]["url"], "http://127.0.0.1:9091/api/verify?rd=https://auth.example.com/",
       "authURL + authPath")
    eq(doc["services"]["docs"]["upstream"], "unix:/run/docs/http.sock", "upstreamUnixAddr")
    eq(doc["tailscale"]["funnel"], {"service": "docs"}, "funnel = true")
    eq(doc["tailscale"]["service_tags"], ["tag:service"], "tags")
    eq(doc["tailscale"]["publish"], False, "the unit publishes (publishFromUnit), not the daemon")


@test()
def test_nix_fixture_unit_agrees_with_dist_unit(ctx):
    """The module's unit has the shipped unit's sandbox, limits and ordering;
    its command lines check, run and reload the same file."""
    nixu = unit_entries(os.path.join(FIXTURE, "portico.service"))
    dist = unit_entries(DIST_UNIT)
    for k in SAME_AS_DIST:
        eq([systemd_value(v) for v in nixu.get(k, [])], [systemd_value(v) for v in dist.get(k, [])],
           "%s in the module's unit and dist/portico.service" % k)
    eq(nixu["Type"], ["notify-reload"], "Type (the fixture's systemd is 257)")
    conf = "/etc/portico/portico.yaml"
    eq(len(nixu["ExecStart"]), 1, "ExecStart")
    expect(re.fullmatch(r"/nix/store/\S+/bin/portico run -c " + re.escape(conf), nixu["ExecStart"][0]),
           "ExecStart: %r" % nixu["ExecStart"])
    expect(re.fullmatch(r"/nix/store/\S+/bin/portico check -c " + re.escape(conf),
                        nixu["ExecStartPre"][0]), "ExecStartPre: %r" % nixu["ExecStartPre"])
    # notify-reload: systemd sends SIGHUP itself, then runs ExecReload=: the
    # check, then (publishFromUnit, on with services) apply as root.
    apply = re.sub(r" check -c ", " tailscale apply -c ", nixu["ExecStartPre"][0])
    eq(nixu["ExecReload"], [nixu["ExecStartPre"][0], "+" + apply], "ExecReload under notify-reload")
    eq(nixu["ExecStartPost"], ["-+" + apply], "ExecStartPost: apply as root, its failure not the start's")
    expect(re.fullmatch(r"/nix/store/\S+-X-Reload-Triggers-portico", nixu["X-Reload-Triggers"][0]),
           "X-Reload-Triggers: %r" % nixu.get("X-Reload-Triggers"))
    eq(nixu["X-StopIfChanged"], ["false"], "X-StopIfChanged")
    # Ports 8080 and 9500 only: no capability is handed to the process.
    eq(nixu["AmbientCapabilities"], [""], "AmbientCapabilities")


@test()
def test_nix_fixture_checks(ctx):
    """What the module does beside the main example, as recorded: the capability
    for ports below 1024, Type and ExecReload by systemd version, and the
    messages of options portico cannot honour."""
    c = json.load(open(os.path.join(FIXTURE, "checks.json")))
    eq(c["ambient_capabilities"], {"0.0.0.0:443": "CAP_NET_BIND_SERVICE", "127.0.0.1:8080": "",
                                   "unix:/run/portico/http.sock": ""}, "AmbientCapabilities by listener")
    eq(c["type_by_systemd_version"], {"252": "notify", "253": "notify-reload"}, "Type")
    old = c["exec_reload_on_systemd_252"]
    eq(len(old), 3, "ExecReload on systemd 252: check, the signal, apply")
    expect(old[1].endswith("/bin/kill -HUP $MAINPID"), "second ExecReload: %r" % old[1])
    expect(re.fullmatch(r"\+/nix/store/\S+/bin/portico tailscale apply -c /etc/portico/portico.yaml",
                        old[2]), "third ExecReload: %r" % old[2])
    daemon = c["daemon_publishes"]
    eq(len(daemon["exec_reload"]), 1, "publishFromUnit = false: only the check on reload")
    eq(daemon["exec_start_post"], [], "publishFromUnit = false: no ExecStartPost")
    expect("publish" not in daemon["tailscale"], "publishFromUnit = false: tailscale.publish left as is")
    dist = unit_entries(DIST_UNIT)
    eq(old[0].split("/bin/portico", 1)[1], dist["ExecReload"][0].split("/bin/portico", 1)[1],
       "the check's arguments as in dist/portico.service")
    eq(c["reload_triggers_are_the_config"], True, "reloadTriggers")
    refused = c["refused"]
    for case in ["tailnet_prefix", "toURL_with_path", "funnel_prefix_without_funnel",
                 "funnel_path_stripped", "no_upstream"]:
        eq(len(refused[case]), 1, "assertions for %s: %r" % (case, refused[case]))
        expect(refused[case][0].startswith("services.portico.services.app: "), refused[case][0])


@test(timeout=60)
def test_nix_files_parse(ctx):
    """flake.nix, the module, the package and the fixture's evaluation parse
    (nix-instantiate --parse, from Debian's nix-bin)."""
    nix = shutil.which("nix-instantiate")
    expect(nix, "nix-instantiate is not installed (Debian package nix-bin; scripts/deps.sh test)")
    for rel in NIX_FILES:
        r = subprocess.run([nix, "--parse", os.path.join(ROOT, rel)], capture_output=True,
                           text=True, timeout=30)
        eq(r.returncode, 0, "nix-instantiate --parse %s: %s" % (rel, r.stderr))
    bad = os.path.join(ctx.dir, "bad.nix")
    with open(bad, "w") as f:
        f.write("{ a = 1; ")
    r = subprocess.run([nix, "--parse", bad], capture_output=True, text=True, timeout=30)
    expect(r.returncode != 0, "a broken file fails --parse (the check can fail)")


@test(timeout=60)
def test_nix_fixture_unit_passes_systemd_analyze_verify(ctx):
    """systemd reads the module's unit without a complaint. The store paths
    become this build and /bin/kill; Type=notify-reload becomes notify where
    systemd is older than 253 (Debian 12 has 252)."""
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        ctx.notes.append("SKIPPED: systemd-analyze is not installed (Debian package systemd)")
        return
    text = open(os.path.join(FIXTURE, "portico.service")).read()
    text = re.sub(r"/nix/store/[^/\s]+-portico-[^/\s]+/bin/portico", os.path.abspath(ctx.binary), text)
    text = re.sub(r"/nix/store/[^/\s]+-coreutils-[^/\s]+/bin/kill", "/bin/kill", text)
    expect("/nix/store/" not in text.replace("X-Reload-Triggers=/nix/store/", ""),
           "a store path left in the unit: %s" % text)
    version = subprocess.run([analyze, "--version"], capture_output=True, text=True).stdout.split()
    if len(version) > 1 and version[1].isdigit() and int(version[1]) < 253:
        text = text.replace("Type=notify-reload", "Type=notify")
    path = os.path.join(ctx.dir, "portico.service")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([analyze, "verify", path], capture_output=True, text=True, timeout=60)
    own = [l for l in (r.stdout + r.stderr).splitlines() if "portico.service" in l]
    eq(own, [], "systemd-analyze verify on the module's unit")
    eq(r.returncode, 0, "systemd-analyze verify exit status; output: %s" % (r.stdout + r.stderr))

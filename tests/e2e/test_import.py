"""End-to-end tests: `portico import tsnsrv` on what tsnsrv users have (the
command lines of tsnsrv's README and of the forward-auth fork's, the fork's
config.example.yaml, and nix eval --json of services.tsnsrv.services from
tsnsrv's NixOS module; see tests/fixtures/tsnsrv/README.md), each output
accepted by `portico check`."""

from common import *  # noqa: F401,F403

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tsnsrv")

# fixture -> the tsnsrv services in it
EXPECTED = {
    "readme.cmdlines": ["happy-computer", "happy-computer-funnel", "happy-computer-webhook",
                        "hydra-webhook", "hydra-webhook2"],
    "fork-readme.cmdlines": ["protected-app", "my-app", "my-app2"],
    "fork-multi.cmdlines": ["web-app", "internal-api", "web"],
    "nixos-unit.cmdlines": ["basic", "custom"],
    "fork-config.example.yaml": ["web-app", "internal-api", "public-docs", "secure-service",
                                 "socket-service", "custom-state-service"],
    "nixos-tests-all.json": ["basic", "custom"],
    "nixos-fork-readme.json": ["my-app"],
    "nixos-examples.json": ["happy-computer", "happy-computer-webhook", "hydra-webhook", "site",
                            "socket-app"],
}


def run_import(ctx, *args, stdin=None):
    p = subprocess.run([ctx.binary, "import", "tsnsrv"] + list(args), input=stdin,
                       capture_output=True, text=True, timeout=20 * SCALE)
    return p.returncode, p.stdout, p.stderr


def comments(yaml_text):
    return [ln.strip() for ln in yaml_text.splitlines()
            if re.match(r"\s*# (not carried over|not needed|note): ", ln)]


@test()
def test_import_tsnsrv_fixtures_pass_check(ctx):
    """Every fixture converts (exit 0, or 3 when something was left behind),
    and portico check accepts the result with one service per tsnsrv
    service, under the same names, and no listen: entry (tailnet callers
    come through the backend listener)."""
    for fixture, names in EXPECTED.items():
        rc, out, err = run_import(ctx, os.path.join(FIXTURES, fixture))
        expect(rc in (0, 3), "%s: exit %d, stderr %r" % (fixture, rc, err))
        path = os.path.join(ctx.dir, fixture + ".portico.yaml")
        open(path, "w").write(out)
        crc, cout, cerr = run_check(ctx.binary, path)
        eq(crc, 0, "%s: portico check exit (stderr %r)\n%s" % (fixture, cerr, out))
        expect(cout.startswith("ok: %d service" % len(names)), "%s: check said %r" % (fixture, cout))
        expect(not re.search(r"^listen:", out, re.M), "%s: a listen: entry in\n%s" % (fixture, out))
        for name in names:
            expect(re.search(r"^  %s:\n(    #.*\n)*    hosts: \[%s\]\n" % (re.escape(name), re.escape(name)),
                             out, re.M), "%s: no service %s in\n%s" % (fixture, name, out))


@test()
def test_import_tsnsrv_comments_what_does_not_carry_over(ctx):
    """The README's services: each -funnel and each path allowlist is a
    comment under its service, stderr repeats each comment once with the
    service's name, and the exit status is 3."""
    rc, out, err = run_import(ctx, os.path.join(FIXTURES, "readme.cmdlines"))
    eq(rc, 3, "exit status (stderr %r)" % err)
    notes = comments(out)
    funnels = [n for n in notes if n.startswith("# not carried over: -funnel:")]
    eq(len(funnels), 4, "funnel comments in\n%s" % out)
    expect(any("tailscale: {funnel: {service: happy-computer-webhook, paths: [/_matrix, "
               "/_synapse/client]}}" in n for n in funnels), "the webhook's funnel paths: %r" % funnels)
    prefixes = [n for n in notes if n.startswith("# not carried over: -prefix:")]
    eq(len(prefixes), 3, "allowlist comments in\n%s" % out)
    lines = [ln for ln in err.splitlines() if not ln.startswith("portico import tsnsrv:")]
    eq(len(lines), len(notes), "stderr lines against comments: %r" % err)
    expect(re.search(r"^portico import tsnsrv: 5 services; 7 settings not carried over, 0 not "
                     r"needed", err, re.M), "summary %r" % err)
    # the README's hydra webhook: the prefix the URL puts back needs no route
    expect("routes:" not in out, "no route needed in\n%s" % out)


@test()
def test_import_tsnsrv_fork_auth_becomes_a_provider(ctx):
    """The fork's README service (NixOS): its forward auth becomes a provider
    the service names, with the bypass; its Funnel (one service, every path)
    becomes tailscale.funnel; exit 0, as nothing stays behind."""
    rc, out, err = run_import(ctx, os.path.join(FIXTURES, "nixos-fork-readme.json"))
    eq(rc, 0, "exit status (stderr %r)" % err)
    expect("  funnel:\n    service: my-app    # -funnel\n" in out, "funnel in\n%s" % out)
    expect("auth:\n  authelia:\n    url: \"http://authelia:9091/api/authz/forward-auth\"\n"
           "    style: forward-auth\n    timeout: 10s\n"
           "    copy_headers: [\"Remote-Email\", \"Remote-Groups\", \"Remote-User\"]\n" in out,
           "provider in\n%s" % out)
    expect("    upstream: \"http://localhost:8080\"\n    auth: authelia\n"
           "    auth_bypass_tailnet: true\n" in out, "service in\n%s" % out)


@test()
def test_import_tsnsrv_all_carried_exits_0_from_stdin(ctx):
    """Nothing left behind: exit 0, no comment, a zero summary; '-' and no
    file both read stdin, and --from forces the reader."""
    line = "tsnsrv -name grafana -upstreamHeader 'X-Env: home' http://127.0.0.1:3000\n"
    for args in (["-"], []):
        rc, out, err = run_import(ctx, *args, stdin=line)
        eq(rc, 0, "exit status (stderr %r)" % err)
        eq(comments(out), [], "comments")
        expect("  grafana:\n    hosts: [grafana]\n    upstream: \"http://127.0.0.1:3000\"\n"
               "    headers:\n      \"X-Env\": \"home\"\n" in out, "output\n%s" % out)
        eq(err.strip(), "portico import tsnsrv: 1 service; 0 settings not carried over, 0 not "
                        "needed (see the # comments)", "stderr")
    js = open(os.path.join(FIXTURES, "nixos-tests-all.json")).read()
    rc, out, err = run_import(ctx, "--from", "nix-json", "-", stdin=js)
    eq(rc, 3, "exit status (stderr %r)" % err)
    rc, out, err = run_import(ctx, "--from", "cmdline", "-", stdin=js)
    eq(rc, 1, "JSON read as command lines (stderr %r)" % err)
    expect(err.startswith("<stdin>:1: "), "stderr %r" % err)


@test()
def test_import_tsnsrv_bad_input_names_file_and_line(ctx):
    """Bad input: exit 1, nothing on stdout, one line on stderr naming the
    file and line (JSON, which has no lines for values, names the service)."""
    cases = [
        ("a.cmdlines", "# ok\ntsnsrv -name a http://127.0.0.1:1\ntsnsrv -name b -bogus http://x\n",
         ":3: flag provided but not defined: -bogus"),
        ("b.cmdlines", "tsnsrv -name a \\\n  -prefix\n", ":1: flag needs an argument: -prefix"),
        ("c.cmdlines", "tsnsrv -name 'a http://x\n", ":1: unterminated ' quote"),
        ("d.yaml", "services:\n  - name: a\n    upstream: http://x\n    stripPrefix: sometimes\n",
         ":4: stripPrefix: \"sometimes\" is not a boolean"),
        ("e.yaml", "services:\n  - name: a\n    upstream: [http://x\n", ":4: not YAML"),
        ("f.json", '{"a": {"toURL": "http://x", "timeout": "soon"}}',
         ": service a: timeout: \"soon\" is not a duration"),
        ("g.json", '{"a": {"toURL": "http://x",\n "funnel": tru}}', ":2: not JSON"),
        ("h.cmdlines", "", ": no tsnsrv service found"),
        ("i.cmdlines", "tsnsrv -name a http://x\ntsnsrv -name a http://y\n",
         ":2: service \"a\" appears twice"),
    ]
    for name, text, want in cases:
        path = os.path.join(ctx.dir, name)
        open(path, "w").write(text)
        rc, out, err = run_import(ctx, path)
        eq(rc, 1, "%s: exit status (stderr %r)" % (name, err))
        eq(out, "", "%s: stdout" % name)
        eq(err, path + want + err[len(path) + len(want):], "%s: stderr" % name)
        eq(err.count("\n"), 1, "%s: one line on stderr" % name)
    rc, out, err = run_import(ctx, os.path.join(ctx.dir, "missing.txt"))
    eq(rc, 1, "missing file: exit status")
    expect("cannot read" in err and "missing.txt" in err, "missing file: stderr %r" % err)
    for args in (["--from", "toml", "x"], ["a", "b"], ["--bogus"]):
        rc, out, err = run_import(ctx, *args)
        eq(rc, 2, "usage %r: exit status (stderr %r)" % (args, err))
    p = subprocess.run([ctx.binary, "import", "caddy"], capture_output=True, text=True,
                       timeout=20 * SCALE)
    eq(p.returncode, 2, "import from something else: exit status")

"""End-to-end tests: CLI."""

from common import *  # noqa: F401,F403


@test()
def test_check_ok_line(ctx):
    cfg = make_config({
        "one": {"hosts": ["one.test"], "upstream": "http://127.0.0.1:1"},
        "two": {"hosts": ["two.test"], "upstream": "http://127.0.0.1:2"},
        "three": {"hosts": ["three.test"], "upstream": "unix:/tmp/portico-e2e-none.sock"},
    })
    cfg["listen"].append({"addr": "127.0.0.1:0"})
    path = os.path.join(ctx.dir, "ok.yaml")
    open(path, "w").write(to_yaml(cfg) + "\n")
    rc, out, err = run_check(ctx.binary, path)
    eq(rc, 0, "exit status (stderr %r)" % err)
    eq(out.strip(), "ok: 3 services, 2 listeners", "stdout")


@test()
def test_check_unknown_key_reports_file_and_line(ctx):
    text = ("listen:\n"
            "  - addr: 127.0.0.1:0\n"
            "services:\n"
            "  svc:\n"
            "    upstream: http://127.0.0.1:1\n"
            "    bogus_key: 1\n")
    path = os.path.join(ctx.dir, "bad.yaml")
    open(path, "w").write(text)
    rc, out, err = run_check(ctx.binary, path)
    eq(rc, 1, "exit status")
    first = err.strip().split("\n")[0] if err.strip() else ""
    expect(first.startswith(path + ":6: ") and len(first) > len(path) + 4,
           "stderr should be %r followed by a message, got %r" % (path + ":6: ", err))


@test()
def test_check_json_config_accepted(ctx):
    cfg = make_config({"js": {"hosts": ["js.test"], "upstream": "http://127.0.0.1:1"},
                       "js2": {"hosts": ["js2.test"], "upstream": "http://127.0.0.1:2"}})
    path = os.path.join(ctx.dir, "c.json")
    open(path, "w").write(json.dumps(cfg, indent=1))
    rc, out, err = run_check(ctx.binary, path)
    eq(rc, 0, "exit status (stderr %r)" % err)
    expect(re.match(r"ok: 2 services, 1 listeners?\s*$", out), "stdout %r" % out)


@test()
def test_version_prints(ctx):
    p = subprocess.run([ctx.binary, "version"], capture_output=True, text=True, timeout=10 * SCALE)
    eq(p.returncode, 0, "exit status")
    expect(re.search(r"\d+\.\d+", p.stdout), "no version number in %r" % p.stdout)


@test()
def test_version_output_names_version_and_libraries(ctx):
    """`portico version`: the first line is `portico X.Y.Z` (the Makefile's
    VERSION), then one `NAME VERSION` line per library it was built with,
    http-parser and libyaml among them, each with a real version number."""
    p = subprocess.run([ctx.binary, "version"], capture_output=True, text=True, timeout=10 * SCALE)
    eq(p.returncode, 0, "exit status")
    lines = p.stdout.strip().split("\n")
    mk = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Makefile")).read()
    want = re.search(r"^VERSION\s*:?=\s*(\S+)", mk, re.M).group(1)
    eq(lines[0], "portico " + want, "first line")
    libs = {}
    for l in lines[1:]:
        m = re.match(r"([A-Za-z][\w.+-]*) (\d+\.\d+[\w.+-]*)(?: .*)?$", l)
        expect(m, "library line %r is not `NAME VERSION`" % l)
        libs[m.group(1).lower()] = m.group(2)
    for name in ("http-parser", "libyaml"):
        expect(name in libs, "no %s line in %r" % (name, p.stdout))
    # The numbers are the libraries' own, not placeholders.
    eq(libs["http-parser"].split(".")[0], "2", "http-parser major version")
    expect(libs["libyaml"].startswith("0."), "libyaml version %r" % libs["libyaml"])

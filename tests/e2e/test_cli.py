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


def _run(ctx, *args):
    r = subprocess.run([ctx.binary] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=20 * SCALE)
    return r.returncode, r.stdout, r.stderr


@test()
def test_check_without_a_file_is_a_usage_error(ctx):
    for args, want in ((["check", "-c"], "-c needs a file name"),
                       (["check", "--config"], "--config needs a file name"),
                       (["check"], "which file?"),
                       (["run", "-c"], "-c needs a file name"),
                       (["check", "-x"], 'unexpected argument "-x"')):
        rc, out, err = _run(ctx, *args)
        eq(rc, 2, "exit status of %s" % " ".join(args))
        expect(want in err, "%s: %r not in %r" % (" ".join(args), want, err))
        expect("usage: portico" in err and "portico check -c FILE" in err,
               "%s: no usage in %r" % (" ".join(args), err))
        expect('unexpected argument "-c"' not in err, err)


@test()
def test_counts_are_singular_for_one(ctx):
    cfg = make_config({"one": {"hosts": ["one.test"], "upstream": "http://127.0.0.1:1"}})
    path = os.path.join(ctx.dir, "one.yaml")
    open(path, "w").write(to_yaml(cfg) + "\n")
    rc, out, err = run_check(ctx.binary, path)
    eq(rc, 0, "exit status (stderr %r)" % err)
    eq(out.strip(), "ok: 1 service, 1 listener", "stdout")
    p = ctx.portico({"one": svc("http://127.0.0.1:9", ["one.test"])}, workers=1)
    line = p.wait_line("serving", timeout=5 * SCALE)
    expect(line and "serving 1 service on 1 listener with 1 worker" in line, "start line %r" % line)
    n = p.nlines()
    p.hup()
    line = p.wait_line("configuration reloaded", timeout=5 * SCALE, start=n)
    expect(line and line.endswith(": 1 service, 1 listener\""), "reload line %r" % line)


@test()
def test_start_up_errors_are_log_lines(ctx):
    # Like every other line portico writes: ts=... level=error msg="...", the
    # message being what check says.
    path = os.path.join(ctx.dir, "bad.yaml")
    open(path, "w").write("listen:\n  - addr: 127.0.0.1:0\nservices:\n  a:\n    bogus: 1\n")
    rc, out, err = _run(ctx, "check", "-c", path)
    eq(rc, 1, "check exit status")
    rc, out, err2 = _run(ctx, "run", "-c", path)
    eq(rc, 1, "run exit status")
    lines = [l for l in err2.splitlines() if l.strip()]
    eq(len(lines), 1, "stderr lines (%r)" % err2)
    f = logfmt_parse(lines[0])
    expect(re.match(r"\d{4}-\d\d-\d\dT", f.get("ts", "")), "ts= in %r" % lines[0])
    eq(f.get("level"), "error", "level in %r" % lines[0])
    eq(f.get("msg"), "cannot start: " + err.strip(), "msg")
    expect(f["msg"].startswith("cannot start: %s:5: " % path), "FILE:LINE in %r" % f["msg"])


@test()
def test_version_names_the_libraries_built_with_and_run_with(ctx):
    rc, out, err = _run(ctx, "version")
    eq(rc, 0, "exit status")
    lines = out.strip().split("\n")
    expect(re.match(r"portico \d+\.\d+", lines[0]), "first line %r" % lines[0])
    for lib in ("OpenSSL", "libyaml", "http-parser"):
        line = [l for l in lines if l.startswith(lib + " ")]
        expect(line, "no %s line in %r" % (lib, out))
        expect(re.match(r"%s \d+\.\d+\.\d+.* \(built with (%s )?\d+\.\d+\.\d+" % (lib, lib),
                        line[0]), "%s line %r" % (lib, line[0]))

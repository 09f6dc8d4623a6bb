"""End-to-end tests: make install, the manual pages, and `portico help`.

The key test reads the configuration key tables in src/ (each section's
`static const struct cfg_key NAME[]`, and the top level's `sections[]`), so
that a key added to the parser without a line in portico.yaml(5) fails here."""

import glob

from common import *  # noqa: F401,F403

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MAN8 = os.path.join(ROOT, "docs", "portico.8")
MAN5 = os.path.join(ROOT, "docs", "portico.yaml.5")

# Each key table in src/ and the subsection (.Ss) of portico.yaml(5) that
# documents its keys. A new table needs a row here and a subsection there.
TABLE_SECTIONS = {
    "sections": "Top level",
    "access_log_keys": "access_log",
    "limit_keys": "limits",
    "listen_keys": "listen",
    "metrics_keys": "metrics",
    "auth_keys": "auth",
    "service_keys": "services",
    "route_keys": "services.NAME.routes",
    "tcp_keys": "services.NAME.tcp",
    "tls_keys": "tls",
    "cert_keys": "tls.certs",
    "ts_keys": "tailscale",
    "api_keys": "tailscale.api",
    "funnel_keys": "tailscale.funnel",
    "hairpin_keys": "tailscale.hairpin",
    "dns_keys": "dns",
}

# The commands of main.c and tscli.c, as `portico help` and portico(8) show them.
COMMANDS = ["portico run", "portico check", "portico tailscale plan|apply|status|policy",
            "portico import tsnsrv", "portico version", "portico help"]


def config_key_tables():
    """{table name: [key, ...]} from src/config.c and src/config_*.c."""
    tables = {}
    files = sorted(glob.glob(os.path.join(ROOT, "src", "config_*.c")))
    for path in [os.path.join(ROOT, "src", "config.c")] + files:
        text = open(path).read()
        for m in re.finditer(r"static const (?:struct cfg_key|struct section \{.*?\})\s+(\w+)\[\]"
                             r"\s*=\s*\{(.*?)\n\};", text, re.S):
            keys = re.findall(r"(?:^|\n|,)\s*\{\s*\"([A-Za-z0-9_]+)\"", m.group(2))
            expect(keys, "%s: table %s: no keys found (has its layout changed?)"
                   % (os.path.basename(path), m.group(1)))
            tables[m.group(1)] = keys
    return tables


def man_subsections(path):
    """{.Ss title: [the .It lines' first word after the macro, ...]}."""
    subs, cur = {}, None
    for line in open(path):
        if line.startswith(".Ss "):
            cur = line[4:].strip()
            subs[cur] = []
        elif cur and line.startswith(".It Ic "):
            subs[cur].append(line.split()[2])
    return subs


@test()
def test_manual_documents_every_config_key(ctx):
    """Every key in a cfg_key table of src/ has an `.It Ic KEY` entry in the
    subsection of portico.yaml(5) for its section, with a default or Required."""
    tables = config_key_tables()
    expect(len(tables) >= len(TABLE_SECTIONS) - 2,
           "found only %d key tables in src/: %s" % (len(tables), sorted(tables)))
    subs = man_subsections(MAN5)
    missing = []
    for table, keys in tables.items():
        expect(table in TABLE_SECTIONS,
               "src/ has a new key table %s: add it to TABLE_SECTIONS in %s and a subsection "
               "for it to docs/portico.yaml.5" % (table, os.path.basename(__file__)))
        section = TABLE_SECTIONS[table]
        expect(section in subs, "docs/portico.yaml.5 has no subsection .Ss %s (for %s)"
               % (section, table))
        missing += ["%s.%s" % (section, k) for k in keys if k not in subs[section]]
    expect(not missing, "keys missing from docs/portico.yaml.5: %s" % ", ".join(missing))
    # Each entry says its default, or that it is required, or refers onward.
    text = open(MAN5).read()
    for entry in re.split(r"\n(?=\.It Ic )", text)[1:]:
        body = entry.split("\n.El")[0].split("\n.Ss")[0]
        expect(re.search(r"Default|Required|below\.|Refused", body),
               "entry without a default: %s" % body.splitlines()[0])


@test()
def test_manual_documents_every_command(ctx):
    """portico(8) has an entry for each command main.c and tscli.c dispatch."""
    main = open(os.path.join(ROOT, "src", "main.c")).read()
    names = re.findall(r"\{\{\"([a-z]+)\"", main)
    tscli = open(os.path.join(ROOT, "src", "tscli.c")).read()
    subs = re.findall(r"\{\"([a-z]+)\", cmd_[a-z]+\}", tscli)
    expect("run" in names and "plan" in subs, "commands not found: %r %r" % (names, subs))
    page = open(MAN8).read()
    for n in names:
        expect(re.search(r"^\.It Cm %s\b" % n, page, re.M), "portico(8): no entry for %s" % n)
    for s in subs:
        expect(re.search(r"^\.It Cm tailscale %s\b" % s, page, re.M),
               "portico(8): no entry for tailscale %s" % s)


def lint_page(path):
    """Warnings from every formatter here, as one list of lines."""
    problems = []
    runs = [["groff", "-ww", "-mandoc", "-z", path]]
    if shutil.which("mandoc"):
        runs.append(["mandoc", "-Tlint", "-W", "warning", path])
    if shutil.which("man"):
        runs.append(["man", "--warnings", "-l", path])
    for cmd in runs:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat"))
        if p.returncode != 0 or p.stderr.strip():
            # (mandoc -Tlint reports on stdout)
            report = p.stderr.strip()
            if cmd[0] == "mandoc":
                report = report or p.stdout.strip()
            problems.append("%s: exit %d: %s" % (cmd[0], p.returncode, report))
        if cmd[0] == "man":
            expect("portico" in p.stdout, "man -l %s printed nothing" % path)
    return problems


@test()
def test_manual_pages_render_without_warnings(ctx):
    problems = lint_page(MAN8) + lint_page(MAN5)
    expect(not problems, "\n".join(problems))


@test()
def test_help_lists_every_command(ctx):
    for arg in ["help", "--help", "-h"]:
        p = subprocess.run([ctx.binary, arg], capture_output=True, text=True, timeout=10 * SCALE)
        eq(p.returncode, 0, "portico %s: exit status" % arg)
        for c in COMMANDS:
            expect(c in p.stdout, "portico %s: no %r in %r" % (arg, c, p.stdout))


def make_install(ctx, dest, target="install", prefix="/usr", extra=()):
    p = subprocess.run(["make", "--no-print-directory", "-C", ROOT, target, "DESTDIR=" + dest,
                        "PREFIX=" + prefix, "BIN=" + os.path.abspath(ctx.binary)] + list(extra),
                       capture_output=True, text=True, timeout=60)
    eq(p.returncode, 0, "make %s: exit status (stderr %r)" % (target, p.stderr))
    return p.stdout


def tree(root):
    """{path relative to root: mode} for every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            full = os.path.join(d, f)
            out[os.path.relpath(full, root)] = os.stat(full).st_mode & 0o7777
    return out


@test(timeout=90)
def test_make_install_and_uninstall(ctx):
    """make install DESTDIR=... PREFIX=/usr puts the binary in /usr/sbin, the
    unit (naming that binary), the manual pages, the example and a
    configuration (only when there is none) in place; uninstall removes all
    but the configuration."""
    dest = os.path.join(ctx.dir, "root")
    make_install(ctx, dest)
    want = {
        "usr/sbin/portico": 0o755,
        "usr/lib/systemd/system/portico.service": 0o644,
        "usr/share/man/man8/portico.8": 0o644,
        "usr/share/man/man5/portico.yaml.5": 0o644,
        "usr/share/doc/portico/portico.yaml.example": 0o644,
        "etc/portico/portico.yaml": 0o644,
    }
    eq(tree(dest), want, "installed files and modes")
    expect(open(os.path.join(dest, "usr/sbin/portico"), "rb").read()
           == open(ctx.binary, "rb").read(), "the installed binary is not the build's")

    # Every command line of the unit runs the installed binary.
    unit = open(os.path.join(dest, "usr/lib/systemd/system/portico.service")).read()
    execs = re.findall(r"^(Exec\w+)=(\S+)(.*)$", unit, re.M)
    start = [e for e in execs if e[0] == "ExecStart"]
    eq(len(start), 1, "ExecStart lines")
    eq(start[0][1], "/usr/sbin/portico", "ExecStart's binary")
    expect(start[0][2].startswith(" run -c /etc/portico/portico.yaml"), "ExecStart %r" % (start,))
    for name, binary, _ in execs:
        expect(binary == "/usr/sbin/portico" or not binary.endswith("portico"),
               "%s runs %s, not the installed binary" % (name, binary))
    expect("/usr/local/" not in unit, "the unit still names /usr/local")

    # The installed example is a configuration portico accepts.
    rc, out, err = run_check(ctx.binary, os.path.join(dest, "etc/portico/portico.yaml"))
    eq(rc, 0, "portico check on the installed example (stderr %r)" % err)
    problems = (lint_page(os.path.join(dest, "usr/share/man/man8/portico.8"))
                + lint_page(os.path.join(dest, "usr/share/man/man5/portico.yaml.5")))
    expect(not problems, "\n".join(problems))

    # A second install leaves the user's configuration alone.
    conf = os.path.join(dest, "etc/portico/portico.yaml")
    open(conf, "w").write("# mine\n")
    os.chmod(conf, 0o600)
    out = make_install(ctx, dest)
    eq(open(conf).read(), "# mine\n", "configuration after a second install")
    eq(os.stat(conf).st_mode & 0o7777, 0o600, "configuration mode after a second install")
    expect("left as it is" in out, "make install did not say it kept the configuration: %r" % out)

    make_install(ctx, dest, "uninstall")
    eq(tree(dest), {"etc/portico/portico.yaml": 0o600}, "files left after uninstall")


@test(timeout=90)
def test_installed_unit_passes_systemd_analyze_verify(ctx):
    """Installed under a prefix of its own (so that the binary the unit names
    exists), the unit passes systemd-analyze verify."""
    analyze = shutil.which("systemd-analyze")
    if not analyze:
        ctx.notes.append("SKIPPED: systemd-analyze is not installed (Debian package systemd)")
        return
    prefix = os.path.join(ctx.dir, "prefix")
    make_install(ctx, "", prefix=prefix, extra=["SYSCONFDIR=" + os.path.join(ctx.dir, "etc")])
    unit = os.path.join(prefix, "lib/systemd/system/portico.service")
    text = open(unit).read()
    expect("ExecStart=%s/sbin/portico run " % prefix in text, "ExecStart in %r" % text)
    r = subprocess.run([analyze, "verify", unit], capture_output=True, text=True, timeout=60)
    # Lines about units of the host (this machine runs no systemd) are not the unit's.
    own = [l for l in (r.stdout + r.stderr).splitlines() if "portico.service" in l]
    eq(own, [], "systemd-analyze verify on the installed unit")
    eq(r.returncode, 0, "systemd-analyze verify exit status; output: %s" % (r.stdout + r.stderr))

#!/usr/bin/python3
"""run.py - the real-app check: real self-hosted apps behind portico, driven
by headless Chromium through Selenium.

Node-RED (from npm), Jupyter Notebook and Syncthing (from Debian) run on
loopback ports with their own defaults: Jupyter with a token and its Host
check on, Syncthing with its host check on. portico serves each under its
own name (nodered.test, jupyter.test, syncthing.test) on a plain and on a
TLS listener (a throwaway CA made with openssl, loaded into Chromium's
certificate store), with `host_header: upstream`, redirect rewriting and
every timeout at its default. Chromium maps *.test to 127.0.0.1.

Checks, over http:// and https://: the Node-RED editor loads, its comms
WebSocket carries messages both ways, and a flow deployed from the editor
serves requests; Jupyter starts a kernel and runs `1+1` through the kernel
WebSocket; Syncthing's GUI stays open for longer than its 60 s long-poll
with no request cut and no error on the page; the access log shows
Jupyter's token as REDACTED. Screenshots go to build/realapps/.

Prints PASS/FAIL per check, then `N passed, N failed`; exits 1 on a
failure. Every process it starts is stopped at the end.

    scripts/deps.sh realapps && make && tests/realapps/run.py   (or: make realapps)
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))

from common import TestCA  # noqa: E402
from harness import Portico, logfmt_parse  # noqa: E402

NODE_RED_SPEC = os.environ.get("NODE_RED_VERSION", "node-red@4")
HOLD_SECONDS = 75  # Syncthing's GUI long-polls /rest/events for up to 60 s
RUN_DEADLINE = 900  # the whole run, whatever happens

PROCS = []  # (name, Popen) of every app started, each in its own process group
RESULTS = []


def log(msg):
    print("realapps: " + msg, flush=True)


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""),
          flush=True)
    return ok


def free_port():
    # The apps bind their own ports; a port the kernel just handed out and
    # released is free unless something takes it in between (loopback only).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name, args, logdir, env=None, cwd=None):
    out = open(os.path.join(logdir, name + ".log"), "wb")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         env=env, cwd=cwd, start_new_session=True)
    PROCS.append((name, p))
    return p


def stop_all():
    for name, p in reversed(PROCS):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    end = time.time() + 10
    for name, p in reversed(PROCS):
        try:
            p.wait(max(0.1, end - time.time()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait(5)


def wait_http(url, timeout, proc, what):
    """Wait until url answers at all (any status) or proc exits."""
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("%s exited with %s before answering" % (what, proc.returncode))
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError("%s does not answer %s after %ds" % (what, url, timeout))


def wait_js(driver, script, timeout, what):
    """Poll a JavaScript expression in the page until it returns a truthy value."""
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            v = driver.execute_script(script)
            if v:
                return v
        except Exception as e:  # the page may be navigating
            last = e
        time.sleep(0.5)
    raise RuntimeError("%s: not true after %ds%s" % (what, timeout,
                                                     " (%s)" % str(last).splitlines()[0]
                                                     if last else ""))


# ------------------------------------------------------------------ apps

def start_nodered(cache, work, logdir):
    prefix = os.path.join(cache, "node-red")
    red = os.path.join(prefix, "node_modules", "node-red", "red.js")
    if not os.path.exists(red):
        log("installing %s from npm into %s" % (NODE_RED_SPEC, prefix))
        os.makedirs(prefix, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", prefix, "--no-audit", "--no-fund",
                        "--loglevel=error", NODE_RED_SPEC], check=True, timeout=900)
    with open(os.path.join(prefix, "node_modules", "node-red", "package.json")) as f:
        version = json.load(f)["version"]
    port = free_port()
    udir = os.path.join(work, "nodered")
    os.makedirs(udir)
    with open(os.path.join(udir, "settings.js"), "w") as f:
        f.write("module.exports = {\n"
                "  uiHost: '127.0.0.1',\n"
                "  uiPort: %d,\n"
                "  flowFile: 'flows.json',\n"
                "  editorTheme: { tours: false, projects: { enabled: false } },\n"
                "  telemetry: { enabled: false, updateNotification: false },\n"
                "  diagnostics: { enabled: false },\n"
                "  logging: { console: { level: 'info', metrics: false, audit: false } },\n"
                "};\n" % port)
    p = start("nodered", ["node", red, "--userDir", udir, "--settings",
                          os.path.join(udir, "settings.js")], logdir,
              env=dict(os.environ, HOME=udir, NODE_RED_ENABLE_PROJECTS="false"))
    wait_http("http://127.0.0.1:%d/" % port, 120, p, "Node-RED")
    return port, version


def start_jupyter(work, logdir, token):
    port = free_port()
    d = os.path.join(work, "jupyter")
    nb = os.path.join(d, "notebooks")
    os.makedirs(nb)
    with open(os.path.join(nb, "realapps.ipynb"), "w") as f:
        json.dump({"nbformat": 4, "nbformat_minor": 5,
                   "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                               "language": "python"}},
                   "cells": [{"cell_type": "code", "id": "realapps-cell", "metadata": {},
                              "execution_count": None, "outputs": [], "source": "1+1"}]}, f)
    env = dict(os.environ, HOME=d, JUPYTER_CONFIG_DIR=os.path.join(d, "config"),
               JUPYTER_DATA_DIR=os.path.join(d, "data"),
               JUPYTER_RUNTIME_DIR=os.path.join(d, "runtime"), IPYTHONDIR=os.path.join(d, "ipy"))
    # Bound to loopback with a token, and not told to accept remote hosts:
    # its Host check passes only because portico sends host_header: upstream.
    args = ["jupyter", "notebook", "--no-browser", "--ip=127.0.0.1", "--port=%d" % port,
            "--port-retries=0", "--NotebookApp.token=" + token, "--notebook-dir=" + nb]
    if os.geteuid() == 0:
        args.append("--allow-root")
    p = start("jupyter", args, logdir, env=env)
    wait_http("http://127.0.0.1:%d/api" % port, 120, p, "Jupyter")
    v = subprocess.run(["jupyter", "notebook", "--version"], capture_output=True, text=True,
                       env=env, timeout=60).stdout.strip()
    return port, v


def start_syncthing(work, logdir):
    port = free_port()
    home = os.path.join(work, "syncthing")
    env = dict(os.environ, HOME=home, STNOUPGRADE="1", STNODEFAULTFOLDER="1")
    subprocess.run(["syncthing", "generate", "--home=" + home], check=True, env=env,
                   capture_output=True, timeout=120)
    # Loopback only: no discovery, relays, NAT traversal, usage reports or
    # upgrade checks. The GUI's host check stays on (insecureSkipHostcheck false).
    cfg = os.path.join(home, "config.xml")
    tree = ET.parse(cfg)
    opts = tree.getroot().find("options")
    want = {"globalAnnounceEnabled": "false", "localAnnounceEnabled": "false",
            "relaysEnabled": "false", "natEnabled": "false", "urAccepted": "-1",
            "autoUpgradeIntervalH": "0", "crashReportingEnabled": "false",
            "startBrowser": "false", "announceLANAddresses": "false",
            "stunKeepaliveStartS": "0", "stunKeepaliveMinS": "0"}
    for k, v in want.items():
        e = opts.find(k)
        if e is None:
            e = ET.SubElement(opts, k)
        e.text = v
    for e in opts.findall("listenAddress"):
        opts.remove(e)
    ET.SubElement(opts, "listenAddress").text = "tcp://127.0.0.1:%d" % free_port()
    gui = tree.getroot().find("gui")
    for k in ("insecureSkipHostcheck",):
        e = gui.find(k)
        if e is not None and e.text.strip() != "false":
            raise RuntimeError("syncthing config: %s is %s" % (k, e.text))
    tree.write(cfg)
    p = start("syncthing", ["syncthing", "serve", "--home=" + home, "--no-browser",
                            "--no-restart", "--gui-address=http://127.0.0.1:%d" % port],
              logdir, env=env)
    wait_http("http://127.0.0.1:%d/" % port, 120, p, "Syncthing")
    v = subprocess.run(["syncthing", "--version"], capture_output=True, text=True,
                       env=env, timeout=60).stdout.split()
    return port, v[1] if len(v) > 1 else "?"


# ------------------------------------------------------------------ browser

class Browser:
    """Headless Chromium through chromedriver, with its own profile and an
    NSS store (under a temporary HOME) that trusts the test CA."""

    def __init__(self, work, name, ca_pem):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        home = os.path.join(work, "browser-" + name)
        nssdb = os.path.join(home, ".pki", "nssdb")
        os.makedirs(nssdb)
        subprocess.run(["certutil", "-d", "sql:" + nssdb, "-N", "--empty-password"],
                       check=True, capture_output=True, timeout=60)
        subprocess.run(["certutil", "-d", "sql:" + nssdb, "-A", "-t", "C,,", "-n",
                        "portico realapps CA", "-i", ca_pem], check=True, capture_output=True,
                       timeout=60)
        o = webdriver.ChromeOptions()
        o.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1280,900", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-default-apps", "--disable-extensions", "--no-proxy-server",
                  "--user-data-dir=" + os.path.join(home, "profile"),
                  "--host-resolver-rules=MAP *.test 127.0.0.1, EXCLUDE localhost"):
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        env = dict(os.environ, HOME=home)
        self.service = Service("/usr/bin/chromedriver", env=env,
                               log_path=os.path.join(work, "chromedriver-%s.log" % name))
        self.driver = webdriver.Chrome(service=self.service, options=o)
        self.driver.set_page_load_timeout(60)
        self.driver.set_script_timeout(60)

    def console_errors(self):
        try:
            return [e["message"] for e in self.driver.get_log("browser")
                    if e.get("level") == "SEVERE"]
        except Exception:
            return []

    def quit(self):
        try:
            self.driver.quit()
        except Exception:
            pass
        p = getattr(self.service, "process", None)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)


# ------------------------------------------------------------------ checks

NODERED_FLOW = [
    {"id": "9e1a000000000001", "type": "http in", "name": "", "url": "/realapps-%(tag)s",
     "method": "get", "upload": False, "swaggerDoc": "", "x": 160, "y": 80,
     "wires": [["9e1a000000000002"]]},
    {"id": "9e1a000000000002", "type": "change", "name": "",
     "rules": [{"t": "set", "p": "payload", "pt": "msg", "to": "hello from node-red %(tag)s",
                "tot": "str"}],
     "x": 380, "y": 80, "wires": [["9e1a000000000003"]]},
    {"id": "9e1a000000000003", "type": "http response", "name": "", "statusCode": "",
     "headers": {}, "x": 580, "y": 80, "wires": []},
    {"id": "9e1a000000000004", "type": "inject", "name": "",
     "props": [{"p": "payload"}], "repeat": "1", "crontab": "", "once": True,
     "onceDelay": "0.1", "topic": "", "payload": "realapps-ping-%(tag)s", "payloadType": "str",
     "x": 160, "y": 160, "wires": [["9e1a000000000005"]]},
    {"id": "9e1a000000000005", "type": "debug", "name": "", "active": True,
     "tosidebar": True, "console": False, "tostatus": False, "complete": "payload",
     "targetType": "msg", "x": 380, "y": 160, "wires": []},
]


def check_nodered(b, scheme, port, outdir):
    d = b.driver
    tag = scheme
    base = "%s://nodered.test:%d" % (scheme, port)
    name = "nodered %s" % scheme
    try:
        d.get(base + "/")
        wait_js(d, "return window.RED && RED.nodes && RED.comms && "
                "document.querySelector('#red-ui-header-button-deploy') && "
                "RED.nodes.getType('inject') ? true : false", 90, "Node-RED editor loaded")
        check(name + ": editor loads", True, d.title)
    except Exception as e:
        check(name + ": editor loads", False, str(e))
        return
    try:
        # Debug messages reach the editor over the comms WebSocket, after the
        # editor subscribed to them over the same socket.
        d.execute_script("window.__rx = []; RED.comms.subscribe('debug', function(t, m) {"
                         " window.__rx.push(m); });")
        flow = json.loads(json.dumps(NODERED_FLOW).replace("%(tag)s", tag))
        d.execute_script("RED.view.importNodes(arguments[0], {generateIds: true, "
                         "touchImport: true});", flow)
        # The import dialog marks the workspace changed after importNodes; do
        # the same, which enables the Deploy button.
        d.execute_script("RED.nodes.dirty(true);")
        wait_js(d, "return RED.nodes.dirty() && !document.querySelector("
                "'#red-ui-header-button-deploy').classList.contains('disabled');", 20,
                "flow imported, Deploy enabled")
        d.find_element("css selector", "#red-ui-header-button-deploy").click()
        wait_js(d, "return !RED.nodes.dirty();", 30, "deploy finished")
        body = d.execute_async_script(
            "var done = arguments[0]; fetch('/realapps-%s').then(function(r) {"
            " return r.text().then(function(t) { done(r.status + ' ' + t); }); })"
            ".catch(function(e) { done('error ' + e); });" % tag)
        check(name + ": flow deployed from the editor serves /realapps-" + tag,
              body == "200 hello from node-red " + tag, repr(body))
    except Exception as e:
        check(name + ": flow deployed from the editor serves /realapps-" + tag, False, str(e))
    try:
        got = wait_js(d, "return window.__rx.filter(function(m) {"
                      " return m.msg === 'realapps-ping-%s'; }).length;" % tag, 30,
                      "debug messages over the comms WebSocket")
        check(name + ": comms WebSocket delivers debug messages", got >= 1,
              "%d messages" % got)
    except Exception as e:
        check(name + ": comms WebSocket delivers debug messages", False, str(e))
    try:
        d.execute_script("RED.sidebar.show('debug');")
        time.sleep(1.5)
    except Exception:
        pass
    d.save_screenshot(os.path.join(outdir, "nodered-%s.png" % scheme))


def check_jupyter(b, scheme, port, token, outdir):
    d = b.driver
    name = "jupyter %s" % scheme
    url = "%s://jupyter.test:%d/notebooks/realapps.ipynb?token=%s" % (scheme, port, token)
    try:
        d.get(url)
        wait_js(d, "return window.Jupyter && Jupyter.notebook && Jupyter.notebook.kernel && "
                "Jupyter.notebook.kernel.is_connected();", 120, "kernel connected")
        check(name + ": notebook opens, kernel starts and its WebSocket connects", True)
    except Exception as e:
        check(name + ": notebook opens, kernel starts and its WebSocket connects", False,
              "%s; page title %r" % (e, d.title))
        d.save_screenshot(os.path.join(outdir, "jupyter-%s.png" % scheme))
        return
    try:
        d.execute_script("var c = Jupyter.notebook.get_cell(0); c.set_text('1+1');"
                         " c.execute();")
        out = wait_js(d, "var o = Jupyter.notebook.get_cell(0).output_area.outputs;"
                      " return o.length ? o.map(function(x) {"
                      " return (x.data && x.data['text/plain']) || x.text || x.ename; })"
                      ".join('|') : '';", 60, "cell output")
        check(name + ": cell 1+1 runs through the kernel WebSocket", out == "2", repr(out))
    except Exception as e:
        check(name + ": cell 1+1 runs through the kernel WebSocket", False, str(e))
    time.sleep(1)
    d.save_screenshot(os.path.join(outdir, "jupyter-%s.png" % scheme))


def open_syncthing(b, scheme, port):
    d = b.driver
    d.get("%s://syncthing.test:%d/" % (scheme, port))
    wait_js(d, "return document.body && document.body.innerText.indexOf('This Device') >= 0;",
            90, "Syncthing GUI loaded")


def check_syncthing(b, scheme, held, outdir):
    d = b.driver
    name = "syncthing %s" % scheme
    try:
        state = d.execute_script(
            "var e = document.getElementById('networkError');"
            " var shown = e && (e.offsetParent !== null || /\\bin\\b/.test(e.className));"
            " return {loaded: document.body.innerText.indexOf('This Device') >= 0,"
            " error: !!shown};")
        # Upgrade checks are off (STNOUPGRADE): Syncthing itself answers 503 there.
        errs = [m for m in b.console_errors()
                if "favicon" not in m and "/rest/system/upgrade" not in m]
        ok = state["loaded"] and not state["error"] and not errs
        check(name + ": GUI open %.0f s with no error on the page or in the console" % held, ok,
              "%s; console: %s" % (state, errs[:3]))
    except Exception as e:
        check(name + ": GUI open with no error", False, str(e))
    d.save_screenshot(os.path.join(outdir, "syncthing-%s.png" % scheme))


def access_lines(p, service):
    out = []
    for l in p.stderr():
        if "service=" + service not in l or "path=" not in l:
            continue
        try:
            out.append(logfmt_parse(l))
        except Exception:
            pass
    return out


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--portico", default=os.path.join(ROOT, "build", "portico"))
    ap.add_argument("--out", default=os.path.join(ROOT, "build", "realapps"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "build", "realapps-cache"))
    ap.add_argument("--hold", type=int, default=HOLD_SECONDS,
                    help="seconds the Syncthing GUI stays open (default %(default)s)")
    a = ap.parse_args()

    def deadline(*_):
        raise TimeoutError("the run took longer than %d s" % RUN_DEADLINE)
    signal.signal(signal.SIGALRM, deadline)
    signal.alarm(RUN_DEADLINE)

    os.makedirs(a.out, exist_ok=True)
    for f in os.listdir(a.out):
        if f.endswith((".png", ".log")):
            os.remove(os.path.join(a.out, f))
    work = tempfile.mkdtemp(prefix="portico-realapps-")
    browsers = []
    p = None
    versions = {}
    try:
        token = secrets.token_hex(16)
        log("starting Node-RED, Jupyter Notebook and Syncthing on loopback")
        nr_port, versions["Node-RED"] = start_nodered(a.cache, work, a.out)
        jp_port, versions["Jupyter Notebook"] = start_jupyter(work, a.out, token)
        st_port, versions["Syncthing"] = start_syncthing(work, a.out)

        os.makedirs(os.path.join(work, "ca"))
        ca = TestCA(os.path.join(work, "ca"))
        cert, key = ca.leaf(["nodered.test", "jupyter.test", "syncthing.test"])
        services = {}
        for svc, port in (("nodered", nr_port), ("jupyter", jp_port), ("syncthing", st_port)):
            services[svc] = {"hosts": [svc + ".test"], "upstream": "http://127.0.0.1:%d" % port,
                             "host_header": "upstream"}
        cfg = {"workers": 2, "access_log": True,
               "listen": [{"addr": "127.0.0.1:0"}, {"addr": "127.0.0.1:0", "tls": True}],
               "tls": {"certs": [{"cert": cert, "key": key}]},
               "services": services}
        p = Portico(os.path.abspath(a.portico), cfg, work).start(timeout=30)
        http_port, https_port = p.ports[0], p.ports[1]
        log("portico serves http on %d and https on %d" % (http_port, https_port))
        ports = {"http": http_port, "https": https_port}

        # Syncthing's pages open first and stay open while the others run.
        st = {}
        for scheme in ("http", "https"):
            b = Browser(work, "syncthing-" + scheme, ca.crt)
            browsers.append(b)
            try:
                open_syncthing(b, scheme, ports[scheme])
                st[scheme] = (b, time.time())
                check("syncthing %s: GUI loads with its host check on" % scheme, True)
            except Exception as e:
                check("syncthing %s: GUI loads with its host check on" % scheme, False, str(e))
                b.driver.save_screenshot(os.path.join(a.out, "syncthing-%s.png" % scheme))
        versions["Chromium"] = browsers[0].driver.capabilities.get("browserVersion", "?")

        b = Browser(work, "apps", ca.crt)
        browsers.append(b)
        for scheme in ("http", "https"):
            check_nodered(b, scheme, ports[scheme], a.out)
            check_jupyter(b, scheme, ports[scheme], token, a.out)

        for scheme, (sb, t0) in st.items():
            left = a.hold - (time.time() - t0)
            if left > 0:
                log("keeping the Syncthing %s page open %.0f s more" % (scheme, left))
                time.sleep(left)
            check_syncthing(sb, scheme, time.time() - t0, a.out)

        time.sleep(0.5)  # the last access-log lines
        lines = access_lines(p, "syncthing")
        cut = [l for l in lines if l.get("reason")]
        events = [l for l in lines if l.get("path", "").startswith("/rest/events")]
        longest = max([float(l.get("ms", 0)) for l in events] or [0])
        check("syncthing: no request cut or refused (access log has no reason=)", not cut,
              "; ".join("%s %s %s" % (l.get("path"), l.get("status"), l.get("reason"))
                        for l in cut[:3]))
        check("syncthing: a /rest/events long-poll held open for over 50 s completed with 200",
              any(float(l.get("ms", 0)) > 50000 and l.get("status") == "200" for l in events),
              "%d event requests, longest %.1f s" % (len(events), longest / 1000))
        jl = access_lines(p, "jupyter")
        red = [l for l in jl if "token=REDACTED" in l.get("path", "")]
        leaked = [l for l in p.stderr() if token in l]
        check("jupyter: access log shows token=REDACTED and never the token", red and not leaked,
              "%d redacted lines, %d lines with the token" % (len(red), len(leaked)))
    except Exception as e:
        check("run", False, "%s: %s" % (type(e).__name__, e))
        traceback.print_exc()
    finally:
        signal.alarm(0)
        for b in browsers:
            b.quit()
        if p is not None and p.alive():
            # An upgraded connection is logged when it closes: the browsers
            # just closed theirs.
            end = time.time() + 5
            while time.time() < end:
                ws = [l for l in p.stderr() if "status=101" in l]
                if all(any("service=" + s in l for l in ws) for s in ("nodered", "jupyter")):
                    break
                time.sleep(0.2)
            check("websockets: Node-RED and Jupyter upgraded through portico (status=101)",
                  all(any("service=" + s in l for l in ws) for s in ("nodered", "jupyter")),
                  "%d lines: %s" % (len(ws), ", ".join(sorted(set(
                      logfmt_parse(l).get("service", "?") + " " + logfmt_parse(l).get("path", "?")
                      .split("?")[0] for l in ws)))))
        if p is not None:
            problems = p.stop(timeout=40)
            shutil.copy(os.path.join(work, "portico.stderr"), os.path.join(a.out, "portico.log"))
            check("portico: exits cleanly on SIGTERM", not problems, "; ".join(problems))
        stop_all()
        shutil.rmtree(work, ignore_errors=True)

    for k, v in versions.items():
        log("version: %s %s" % (k, v))
    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed or not RESULTS else 0


if __name__ == "__main__":
    sys.exit(main())

/* status.c - the status page and /status.json (see status.h). */
#include "status.h"

#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "limits.h"
#include "metrics.h"
#include "tls.h"
#include "tscert.h"
#include "worker.h"

#define STATUS_WARN_DAYS 7 /* a certificate closer than this to expiry is flagged */

static const char *const error_names[] = {NULL, "connect failed", "timed out"};
static const char *const auth_results[4] = {"allowed", "redirected", "denied", "error"};

/* json_object_set_new that notes a failed allocation instead of
 * checking every call: the caller looks at *oom once. */
static void put(json_t *o, const char *k, json_t *v, bool *oom)
{
    if (!o || !v || json_object_set_new(o, k, v) < 0)
        *oom = true;
}

static void push(json_t *a, json_t *v, bool *oom)
{
    if (!a || !v || json_array_append_new(a, v) < 0)
        *oom = true;
}

static void push_unique(json_t *a, const char *s, bool *oom)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) if (strcmp(json_string_value(v), s) == 0) return;
    push(a, json_string(s), oom);
}

static json_t *service_upstreams(const struct config_service *svc, bool *oom)
{
    json_t *a = json_array();
    if (svc->upstream)
        push_unique(a, svc->upstream->key, oom);
    for (size_t r = 0; r < svc->nroutes; r++)
        if (svc->routes[r].upstream)
            push_unique(a, svc->routes[r].upstream->key, oom);
    if (svc->tcp)
        push_unique(a, svc->tcp->upstream.text, oom);
    if (svc->passthrough)
        push_unique(a, svc->passthrough->text, oom);
    return a;
}

static json_t *service_json(struct metrics_worker *const *ws, size_t nw,
                            const struct config_service *svc, uint64_t now_ms, bool *oom)
{
    json_t *o = json_object();
    put(o, "name", json_string(svc->name), oom);
    json_t *hosts = json_array();
    for (size_t h = 0; h < svc->nhosts; h++)
        push(hosts, json_string(svc->hosts[h]), oom);
    put(o, "hosts", hosts, oom);
    put(o, "upstreams", service_upstreams(svc, oom), oom);

    struct metrics_service t;
    metrics_sum_service(ws, nw, svc->metrics_slot, &t);
    json_t *last = json_null();
    if (t.last_at_ms) {
        last = json_object();
        put(last, "status", json_integer((json_int_t)t.last_status), oom);
        put(last, "error",
            t.last_error && t.last_error < 3 ? json_string(error_names[t.last_error]) : json_null(),
            oom);
        put(last, "latency_ms", json_real((double)t.last_us / 1000.0), oom);
        put(last, "age_s", json_integer((json_int_t)((now_ms - t.last_at_ms) / 1000)), oom);
    }
    put(o, "last", last, oom);

    uint64_t r1, e1, r5, e5;
    metrics_sum_window(ws, nw, svc->metrics_slot, 60 / METRICS_WINDOW_SEC, &r1, &e1);
    metrics_sum_window(ws, nw, svc->metrics_slot, METRICS_WINDOWS, &r5, &e5);
    json_t *req = json_object();
    put(req, "total", json_integer((json_int_t)t.count), oom);
    put(req, "1m", json_integer((json_int_t)r1), oom);
    put(req, "5m", json_integer((json_int_t)r5), oom);
    put(o, "requests", req, oom);
    json_t *err = json_object();
    put(err, "total", json_integer((json_int_t)t.requests[4]), oom);
    put(err, "1m", json_integer((json_int_t)e1), oom);
    put(err, "5m", json_integer((json_int_t)e5), oom);
    put(err, "connect_errors", json_integer((json_int_t)t.connect_errors), oom);
    put(err, "timeouts", json_integer((json_int_t)t.timeouts), oom);
    put(o, "errors", err, oom);

    json_t *auth = json_null();
    if (svc->auth) {
        auth = json_object();
        put(auth, "provider", json_string(svc->auth->name), oom);
        for (int i = 0; i < 4; i++)
            put(auth, auth_results[i], json_integer((json_int_t)t.auth[i]), oom);
    }
    put(o, "auth", auth, oom);
    return o;
}

static json_t *cert_json(json_t *names, const char *source, int64_t not_after, int64_t now,
                         bool *oom)
{
    json_t *o = json_object();
    put(o, "names", names, oom);
    put(o, "source", json_string(source), oom);
    if (not_after) {
        int64_t left = not_after - now;
        /* Whole days left, or whole days since it expired as a negative
         * number (both rounded towards zero, as a person counts them). */
        int64_t days = left / 86400;
        put(o, "not_after", json_integer((json_int_t)not_after), oom);
        put(o, "days_left", json_integer((json_int_t)days), oom);
        put(o, "expired", json_boolean(left <= 0), oom);
        put(o, "warning", json_boolean(left < (int64_t)STATUS_WARN_DAYS * 86400), oom);
    } else {
        put(o, "not_after", json_null(), oom);
        put(o, "days_left", json_null(), oom);
        put(o, "expired", json_false(), oom);
        put(o, "warning", json_true(), oom); /* no certificate yet for a tailnet name */
    }
    return o;
}

/* A certificate file from tls.certs: its leaf's DNS names and expiry, read
 * now (the file is what a reload would serve); NULL when unreadable. */
static json_t *file_cert_json(const struct config_tls_cert *tc, int64_t now, bool *oom)
{
    FILE *f = fopen(tc->cert, "re");
    if (!f)
        return NULL;
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (!x)
        return NULL;
    json_t *names = json_array();
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS)
            continue;
        const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
        int n = ASN1_STRING_length(g->d.dNSName);
        push(names, json_stringn((const char *)d, (size_t)n), oom);
    }
    GENERAL_NAMES_free(gens);
    json_t *o = cert_json(names, "file", tls_asn1_seconds(X509_get0_notAfter(x)), now, oom);
    put(o, "file", json_string(tc->cert), oom);
    X509_free(x);
    return o;
}

static json_t *certs_json(const struct config *c, int64_t now, bool *oom)
{
    json_t *a = json_array();
    for (size_t i = 0; i < c->ntls_certs; i++) {
        json_t *o = file_cert_json(&c->tls_certs[i], now, oom);
        if (o) {
            push(a, o, oom);
            continue;
        }
        json_t *names = json_array();
        o = cert_json(names, "file", 0, now, oom);
        put(o, "file", json_string(c->tls_certs[i].cert), oom);
        put(o, "error", json_string("cannot read the certificate file"), oom);
        push(a, o, oom);
    }
    const char *name;
    int64_t not_after;
    for (size_t i = 0; tscert_cert_at(i, &name, &not_after); i++) {
        json_t *names = json_array();
        push(names, json_string(name), oom);
        push(a, cert_json(names, "tailscale", not_after, now, oom), oom);
    }
    return a;
}

char *status_render_json(const struct server *srv, size_t *len)
{
    bool oom = false;
    const struct config *c = srv->cfg;
    struct metrics_worker *ws[LIMIT_WORKERS_MAX];
    for (unsigned i = 0; i < srv->nworkers; i++)
        ws[i] = &srv->workers[i].metrics;
    uint64_t now_ms = metrics_now_ms();
    int64_t now = (int64_t)time(NULL);

    json_t *root = json_object();
    put(root, "now", json_integer((json_int_t)now), &oom);
    json_t *svcs = json_array();
    for (size_t s = 0; s < c->nservices; s++)
        push(svcs, service_json(ws, srv->nworkers, &c->services[s], now_ms, &oom), &oom);
    put(root, "services", svcs, &oom);
    put(root, "certificates", certs_json(c, now, &oom), &oom);
    const struct metrics_publish *p = metrics_publish_attached();
    json_t *tn = json_null();
    if (p && c->tailscale.services) {
        tn = json_object();
        put(tn, "configured", json_integer((json_int_t)p->configured), &oom);
        put(tn, "advertised", json_integer((json_int_t)p->advertised), &oom);
        put(tn, "approved", json_integer((json_int_t)p->approved), &oom);
    }
    put(root, "tailnet", tn, &oom);
    char *out = oom ? NULL : json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(root);
    if (out)
        *len = strlen(out);
    return out;
}

/* The page fills itself from /status.json with textContent only, so a
 * name holding markup shows as text and never becomes markup. */
const char status_page_html[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>portico status</title>\n"
    "<link rel=\"icon\" href=\"data:,\">\n"
    "<style>\n"
    "body{font:15px/1.4 system-ui,sans-serif;margin:0 auto;padding:12px;max-width:1100px;"
    "color:#222;background:#fafafa}\n"
    "h1{font-size:1.3em;margin:.2em 0}h2{font-size:1.1em;margin:1em 0 .4em}\n"
    "table{border-collapse:collapse;width:100%;background:#fff}\n"
    "th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #ddd;vertical-align:top}\n"
    "th{background:#eee;font-weight:600}\n"
    ".bad{color:#b00020;font-weight:600}.ok{color:#176d2c}.dim{color:#777}\n"
    ".warn{background:#fff3cd;border:1px solid #e0b000;padding:6px 8px;margin:4px 0}\n"
    "#err{display:none}\n"
    "@media (max-width:600px){thead{display:none}table,tbody,tr,td{display:block;width:auto}"
    "tr{border:1px solid #ccc;margin:0 0 10px;padding:4px}td{border:0;padding:2px 4px}"
    "td::before{content:attr(data-label) \": \";font-weight:600}}\n"
    "</style></head><body>\n"
    "<h1>portico status</h1>\n"
    "<div id=\"updated\" class=\"dim\">loading&hellip;</div>\n"
    "<div id=\"err\" class=\"warn\"></div>\n"
    "<div id=\"certwarn\"></div>\n"
    "<h2>Services</h2>\n"
    "<table id=\"services\"><thead><tr><th>Service</th><th>Names</th><th>Upstream</th>"
    "<th>Last result</th><th>Requests 1 / 5 min</th><th>Errors 1 / 5 min</th><th>Auth</th>"
    "</tr></thead><tbody></tbody></table>\n"
    "<div id=\"tailnet\"></div>\n"
    "<h2>Certificates</h2>\n"
    "<table id=\"certs\"><thead><tr><th>Names</th><th>Source</th><th>Expires</th>"
    "</tr></thead><tbody></tbody></table>\n"
    "<script>\n"
    "'use strict';\n"
    "function el(tag,text,cls){var e=document.createElement(tag);"
    "if(text!==undefined)e.textContent=text;if(cls)e.className=cls;return e;}\n"
    "function cell(tr,label,text,cls){var td=el('td',text,cls);td.setAttribute('data-label',"
    "label);tr.appendChild(td);return td;}\n"
    "function last(l){if(!l)return ['no requests yet','dim'];"
    "var t=l.status+' in '+l.latency_ms.toFixed(1)+' ms, '+l.age_s+' s ago';"
    "if(l.error)return [t+' (upstream '+l.error+')','bad'];"
    "return [t,l.status>=500?'bad':'ok'];}\n"
    "function render(d){\n"
    " var tb=document.querySelector('#services tbody');tb.textContent='';\n"
    " d.services.forEach(function(s){var tr=el('tr');tr.className='svc';"
    "tr.setAttribute('data-name',s.name);\n"
    "  cell(tr,'Service',s.name,'name');cell(tr,'Names',s.hosts.join(', '));"
    "cell(tr,'Upstream',s.upstreams.join(', '));\n"
    "  var l=last(s.last);cell(tr,'Last result',l[0],'last '+l[1]);\n"
    "  cell(tr,'Requests 1 / 5 min',s.requests['1m']+' / '+s.requests['5m'],'requests');\n"
    "  cell(tr,'Errors 1 / 5 min',s.errors['1m']+' / '+s.errors['5m'],"
    "'errors'+(s.errors['1m']?' bad':''));\n"
    "  var a=s.auth?(s.auth.provider+': '+s.auth.allowed+' allowed, '+s.auth.denied+"
    "' denied, '+s.auth.redirected+' redirected, '+s.auth.error+' errors'):'none';\n"
    "  cell(tr,'Auth',a,s.auth?'':'dim');tb.appendChild(tr);});\n"
    " var cb=document.querySelector('#certs tbody');cb.textContent='';\n"
    " var cw=document.getElementById('certwarn');cw.textContent='';\n"
    " d.certificates.forEach(function(c){var tr=el('tr');var n=c.names.join(', ')||c.file||'?';\n"
    "  cell(tr,'Names',n);cell(tr,'Source',c.source);var x;\n"
    "  if(c.error)x=c.error;else if(c.days_left===null)x='no certificate yet';"
    "else if(c.expired)x=c.days_left?'EXPIRED '+(-c.days_left)+' days ago':'EXPIRED today';"
    "else x='in '+c.days_left+' days';\n"
    "  cell(tr,'Expires',x,c.warning?'bad':'ok');cb.appendChild(tr);\n"
    "  if(c.warning)cw.appendChild(el('div','Certificate '+n+': '+x,'warn certwarn'));});\n"
    " var tn=document.getElementById('tailnet');tn.textContent='';\n"
    " if(d.tailnet)tn.appendChild(el('p','Tailnet services: '+d.tailnet.configured+"
    "' configured, '+d.tailnet.advertised+' advertised, '+d.tailnet.approved+' approved'));\n"
    " document.getElementById('updated').textContent='updated '+new Date().toLocaleTimeString();"
    "\n}\n"
    "function refresh(){fetch('status.json',{cache:'no-store'}).then(function(r){"
    "if(!r.ok)throw new Error('HTTP '+r.status);return r.json();}).then(function(d){"
    "document.getElementById('err').style.display='none';render(d);}).catch(function(e){"
    "var x=document.getElementById('err');x.textContent='cannot refresh: '+e.message;"
    "x.style.display='block';});}\n"
    "refresh();setInterval(refresh,3000);\n"
    "</script></body></html>\n";

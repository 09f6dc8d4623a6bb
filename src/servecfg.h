/* servecfg.h - the part of tailscaled's serve configuration that portico
 * owns: one Tailscale Service ("svc:NAME") per published service, merged
 * into the node's current configuration without touching anything else.
 *
 * What portico writes for each service (ipn.ServeConfig, ipn/serve.go of
 * tailscale/tailscale at commit de9ec7ee25627e0e518f53c710a3fc3d947c86c1,
 * VERSION.txt 1.103.0; the shapes SetWebHandler and
 * SetTCPForwardingForService produce):
 *   http:        "svc:NAME": {"TCP": {"443": {"HTTPS": true}},
 *                  "Web": {"NAME.<MagicDNSSuffix>:443":
 *                          {"Handlers": {"/": {"Proxy": "<backend>"}}}}}
 *   tcp,
 *   passthrough: "svc:NAME": {"TCP": {"<port>": {"TCPForward": "<backend>",
 *                                                "ProxyProtocol": 2}}}
 * ProxyProtocol is written only when the service asks for it and tailscaled
 * is 1.94 or newer (1.92 stores it for services but does not send it); it
 * needs a host:port backend (tailscaled refuses PROXY towards unix:).
 *
 * Ownership. The serve configuration has no field to mark who wrote an
 * entry (tailscaled drops unknown fields), so portico decides from two
 * lists the caller gives:
 *   - the services in its configuration: portico owns "svc:NAME" for each,
 *     and writes its entry whatever was there (an entry someone else wrote
 *     under that name is replaced; the plan says so with '!');
 *   - the names it published last time, kept by the caller in a state
 *     file and replaced by result.owned after a successful write: a name
 *     there that is no longer configured is deleted and unadvertised.
 * Every other entry of Services, and TCP, Web, AllowFunnel and Foreground
 * of the node itself, are foreign: copied through unchanged, unknown fields
 * included. A lost state file therefore leaves removed services in place
 * (never deletes someone else's); the plan points at foreign entries that
 * still route to one of portico's HTTP backends.
 *
 * AdvertiseServices (prefs) becomes the current list minus the names
 * portico owned and no longer configures, plus every configured name not
 * yet in it (appended in name order), so foreign advertisements and the
 * existing order stay.
 *
 * Funnel. Tailscale has no Funnel for a Service (the CLI refuses
 * `serve --service` with funnel, cmd/tailscale/cli/serve_v2.go, and
 * ServiceConfig has no AllowFunnel), so a public name is the node's own
 * (Self.DNSName). With input.funnel, portico owns, for HP = "HOST:PORT":
 *   "TCP": {"PORT": {"HTTPS": true}},
 *   "Web": {HP: {"Handlers": {PATH: {"Proxy": TARGET}, ...}}},
 *   "AllowFunnel": {HP: true}
 * and nothing else of the node's own entries. It takes HP only when
 * nothing holds it (no Web[HP], no TCP[PORT], no AllowFunnel[HP]) or when
 * it published HP before (input.funnel_owned, kept in a state file like
 * owned); otherwise the merge is refused. An HP in funnel_owned that is
 * no longer wanted loses those three entries.
 *
 * tailscaled refuses an update that changes the serve type (HTTP, HTTPS,
 * TCP, TLS-terminated TCP) of an existing port of a service, or mixes TUN
 * with ports (validateServeConfigUpdate in ipn/ipnlocal/serve.go). When
 * portico's new entry would do that, result.interim is the current
 * configuration without those entries: write it first, then result.json.
 *
 * Output is canonical (keys sorted, compact), so the caller can also
 * compare it with what it wrote last. Pure functions; no I/O. */
#ifndef PORTICO_SERVECFG_H
#define PORTICO_SERVECFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tsjson.h"

enum servecfg_kind {
    SERVECFG_HTTP,        /* tailscaled terminates HTTPS, proxies HTTP to backend */
    SERVECFG_TCP,         /* raw TCP to backend */
    SERVECFG_PASSTHROUGH, /* raw TCP (TLS untouched) to portico's passthrough listener */
};

struct servecfg_service {
    const char *name;        /* the DNS label: "grafana" publishes svc:grafana */
    enum servecfg_kind kind; /* http, tcp or passthrough */
    uint16_t port;           /* the service's port on its own address (443 for http) */
    /* http: "unix:/path", "http://HOST:PORT" or "https+insecure://HOST:PORT";
     * tcp and passthrough: "HOST:PORT" or "unix:/path" */
    const char *backend;
    bool proxy_protocol; /* tcp/passthrough: send a PROXY v2 header if tailscaled can */
};

/* The node's own name published on Funnel. */
struct servecfg_funnel {
    const char *host;           /* Self.DNSName without its trailing dot */
    uint16_t port;              /* 443, 8443 or 10000 */
    const char *const *paths;   /* mount points, "/" or "/prefix/" */
    const char *const *targets; /* the Proxy of each: a backend as for an HTTP service */
    size_t n;
};

struct servecfg_input {
    const struct servecfg_service *services; /* what portico publishes now */
    size_t n_services;
    const char *suffix;       /* MagicDNSSuffix from status, e.g. "tail1234.ts.net" */
    int ts_major, ts_minor;   /* tailscaled's version from status */
    const char *const *owned; /* "svc:NAME"s published last time (state file) */
    size_t n_owned;
    const char *const *advertised; /* AdvertiseServices now (prefs) */
    size_t n_advertised;
    const struct servecfg_funnel *funnel; /* NULL: nothing on Funnel */
    const char *const *funnel_owned;      /* "HOST:PORT"s published last time (state file) */
    size_t n_funnel_owned;
};

struct servecfg_result {
    char *json;    /* the new serve configuration, canonical */
    char *interim; /* NULL, or a configuration to write before json (see top) */
    bool changed;  /* json differs from the current configuration */
    /* what changes, one line each ("+ ", "- ", "~ ", "! ", "? " then the
     * service); "" when nothing does */
    char *plan;
    struct tsjson_strlist advertise; /* the new AdvertiseServices */
    bool advertise_changed;
    struct tsjson_strlist owned;        /* to keep in the state file once both are written */
    struct tsjson_strlist funnel_owned; /* the same for the Funnel "HOST:PORT" */
};

/* Merge portico's services into the current serve configuration (the body
 * of GET /localapi/v0/serve-config; "null" or empty means none). Returns 0
 * with *out filled (free it with servecfg_result_free, also after an
 * error), or -1 with a message in err: a current configuration that is not
 * JSON or has the wrong shape, or a service that cannot be published as
 * given. */
int servecfg_merge(const char *current, size_t len, const struct servecfg_input *in,
                   struct servecfg_result *out, char *err, size_t errlen);
void servecfg_result_free(struct servecfg_result *r);

#endif

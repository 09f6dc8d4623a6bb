/* tsjson.h - the JSON answers of tailscaled's LocalAPI, read into plain
 * structs: status, whois and prefs; and the prefs body that sets the
 * advertised services.
 *
 * The bytes come from a local daemon but are checked like any input: the
 * size, every type, integer ranges, addresses, DNS names, service names
 * and the absence of control characters in every string kept (these
 * strings end up in log lines and in headers sent upstream). A refused
 * answer gives -1 and one sentence in err naming the field.
 *
 * Field names and shapes were read in the Go source of tailscale/tailscale
 * at commit de9ec7ee25627e0e518f53c710a3fc3d947c86c1 (2026-08-22,
 * VERSION.txt 1.103.0):
 *   - ipn/ipnstate/ipnstate.go  Status, PeerStatus, TailnetStatus
 *   - client/tailscale/apitype/apitype.go  WhoIsResponse {Node, UserProfile, CapMap}
 *   - tailcfg/tailcfg.go  Node (ID int64, StableID, Name with a trailing dot,
 *     Tags, CapMap, ComputedName), UserProfile (ID, LoginName, DisplayName,
 *     ProfilePicURL omitzero), ServiceName ("svc:" + a DNS label,
 *     ServiceName.Validate), ServiceIPMappings
 *   - tailcfg/nodecap/nodecap.go  "service-host": each value a
 *     ServiceIPMappings object {"svc:NAME": ["100.x.y.z", "fd7a:..."]};
 *     several values merge in order, a later one replacing a name
 *   - version/version.go  Long(): "x.y.z-..." in every form
 *   - ipn/prefs.go  Prefs.AdvertiseServices, MaskedPrefs.AdvertiseServicesSet
 *
 * Pure functions over buffers: no I/O. Not wired into the configuration or
 * the command line yet; the LocalAPI client and `portico tailscale ...`
 * will use them. */
#ifndef PORTICO_TSJSON_H
#define PORTICO_TSJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

/* A list of strings, each owned by the list. */
struct tsjson_strlist {
    char **v;
    size_t n;
};

/* One approved service from Self.CapMap["service-host"]. */
struct tsjson_service_ips {
    char *name;                  /* "svc:grafana" */
    struct tsjson_strlist addrs; /* its VIP addresses, as tailscaled wrote them */
};

/* GET /localapi/v0/status (use ?peers=false: the peer list is not read). */
struct tsjson_status {
    char *version;       /* Version, e.g. "1.94.1-t1234abcd-g5678ef" */
    int major, minor;    /* from Version; 0.0 when it does not start with x.y */
    char *backend_state; /* "Running", "Stopped", ...; "" if absent */
    char *dns_name;      /* Self.DNSName without its trailing dot; "" if unknown */
    /* CurrentTailnet.MagicDNSSuffix (no surrounding dots), else the legacy
     * top-level MagicDNSSuffix; "" when not connected. */
    char *magic_dns_suffix;
    char *tailnet_name;               /* CurrentTailnet.Name; "" if absent */
    struct tsjson_strlist ips;        /* TailscaleIPs (Self.TailscaleIPs if absent) */
    struct tsjson_strlist tags;       /* Self.Tags */
    bool service_host;                /* Self.CapMap has "service-host" */
    bool funnel;                      /* Self.CapMap has "funnel" (nodecap.Funnel) */
    struct tsjson_service_ips *hosts; /* what "service-host" lists, sorted by name */
    size_t n_hosts;
    struct tsjson_strlist cert_domains; /* CertDomains */
};

/* GET /localapi/v0/whois?addr=IP[:port] */
struct tsjson_whois {
    int64_t node_id;            /* Node.ID (>= 1): X-Tailscale-Node "nodeid:<n>" */
    char *node_stable_id;       /* Node.StableID */
    char *node_name;            /* Node.Name without its trailing dot */
    char *node_computed_name;   /* Node.ComputedName; "" if absent */
    struct tsjson_strlist tags; /* Node.Tags */
    /* Keys of Node.CapMap in the answer's order (tsnsrv's X-Tailscale-Node-Caps) */
    struct tsjson_strlist node_caps;
    int64_t user_id;       /* UserProfile.ID (>= 0): X-Tailscale-User "userid:<n>" */
    char *login_name;      /* "tagged-devices" for a tagged node */
    char *display_name;    /* UTF-8 as sent */
    char *profile_pic_url; /* "" if absent */
    /* Keys of the top-level CapMap (the peer's capabilities towards this
     * node; tsnsrv's X-Tailscale-Caps) in the answer's order */
    struct tsjson_strlist caps;
};

/* Each parser fills *out (owned by the caller, freed with the matching
 * _free, also after an error) and returns 0, or returns -1 with a message
 * in err. */
int tsjson_parse_status(const char *buf, size_t len, struct tsjson_status *out, char *err,
                        size_t errlen);
void tsjson_status_free(struct tsjson_status *st);

int tsjson_parse_whois(const char *buf, size_t len, struct tsjson_whois *out, char *err,
                       size_t errlen);
void tsjson_whois_free(struct tsjson_whois *w);

/* GET /localapi/v0/prefs: the AdvertiseServices list (null: empty). */
int tsjson_parse_advertised(const char *buf, size_t len, struct tsjson_strlist *out, char *err,
                            size_t errlen);
void tsjson_strlist_free(struct tsjson_strlist *l);
/* A copy of src in *dst (owned by the caller); -1 (nothing kept) when out
 * of memory. */
int tsjson_strlist_copy(struct tsjson_strlist *dst, const struct tsjson_strlist *src);

/* True if tailscaled's version is at least major.minor. PROXY protocol
 * towards a Service's TCP backend needs 1.94 (earlier versions store
 * ProxyProtocol for services but ignore it). */
bool tsjson_version_at_least(int have_major, int have_minor, int major, int minor);
#define TSJSON_PROXY_PROTOCOL_MAJOR 1
#define TSJSON_PROXY_PROTOCOL_MINOR 94

/* The body of PATCH /localapi/v0/prefs that sets AdvertiseServices to
 * names: {"AdvertiseServicesSet":true,"AdvertiseServices":[...]}. Returns
 * a malloc'ed string, or NULL when out of memory. */
char *tsjson_advertise_body(const char *const *names, size_t n);

/* Parse one answer (of tailscaled, or of the control API: tsapi.c):
 * bounded by LIMIT_TS_JSON_BYTES, one JSON value of any type, no duplicate
 * keys. NULL with "WHAT: ..." in err. Free with json_decref. */
struct json_t;
struct json_t *tsjson_load(const char *what, const char *buf, size_t len, char *err, size_t errlen);

/* Write a message to err (control characters shown as '?', so that names
 * quoted from an answer cannot split a log line) and return -1. */
int tsjson_errorf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Tailscale's service name rules (tailcfg.ServiceName.Validate): "svc:"
 * followed by a DNS label of 1 to 63 letters, digits and '-', starting and
 * ending with a letter or digit. portico also requires lower case, since
 * the label is a host name it routes on. */
bool tsjson_service_label_valid(const char *label);
/* A DNS name as tailscaled writes them: labels of 1 to 63 letters, digits,
 * '-' and '_', at most 253 bytes, no empty label (no trailing dot). */
bool tsjson_dns_name_valid(const char *s);
bool tsjson_service_name_valid(const char *name);

#endif

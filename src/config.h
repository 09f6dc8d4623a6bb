/* config.h - the configuration snapshot.
 *
 * A snapshot is parsed once from YAML (or JSON, which libyaml reads as the
 * same document model), validated completely, and then never written
 * again: workers only read it. It is reference-counted; every in-flight
 * request holds a reference to the snapshot it started with, so a reload
 * never changes the rules under a request. */
#ifndef PORTICO_CONFIG_H
#define PORTICO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "access.h"
#include "log.h"

struct arena;
struct ssl_ctx_st;
struct resolve_name;

/* An address to listen on or connect to. */
struct config_addr {
    struct sockaddr_storage sa; /* AF_INET, AF_INET6 or AF_UNIX; AF_UNSPEC for a host name */
    socklen_t salen;
    char text[128]; /* as written ("127.0.0.1:8080", "unix:/run/x.sock"), for messages */
    /* A Unix socket portico listens on: its permission bits and group
     * (-1: the process's group). Set to 0660 / -1 by config_parse_addr. */
    unsigned unix_mode;
    long unix_gid;
    /* An upstream written with a host name is resolved at run time, in the
     * background (see resolve.h): host and port say what to resolve, and sa
     * stays unset. host is empty for literal addresses and Unix sockets. */
    char host[128];
    uint16_t port;
    /* For messages about the name: who wrote it ("service" or "auth
     * provider", and its name) and where. */
    const char *owner_kind;
    const char *owner;
    int line;
    /* The resolver's entry for host, set by resolve_bind when the snapshot
     * is put to use (a reference the snapshot drops when freed); NULL in
     * "portico check". */
    struct resolve_name *name;
};

struct config_listen {
    struct config_addr addr;
    bool tls;            /* terminate TLS here, certificate chosen by SNI */
    bool proxy_protocol; /* a PROXY v1/v2 header comes first on every connection */
    bool https;          /* clients use https: TLS here, or "scheme: https" (a TLS frontend) */
    /* "redirect_https": every request for a known host is answered with a
     * redirect to https://host[:https_port]/target (0: the default 443). */
    bool redirect_https;
    uint16_t https_port;
    /* "strict_sni_host" (TLS listeners, default true): a request whose Host
     * the certificate chosen for the client's SNI does not cover gets 421. */
    bool strict_sni_host;
    /* The tailscale.backend listener (added when tailscale.services is on):
     * tailscaled's forwarded requests. Only here are tailscaled's identity
     * headers read, and requests are routed by X-Forwarded-Host. */
    bool tailnet;
    /* A tailscale.hairpin listener: processes on this host reaching the
     * published names. Its callers are "local": never a tailnet identity. */
    bool local;
    int line;
};

/* A certificate and key from "tls.certs". */
struct config_tls_cert {
    char *cert; /* PEM chain, leaf first */
    char *key;
    int line;
};

enum upstream_kind {
    UPSTREAM_HTTP,  /* http://host:port */
    UPSTREAM_HTTPS, /* https://host:port */
    UPSTREAM_UNIX,  /* unix:/path (HTTP/1.1 over a Unix socket) */
};

/* An upstream endpoint. Services that name the same endpoint share one
 * entry (and therefore one keep-alive pool per worker). */
struct config_upstream {
    enum upstream_kind kind;
    struct config_addr addr;
    char *key;  /* canonical identity, e.g. "http://127.0.0.1:3000"; pools are keyed by it */
    size_t idx; /* position in config.upstreams */
    /* https: the host as written in the URL (SNI and the certificate check)
     * and the client context (owned by config.tls_clients). */
    char *tls_name;
    struct ssl_ctx_st *tls_ctx;
};

/* A client TLS context for https:// upstreams, shared by every service
 * that verifies the same way. */
struct config_tls_client {
    char *ca; /* tls_ca, or NULL for the system store */
    bool insecure;
    struct ssl_ctx_st *ctx; /* owned */
};

/* A path route inside a service. */
struct config_route {
    char *prefix; /* normalised, starts with '/' */
    size_t prefix_len;
    const struct config_upstream *upstream; /* owned by config.upstreams */
    char *authority;                        /* its host[:port] as written; NULL for unix: */
    bool strip_prefix;
    int line;
};

struct config_header {
    char *name;
    char *value;
};

/* A plain TCP forwarder owned by a service: bytes both ways, no HTTP. */
struct config_tcp {
    struct config_addr listen;
    struct config_addr upstream;
    bool proxy_protocol; /* a PROXY v1/v2 header comes first on every connection (tailscaled) */
    int line;
};

enum auth_style {
    AUTH_FORWARD, /* forward-auth: the provider answers the client (302 to its portal) */
    AUTH_REQUEST, /* auth-request: 401 means "log in"; portico redirects to the portal */
};

/* A forward-auth provider ("auth:"), such as Authelia. */
struct config_auth {
    char *name;
    enum auth_style style;
    char *url;                 /* as written */
    char *path;                /* path and query sent to the provider, as written */
    char *host;                /* Host header toward the provider: the URL's authority */
    struct config_upstream up; /* the provider's endpoint; its own connection pool */
    uint32_t timeout_ms;
    char **copy_headers; /* response headers copied into the upstream request */
    size_t ncopy;
    char *portal;      /* auth-request: redirect target for 401 without Location; else NULL */
    uint32_t cache_ms; /* decision cache lifetime; 0: off */
    size_t idx;        /* position in config.auths (per-worker caches) */
    int line;
};

struct config_service {
    char *name;
    char **hosts; /* lower-case, no trailing dot; "*.example.com" for wildcards */
    size_t nhosts;
    const struct config_upstream *upstream; /* the "/" route; owned by config.upstreams */
    char *authority;                        /* its host[:port] as written; NULL for unix: */
    struct config_route *routes;            /* sorted longest prefix first */
    size_t nroutes;
    struct config_header *headers; /* extra request headers, in file order */
    size_t nheaders;
    uint32_t connect_timeout_ms;
    uint32_t timeout_ms;      /* wait for the response head -> 504; 0: no limit */
    uint32_t idle_timeout_ms; /* upstream silent in a response body: cut; 0: no limit */
    /* Host sent upstream: the client's (both unset), the upstream's own
     * address ("host_header: upstream"), or this literal host[:port]. */
    bool host_header_upstream;
    char *host_header;
    bool rewrite_redirects; /* Location/Refresh to the upstream's address -> public name */
    struct config_tcp *tcp; /* NULL unless the service has "tcp:"; owned */
    /* "passthrough:": TLS for the service's hosts goes here untouched, chosen
     * by SNI on the TLS listeners; NULL otherwise; owned. */
    struct config_addr *passthrough;
    /* "allow:": who on the tailnet may use the service (access.h), checked
     * before forward auth; allow.n == 0: everyone. Entries are malloc'd,
     * freed with the snapshot. */
    struct access_list allow;
    int allow_line;
    const struct config_auth *auth; /* forward auth for every request, or NULL; owned by config */
    char **auth_skip;               /* normalised path prefixes that skip auth */
    /* "auth_bypass_tailnet": a tailnet user (identity_is_user: not tagged,
     * not Funnel, not a failed whois) skips forward auth. */
    bool auth_bypass_tailnet;
    size_t nauth_skip;
    /* "upgrade:": protocol names (lower-case) a client may switch to through
     * a 101; ["websocket"] unless configured. Never h2c. */
    char **upgrade;
    size_t nupgrade;
    int send_proxy_protocol; /* 0, or 1 / 2: a PROXY v1 / v2 header opens each upstream connection
                              */
    size_t metrics_slot;     /* stable across reloads; see metrics.h */
    int line;
};

struct config_limits {
    uint32_t max_connections;
    uint32_t max_connections_per_client; /* 0: no limit */
    uint32_t max_header_bytes;
    uint32_t max_request_line;
    uint32_t header_timeout_ms;
    uint32_t keepalive_timeout_ms;
    uint32_t body_timeout_ms;
    uint32_t body_min_rate;      /* bytes per second on average; 0: off */
    uint32_t body_rate_grace_ms; /* before it applies */
    uint32_t send_timeout_ms;
    uint32_t tunnel_timeout_ms;
    uint32_t shutdown_timeout_ms;
    uint32_t upstream_keepalive;            /* idle conns per upstream per worker */
    uint32_t upstream_keepalive_timeout_ms; /* idle pooled conn lifetime */
    uint32_t resolve_interval_ms;           /* how often upstream host names are resolved again */
};

/* "tailscale.api:": the Tailscale control API, through which portico
 * defines its services in the tailnet (tsapi_client.c). The secret is not
 * kept here: it is read from secret_file when a token is needed. */
struct config_tailscale_api {
    bool enabled;      /* the section is present */
    char *tailnet;     /* "-": the OAuth client's own tailnet */
    char *client_id;   /* oauth_client_id */
    char *secret_file; /* oauth_client_secret_file: absolute path */
    char *url;         /* "https://HOST[:PORT]" without a trailing slash */
    char *host;        /* HOST (an IPv6 literal without its brackets) */
    unsigned port;     /* PORT, 443 by default */
    char *ca_file;     /* CA certificates to verify it with; NULL: the system's */
    int line;
};

/* "tailscale:": publishing portico's services on the local tailscaled node
 * as Tailscale Services (see docs/tailscale.md). */
struct config_tailscale {
    bool enabled;  /* the section is present */
    char *socket;  /* tailscaled's LocalAPI socket */
    bool services; /* publish every HTTP service as svc:NAME */
    /* Who publishes: the daemon on start and reload (auto), or only
     * `portico tailscale apply`, run by a unit with privileges (false). */
    enum ts_publish { TS_PUBLISH_AUTO, TS_PUBLISH_FALSE } publish;
    char *backend; /* where tailscaled forwards: "unix:/path" or "http://LOOPBACK:PORT" */
    bool insecure_loopback_backend; /* allow an http:// backend (any local user can reach it) */
    char *backend_group; /* group of a unix: backend socket (mode 0660); NULL: portico's own */
    char **service_tags; /* the tags the service definitions carry */
    size_t nservice_tags;
    char **host_tags; /* the tags of the node running tailscaled (autoApprovers) */
    size_t nhost_tags;
    char *state_dir; /* the list of services portico published; certs/: tailscaled's certificates */
    struct config_tailscale_api api;
    /* "funnel:": the node's own name published on the internet (Tailscale
     * Funnel), its paths proxied to one HTTP service. */
    struct config_funnel {
        bool enabled;
        const struct config_service *service; /* owned by config.services */
        uint16_t port;                        /* 443, 8443 or 10000 */
        char **paths;                         /* normalised path prefixes; ["/"] by default */
        size_t npaths;
        int line;
    } funnel;
    /* "identity_headers" (default true): tsnsrv's X-Tailscale-* headers go to
     * the upstreams, which takes a whois call (cached) per caller. */
    bool identity_headers;
    uint32_t whois_wait_ms; /* a request waits this long for whois (limits.h) */
    /* "tailscale.hairpin": every published name served on loopback
     * addresses too (listeners marked local, after the backend's), and a
     * block in hosts_file that sends the names there. */
    struct config_hairpin {
        bool enabled;
        struct config_addr *listen; /* loopback addresses; their IPs go in the hosts file */
        size_t nlisten;
        char *hosts_file;
        int line, hosts_line; /* of the section, and of hosts_file (0: the default) */
    } hairpin;
    int line;
};

/* "dns:": the authoritative DNS responder of split-DNS mode (dns.h,
 * dnsserver.c): A/AAAA for every service host under the zones. */
struct config_dns {
    bool enabled;               /* the section is present */
    struct config_addr *listen; /* UDP and TCP; none: the node's tailnet addresses, port 53 */
    size_t nlisten;
    char **zones; /* lower case, no trailing dot */
    size_t nzones;
    /* The addresses every A/AAAA answer gives; none set: the addresses
     * portico listens on for DNS (the tailnet ones by default). */
    struct in_addr *answer4;
    size_t nanswer4;
    struct in6_addr *answer6;
    size_t nanswer6;
    uint32_t ttl_ms;
    int line;
};

struct route_table;
struct tls_store;

/* Every string and array below, and the struct itself, live in arena and
 * go with it; SSL contexts, the TLS store, the route table and resolver
 * names are released on their own. */
struct config {
    struct arena *arena;
    int refs;        /* atomic; see config_ref/config_unref */
    uint64_t serial; /* unique per snapshot loaded in this process */
    char *path;
    char *domain; /* NULL if not set */
    unsigned workers;
    bool access_log;
    enum log_query { LOG_QUERY_REDACT, LOG_QUERY_FULL, LOG_QUERY_DROP } log_query;
    enum log_format log_format; /* access lines, and operational ones once this is in use */
    char **log_redact;          /* query parameter names whose values the access log hides */
    size_t nlog_redact;
    struct config_listen *listens;
    size_t nlistens;
    struct config_service *services;
    size_t nservices;
    struct config_upstream *upstreams;
    size_t nupstreams;
    struct config_limits limits;
    struct config_tailscale tailscale;
    struct config_dns dns;
    /* Services with a TCP forwarder, in file order: the listeners the
     * process opens are listens[] followed by these services' tcp.listen. */
    const struct config_service **tcp_services;
    size_t ntcp;
    size_t npassthrough; /* services with "passthrough:" */
    struct config_tls_cert *tls_certs;
    size_t ntls_certs;
    char *tls_default;  /* "tls.default_cert": a name served for clients without a known SNI */
    bool tls_tailscale; /* "tls.tailscale": certificates for tailnet names come from tailscaled */
    struct tls_store *tls; /* certificates loaded from tls_certs; NULL without TLS listeners */
    struct config_tls_client *tls_clients;
    size_t ntls_clients;
    struct config_auth *auths;
    size_t nauths;
    bool metrics_enabled;
    struct config_addr metrics_listen;
    struct route_table *routes; /* host -> service */
    /* Service name -> HTTP service, for the tailnet backend listener, where
     * tailscaled's X-Forwarded-Host is NAME.<tailnet suffix>; NULL unless
     * tailscale.services is on. */
    struct route_table *tailnet_names;
    /* Settings that load but are likely mistakes: "FILE:LINE: warning: ..."
     * lines, each ending in '\n'; NULL when there are none. */
    char *warnings;
};

/* Parse and validate a configuration file. On error returns NULL and writes
 * "FILE:LINE: message" (or "FILE: message" when no line applies) into err. */
struct config *config_load(const char *path, char *err, size_t errlen);

/* The same from memory; name is used in messages in place of a file name. */
struct config *config_parse(const char *name, const char *text, size_t len, char *err,
                            size_t errlen);

/* Reference counting (thread-safe). config_unref frees at zero. */
struct config *config_ref(struct config *c);
void config_unref(struct config *c);

/* Parse "250ms", "5s", "2m", "1h" into milliseconds. Returns 0 or -EINVAL. */
int config_parse_duration(const char *s, uint64_t *ms);

/* Parse "host:port", "[v6]:port" or "unix:/path" into an address.
 * Host names are resolved now (the first address wins). Returns 0 or a
 * negative errno with a sentence in err. */
int config_parse_addr(const char *s, struct config_addr *out, char *err, size_t errlen);
/* The same for an address to listen on, where port 0 is allowed: the
 * kernel picks a free port when the socket is bound. */
int config_parse_listen_addr(const char *s, struct config_addr *out, char *err, size_t errlen);
/* An IPv4/IPv6 address with port 0. */
bool config_addr_any_port(const struct config_addr *a);

/* The same for an upstream: a host name is checked but not resolved (out->host
 * and out->port say what to resolve later). */
int config_parse_target(const char *s, struct config_addr *out, char *err, size_t errlen);

/* Call fn once for every upstream address of c that names a host: service
 * upstreams and routes, tcp.upstream, passthrough and auth provider URLs. */
void config_each_named(struct config *c, void (*fn)(struct config_addr *a, void *arg), void *arg);

#endif

/* limits.h - every bound portico enforces, with its default, in one place.
 *
 * Values marked "config" can be changed in the configuration file (the key
 * is named beside them); the rest are compile-time ceilings that protect
 * the process from hostile input. */
#ifndef PORTICO_LIMITS_H
#define PORTICO_LIMITS_H

/* ---- request head (client side) ---------------------------------------- */
#define LIMIT_HEADER_BYTES_DEFAULT 16384 /* config limits.max_header_bytes -> 431 */
#define LIMIT_HEADER_BYTES_MAX                                                                     \
    49152 /* ceiling for the config value; a head and its rewrite must fit one buffer */
#define LIMIT_REQUEST_LINE_DEFAULT 8192 /* config limits.max_request_line -> 414 */
#define LIMIT_HEADERS_COUNT        100  /* header lines per message -> 431 */
#define LIMIT_HOST_LEN             253  /* DNS name length */

/* ---- response head (upstream side) -------------------------------------- */
#define LIMIT_RESPONSE_HEAD_BYTES 32768 /* larger upstream heads -> 502 */
#define LIMIT_INTERIM_RESPONSES   16    /* 1xx responses relayed per request; more -> 502 */

/* ---- chunked framing ----------------------------------------------------- */
#define LIMIT_CHUNK_LINE_BYTES 4096  /* chunk-size line incl. extensions */
#define LIMIT_TRAILER_BYTES    16384 /* whole trailer section */

/* ---- PROXY protocol ------------------------------------------------------- */
/* A v2 header may carry up to 65535 bytes of addresses and TLVs. Load
 * balancers send a few dozen bytes of TLVs (AWS, Azure, GCP link and
 * endpoint ids, HAProxy's SSL details); this bound is HAProxy's default
 * buffer. Larger headers close the connection. */
#define LIMIT_PROXY_HEADER_BYTES 16384

/* ---- connections ---------------------------------------------------------- */
#define LIMIT_MAX_CONNECTIONS_DEFAULT 16384 /* config limits.max_connections */
/* Accepts per wake-up of a worker, at most: beyond the first only while it
 * holds no more than a batch past its share of the connections
 * (worker_accept_more). HAProxy's tune.maxaccept is 64 too. */
#define LIMIT_ACCEPT_BATCH   64
#define LIMIT_LISTEN_BACKLOG 4096
#define LIMIT_INHERITED_FDS  1024 /* LISTEN_FDS: sockets taken over on start */
/* Descriptors besides two per connection (listeners, epoll, timers, logs,
 * resolver, TLS files): below 2 * max_connections + this, start warns. */
#define LIMIT_FDS_RESERVED 256

/* config limits.max_connections_per_client: twice what one browser opens at
 * most (Chrome: 256 sockets in all), so two browsers behind one address fit */
#define LIMIT_CONNECTIONS_PER_CLIENT_DEFAULT 512
#define LIMIT_CONNECTIONS_PER_CLIENT_MAX     (1u << 24)
#define LIMIT_WARN_INTERVAL_MS               10000 /* one log line per worker per flood */

/* ---- timeouts (milliseconds) ---------------------------------------------- */
#define TIMEOUT_HEADER_MS_DEFAULT    10000 /* config limits.header_timeout (slowloris) */
#define TIMEOUT_KEEPALIVE_MS_DEFAULT 75000 /* config limits.keepalive_timeout */
#define TIMEOUT_BODY_MS_DEFAULT      60000 /* config limits.body_timeout: client silent mid-body */
#define TIMEOUT_SEND_MS_DEFAULT      60000 /* config limits.send_timeout: client not reading */
#define TIMEOUT_SHUTDOWN_MS_DEFAULT  30000 /* config limits.shutdown_timeout (drain) */
/* Draining: a connection accepted but whose first request has not been
 * read gets this long to send it; a TCP stream silent this long closes. */
#define LIMIT_DRAIN_FIRST_REQUEST_MS 1000
#define LIMIT_DRAIN_TCP_QUIET_MS     1000
#define TIMEOUT_TUNNEL_MS_DEFAULT    3600000 /* config limits.tunnel_timeout: idle WebSocket */
#define TIMEOUT_CONNECT_MS_DEFAULT   5000    /* config connect_timeout (per service) */
#define TIMEOUT_RESPONSE_MS_DEFAULT  300000  /* config timeout: wait for the response head -> 504 */
#define TIMEOUT_IDLE_MS_DEFAULT      0       /* config idle_timeout: silence mid-body; 0: none */
#define TIMEOUT_POOL_IDLE_MS_DEFAULT 60000   /* config upstream_keepalive_timeout */

/* ---- slow request bodies -------------------------------------------------- */
/* config limits.body_min_rate and limits.body_rate_grace: once the grace has
 * passed, a request body must average this many bytes per second since it
 * began, else 408 */
#define LIMIT_BODY_MIN_RATE_DEFAULT        1024
#define LIMIT_BODY_MIN_RATE_MAX            (1u << 30) /* 1 GiB/s */
#define TIMEOUT_BODY_RATE_GRACE_MS_DEFAULT 30000

/* ---- upstream pools ------------------------------------------------------- */
#define LIMIT_POOL_IDLE_DEFAULT                                                                    \
    32 /* config upstream_keepalive: idle conns per                                                \
          upstream per worker */
#define LIMIT_POOL_IDLE_MAX 4096
/* Idle connections beyond upstream_keepalive stay pooled this long unused:
 * long enough that a steady load with more requests in flight does not
 * close and reopen them, short enough that a burst's connections do not
 * linger (HAProxy starts purging idle server connections after 5 s,
 * pool-purge-delay). */
#define LIMIT_POOL_SURPLUS_IDLE_MS 5000

/* ---- upstream host names (resolve.c) ---------------------------------------- */
#define TIMEOUT_RESOLVE_MS_DEFAULT    30000 /* config limits.resolve_interval: re-resolve names */
#define LIMIT_RESOLVE_INTERVAL_MIN_MS 1000
#define TIMEOUT_RESOLVE_RETRY_MS                                                                   \
    1000                             /* first retry of a failing name; doubles up to the           \
                                        interval */
#define TIMEOUT_RESOLVE_WAIT_MS 2000 /* start/reload waits this long for new names */
#define LIMIT_RESOLVE_THREADS   4    /* lookups in flight at once */

/* ---- buffers -------------------------------------------------------------- */
#define BUF_SIZE 65536 /* one large I/O buffer; bodies stream through it */
/* A small buffer: where reads start, and what a rewritten head is built in
 * first. With its header and malloc's, one 4 KiB page. A read that fills
 * it moves to a large buffer; a head that does not fit is built again in
 * one. */
#define BUF_SMALL_SIZE   (4096 - 64)
#define BUF_FREELIST_MAX 64 /* cached free buffers per worker, of each size */
/* A large response body copied to a TLS client (OpenSSL encrypting) is
 * read from the upstream into one of these: a quarter of the reads, and
 * of the kernel's receive work that each read starts. */
#define BUF_BULK_SIZE         (256u << 10)
#define BUF_BULK_FREELIST_MAX 2 /* cached free bulk buffers per worker */
/* Cached released exchanges per worker (about 21 KiB each): a burst of
 * concurrent requests must not leave its exchanges allocated for good. */
#define EXCHANGE_FREELIST_MAX 32
/* Once a burst has freed this much past the caches (buffers, exchanges,
 * connections), a worker empties its caches and hands malloc's free pages
 * back to the kernel when nothing more has been freed for
 * LIMIT_TRIM_DELAY_MS: malloc keeps the holes a burst leaves between
 * long-lived connections resident otherwise. */
#define LIMIT_TRIM_BYTES    (1u << 20)
#define LIMIT_TRIM_DELAY_MS 1000
/* A closed client or upstream connection counts as a page freed: its few
 * hundred bytes are scattered among longer-lived ones, so each can be what
 * keeps a whole page resident. */
#define LIMIT_TRIM_SMALL_BYTES 4096
#define LIMIT_OUT_HEAD_BYTES   (LIMIT_HEADER_BYTES_MAX + 8192) /* rewritten head */
#define LIMIT_BODY_IOVS        64 /* segments per writev of a chunked body */

/* ---- bodies through a pipe (splice.c) -------------------------------------- */
/* A pipe costs two descriptors and a few calls: a body goes through one
 * once it is known to be large. Content-Length: this much still to come.
 * Until end of stream: one full buffer already copied. Chunked: a chunk
 * with this much data left after the buffer that read its size line. */
#define LIMIT_SPLICE_MIN_BODY     (256u << 10)
#define LIMIT_SPLICE_EOF_AFTER    BUF_SIZE
#define LIMIT_SPLICE_MIN_CHUNK    (32u << 10)
#define LIMIT_SPLICE_PIPE_BYTES   (256u << 10) /* pipe capacity asked for; 64 KiB if refused */
#define LIMIT_SPLICE_FRAMING_PEEK 128          /* framing looked at per call: CRLF, a size line */

/* ---- TLS ------------------------------------------------------------------ */
#define TLS_TICKET_ROTATE_S 3600 /* a new session-ticket key every hour */
#define TLS_TICKET_KEYS     3    /* keys kept: tickets resume for 2 to 3 hours */
#define TLS_SESSION_TIMEOUT_S                                                                      \
    (TLS_TICKET_ROTATE_S * (TLS_TICKET_KEYS - 1)) /* lifetime announced in tickets */
#define LIMIT_CLIENT_HELLO_BYTES 16384 /* ClientHello read for passthrough; larger -> closed */
/* Records gathered per send(2) when OpenSSL writes them (tls_out.c): room
 * for those of a full buffer (BUF_SIZE) and a response head; the data of a
 * bulk buffer goes in several batches. Per thread. */
#define TLS_SEND_BATCH_BYTES (96u << 10)

/* ---- forward auth ----------------------------------------------------------- */
/* Authelia answers a failed Basic login after at least 2 s (plus up to 85 ms
 * of jitter): a provider timeout near that turns wrong passwords into 504s. */
#define TIMEOUT_AUTH_MS_DEFAULT 5000  /* config auth.NAME.timeout: provider silent -> 504 */
#define TIMEOUT_AUTH_MS_WARN    3000  /* config auth.NAME.timeout below this: check warns */
#define LIMIT_AUTH_HEAD_BYTES   16384 /* provider response head; larger -> 502 */
#define LIMIT_AUTH_BODY_BYTES                                                                      \
    16384                             /* provider response body relayed on a denial; larger -> 502 \
                                       */
#define LIMIT_AUTH_COPY_HEADERS  16   /* names in copy_headers */
#define LIMIT_AUTH_VALUE_BYTES   4096 /* one copied header value; longer ones are dropped */
#define LIMIT_AUTH_CACHE_ENTRIES 4096 /* cached decisions per provider per worker */
#define LIMIT_AUTH_CACHE_MS_MAX  300000 /* config auth.NAME.cache ceiling: 5 minutes */

/* ---- configuration -------------------------------------------------------- */
#define LIMIT_CONFIG_BYTES (64u << 20) /* configuration file size */
/* Bytes an arena (arena.h) asks malloc for at a time: a typical snapshot fits
 * in one or two. */
#define LIMIT_ARENA_CHUNK  (16u << 10)
#define LIMIT_GETGR_BUF    65536 /* getgrnam_r buffer (a group's member list) */
#define LIMIT_WORKERS_MAX  64
#define LIMIT_SERVICE_NAME 63 /* a DNS label */
#define LIMIT_UPGRADE_NAME 64 /* a protocol name in services.NAME.upgrade */

/* ---- logging and metrics -------------------------------------------------- */
#define LIMIT_LOG_PATH_BYTES        2048  /* request path as logged (truncated) */
#define LIMIT_LOG_REASON_BYTES      256   /* reason= as logged (truncated) */
#define LIMIT_LOG_FIELD_BYTES       256   /* any other access-log string (truncated) */
#define LIMIT_LOG_BUF               65536 /* per-worker access-log buffer */
#define LIMIT_LOG_LINE_BYTES        8192  /* one operational line (message cut to fit) */
#define LIMIT_METRICS_REQUEST_BYTES 8192

/* ---- tailnet identity (identity.c, access.c) ------------------------------ */
/* What portico keeps of one caller (login, names, tags, capabilities): real
 * identities take a few hundred bytes; a larger one is refused (treated as
 * no identity) rather than cut, so a truncated login can never match. */
#define LIMIT_IDENTITY_BYTES 8192
#define LIMIT_IDENTITY_LIST  64   /* node tags, node caps or peer caps per caller */
#define LIMIT_ACCESS_ENTRIES 1024 /* entries in one service's allow list */

/* ---- Tailscale LocalAPI answers (tsjson.c, servecfg.c) --------------------- */
/* tailscaled is local but its answers are still checked: a status without
 * peers, a whois or a serve config for thousands of services is far below
 * these; larger answers are refused with a message. */
#define LIMIT_TS_JSON_BYTES   (8u << 20) /* one JSON answer or serve config */
#define LIMIT_TS_STRING_BYTES 2048       /* one name, login, URL or capability */
#define LIMIT_TS_ADDRS        16         /* tailnet addresses of one node or service */
#define LIMIT_TS_TAGS         64         /* tags of one node */
#define LIMIT_TS_CAPS         256        /* capability names kept from one answer */
#define LIMIT_TS_CERT_DOMAINS 8192       /* CertDomains: the node's name and its services' */
#define LIMIT_TS_SERVICES     8192       /* services in a serve config, prefs or service-host */
#define LIMIT_TS_FUNNEL_PATHS 64         /* path prefixes published on Funnel */

/* ---- portico import tsnsrv (tsimport*.c) ----------------------------------- */
#define LIMIT_IMPORT_BYTES    (4u << 20) /* the input read whole; more is refused */
#define LIMIT_IMPORT_SERVICES 4096       /* services in one input */
#define LIMIT_IMPORT_WORDS    512        /* words on one command line */
#define LIMIT_IMPORT_SETTINGS 1024       /* settings of one service */

/* ---- hosts file (hostsfile.c) --------------------------------------------- */
#define LIMIT_HOSTS_FILE_BYTES (4u << 20) /* tailscale.hairpin.hosts_file, read whole */

/* ---- LocalAPI client and whois cache (localapi.c, whois.c) ---------------- */
#define LIMIT_LOCALAPI_HEAD_BYTES 16384 /* one response head from tailscaled */
#define LIMIT_LOCALAPI_QUEUE      64    /* calls waiting per worker; more fail at once */
#define LIMIT_LOCALAPI_PATH_BYTES 512   /* "/localapi/v0/..." with its query */
#define TIMEOUT_LOCALAPI_MS       5000  /* one call, queueing included */

/* Certificates from tailscaled (tscert.c). A fetch may wait for an ACME
 * order, so it gets minutes; a failed one is retried after
 * TSCERT_RETRY_MIN_MS, doubling up to TSCERT_RETRY_MAX_MS. A name tailscaled
 * does not list in CertDomains yet is looked for again every
 * TSCERT_STATUS_POLL_MS. */
#define TIMEOUT_TS_CERT_MS        180000
#define TSCERT_RETRY_MIN_MS       5000
#define TSCERT_RETRY_MAX_MS       3600000
#define TSCERT_STATUS_POLL_MS     60000
#define LIMIT_TS_CERT_BYTES       (64u << 10) /* a key and its certificate chain, PEM */
#define TIMEOUT_LOCALAPI_IDLE_MS  30000       /* a kept-alive connection unused this long closes */
#define LIMIT_LOCALAPI_ETAG_BYTES 128         /* an Etag kept for If-Match (tailscaled's: 64 hex) */
/* One call of the `portico tailscale` commands: a serve-config write makes
 * tailscaled reconfigure its listeners before it answers. */
#define TIMEOUT_LOCALAPI_CLI_MS 10000
/* One request to the Tailscale control API (tsapi_client.c): connecting,
 * the TLS handshake, sending and the whole answer. */
#define TIMEOUT_TSAPI_MS 15000
/* After a failed connect, a dropped connection or a garbled answer the
 * client waits before it dials again, doubling up to the maximum, so a
 * stopped tailscaled costs one failed connect per interval, not one per
 * request; calls made meanwhile fail at once with the last error. */
#define TIMEOUT_LOCALAPI_BACKOFF_MS     250
#define TIMEOUT_LOCALAPI_BACKOFF_MAX_MS 10000
/* The daemon publishing its services (tspublish.c): a failed run (tailscaled
 * missing, restarting, busy, answering errors) is tried again after the
 * first interval, doubling up to the maximum, until one succeeds. */
#define TIMEOUT_TS_PUBLISH_RETRY_MS     1000
#define TIMEOUT_TS_PUBLISH_RETRY_MAX_MS 30000
/* The daemon defining its services through the Tailscale control API
 * (tsdefine.c): a failed run (the API unreachable, slow, rate-limiting or
 * failing) is tried again after the first interval, doubling up to the
 * maximum; the API is shared by the whole tailnet, hence the long cap. */
#define TIMEOUT_TS_DEFINE_RETRY_MS     1000
#define TIMEOUT_TS_DEFINE_RETRY_MAX_MS 300000
/* Whois answers per worker. An entry holds one compact identity (a few
 * hundred bytes; LIMIT_IDENTITY_BYTES at most), so 1024 entries stay under
 * a megabyte for real tailnets while covering far more active callers than
 * one worker sees within a TTL. Entries with a call in flight are never
 * evicted; when every entry is in flight a lookup fails at once. */
#define LIMIT_WHOIS_ENTRIES 1024
/* An answer is reused for 60 s: tags and capabilities change rarely, and a
 * minute bounds how long a removed grant or a re-tagged node is still seen
 * (tailscaled itself applies netmap changes within seconds). A failure
 * (unknown address, tailscaled down) is remembered for 5 s: short enough
 * that a node that just joined, or a restarted tailscaled, is seen almost
 * at once, long enough that a burst of requests from one address costs one
 * LocalAPI call per worker instead of one each. */
/* A request on the tailnet backend waits this long for its whois answer
 * before it goes on without identity: longer than the LocalAPI call's own
 * timeout, so this is only a backstop. */
#define TIMEOUT_WHOIS_WAIT_MS     (TIMEOUT_LOCALAPI_MS + 1000)
#define TIMEOUT_WHOIS_TTL_MS      60000
#define TIMEOUT_WHOIS_FAIL_TTL_MS 5000

/* systemd notify messages (sdnotify.c): one datagram each, the STATUS=
 * text cut to fit. systemd reads datagrams of up to about 4 KiB; a status
 * line is meant for one line of `systemctl status`. */
#define LIMIT_SDNOTIFY_MSG_BYTES    1024
#define LIMIT_SDNOTIFY_STATUS_BYTES 400

/* ---- the DNS responder (dns.c, dnsserver.c) -------------------------------- */
/* A query larger than this (UDP datagram or TCP message) is malformed for
 * us: a real question with EDNS options is a few dozen bytes. */
#define LIMIT_DNS_QUERY_BYTES 4096
/* An answer never exceeds this (64 AAAA records, SOA, NS and OPT fit). */
#define LIMIT_DNS_ANSWER_BYTES 4096
/* The UDP payload size portico advertises in its OPT record and the most
 * it sends over UDP with EDNS (the DNS Flag Day 2020 value: no IP
 * fragmentation on any common path). */
#define LIMIT_DNS_UDP_SIZE 1232
/* No amplification: a UDP answer is at most this many times its query's
 * size (and a truncated answer, never larger than its query, asks the
 * client to come back over TCP, which proves its address). */
#define LIMIT_DNS_UDP_AMPLIFY 4
#define LIMIT_DNS_ANSWERS     64  /* config dns.answer: addresses in every A/AAAA answer */
#define LIMIT_DNS_ZONES       64  /* config dns.zones */
#define LIMIT_DNS_LISTEN      16  /* config dns.listen */
#define LIMIT_DNS_TCP_CONNS   128 /* DNS-over-TCP connections open at once; more are closed */
/* An idle DNS-over-TCP connection closes after this (RFC 7766 suggests
 * seconds, not minutes). */
#define TIMEOUT_DNS_TCP_IDLE_MS 10000
#define LIMIT_DNS_UDP_BATCH     64    /* datagrams read per wake-up before other events run */
#define DNS_TTL_DEFAULT_MS      60000 /* config dns.ttl */
#define DNS_TTL_MAX_MS          86400000

#endif

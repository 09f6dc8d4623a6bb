/* config_limits.c - the "limits:" section: one table, one line per key. */
#include "config_int.h"

#include <stdio.h>
#include <string.h>

#include "limits.h"

#define AT(f) CFG_AT(struct config_limits, f)
static const struct cfg_key limit_keys[] = {
    {"max_connections", CFG_UINT, AT(max_connections), LIMIT_MAX_CONNECTIONS_DEFAULT, 1,
     UINT32_MAX},
    {"max_header_bytes", CFG_UINT, AT(max_header_bytes), LIMIT_HEADER_BYTES_DEFAULT, 1024,
     LIMIT_HEADER_BYTES_MAX},
    {"max_request_line", CFG_UINT, AT(max_request_line), LIMIT_REQUEST_LINE_DEFAULT, 256,
     LIMIT_HEADER_BYTES_MAX},
    {"header_timeout", CFG_DURATION, AT(header_timeout_ms), TIMEOUT_HEADER_MS_DEFAULT},
    {"keepalive_timeout", CFG_DURATION, AT(keepalive_timeout_ms), TIMEOUT_KEEPALIVE_MS_DEFAULT},
    {"body_timeout", CFG_DURATION, AT(body_timeout_ms), TIMEOUT_BODY_MS_DEFAULT},
    {"body_min_rate", CFG_UINT, AT(body_min_rate), LIMIT_BODY_MIN_RATE_DEFAULT, 0,
     LIMIT_BODY_MIN_RATE_MAX},
    {"body_rate_grace", CFG_DURATION, AT(body_rate_grace_ms), TIMEOUT_BODY_RATE_GRACE_MS_DEFAULT},
    {"send_timeout", CFG_DURATION, AT(send_timeout_ms), TIMEOUT_SEND_MS_DEFAULT},
    {"tunnel_timeout", CFG_DURATION, AT(tunnel_timeout_ms), TIMEOUT_TUNNEL_MS_DEFAULT},
    {"shutdown_timeout", CFG_DURATION, AT(shutdown_timeout_ms), TIMEOUT_SHUTDOWN_MS_DEFAULT},
    {"upstream_keepalive", CFG_UINT, AT(upstream_keepalive), LIMIT_POOL_IDLE_DEFAULT, 0,
     LIMIT_POOL_IDLE_MAX},
    {"upstream_keepalive_timeout", CFG_DURATION, AT(upstream_keepalive_timeout_ms),
     TIMEOUT_POOL_IDLE_MS_DEFAULT},
    {"max_connections_per_client", CFG_UINT, AT(max_connections_per_client),
     LIMIT_CONNECTIONS_PER_CLIENT_DEFAULT, 0, LIMIT_CONNECTIONS_PER_CLIENT_MAX},
    {"resolve_interval", CFG_DURATION, AT(resolve_interval_ms), TIMEOUT_RESOLVE_MS_DEFAULT},
};

/* n is NULL without "limits:": the defaults. */
int cfg_parse_limits(struct parser *p, const yaml_node_t *n)
{
    struct config_limits *lim = &p->c->limits;
    struct cfg_seen seen;
    if (!n)
        return cfg_keys_defaults(p, limit_keys, CFG_NKEYS(limit_keys), lim);
    if (cfg_keys_read(p, n, limit_keys, CFG_NKEYS(limit_keys), lim, "limits", "in limits", &seen) <
        0)
        return -1;
    const yaml_node_t *resolve = cfg_seen_node(&seen, "resolve_interval");
    if (resolve && lim->resolve_interval_ms < LIMIT_RESOLVE_INTERVAL_MIN_MS)
        return cfg_fail(p, resolve, "limits.resolve_interval: at least %us",
                        LIMIT_RESOLVE_INTERVAL_MIN_MS / 1000);
    const yaml_node_t *line_node = cfg_seen_node(&seen, "max_request_line");
    if (!line_node && lim->max_request_line > lim->max_header_bytes)
        lim->max_request_line = lim->max_header_bytes; /* the default yields to a smaller head */
    if (line_node && lim->max_request_line > lim->max_header_bytes)
        return cfg_fail(p, line_node,
                        "limits.max_request_line: %u is more than limits.max_header_bytes (%u)",
                        lim->max_request_line, lim->max_header_bytes);
    return 0;
}

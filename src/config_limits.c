/* config_limits.c - the "limits:" section. */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"

struct limit_key {
    const char *name;
    size_t off;
    bool duration;
    uint32_t min, max;
};

#define LIMIT_FIELD(f) offsetof(struct config_limits, f)
static const struct limit_key limit_keys[] = {
    {"max_connections", LIMIT_FIELD(max_connections), false, 1, UINT32_MAX},
    {"max_header_bytes", LIMIT_FIELD(max_header_bytes), false, 1024, LIMIT_HEADER_BYTES_MAX},
    {"max_request_line", LIMIT_FIELD(max_request_line), false, 256, LIMIT_HEADER_BYTES_MAX},
    {"header_timeout", LIMIT_FIELD(header_timeout_ms), true, 0, 0},
    {"keepalive_timeout", LIMIT_FIELD(keepalive_timeout_ms), true, 0, 0},
    {"body_timeout", LIMIT_FIELD(body_timeout_ms), true, 0, 0},
    {"body_min_rate", LIMIT_FIELD(body_min_rate), false, 0, LIMIT_BODY_MIN_RATE_MAX},
    {"body_rate_grace", LIMIT_FIELD(body_rate_grace_ms), true, 0, 0},
    {"send_timeout", LIMIT_FIELD(send_timeout_ms), true, 0, 0},
    {"tunnel_timeout", LIMIT_FIELD(tunnel_timeout_ms), true, 0, 0},
    {"shutdown_timeout", LIMIT_FIELD(shutdown_timeout_ms), true, 0, 0},
    {"upstream_keepalive", LIMIT_FIELD(upstream_keepalive), false, 0, LIMIT_POOL_IDLE_MAX},
    {"upstream_keepalive_timeout", LIMIT_FIELD(upstream_keepalive_timeout_ms), true, 0, 0},
    {"max_connections_per_client", LIMIT_FIELD(max_connections_per_client), false, 0,
     LIMIT_CONNECTIONS_PER_CLIENT_MAX},
    {"resolve_interval", LIMIT_FIELD(resolve_interval_ms), true, 0, 0},
};
#define NLIMITS (sizeof limit_keys / sizeof limit_keys[0])

int cfg_parse_limits(struct parser *p, const yaml_node_t *n)
{
    const char *names[NLIMITS];
    yaml_node_t *vals[NLIMITS] = {0};
    struct config_limits *lim = &p->c->limits;
    for (size_t i = 0; i < NLIMITS; i++)
        names[i] = limit_keys[i].name;
    if (cfg_want_mapping(p, n, "limits", false) < 0 ||
        cfg_map_collect(p, n, names, NLIMITS, vals, "in limits") < 0)
        return -1;
    for (yaml_node_pair_t *pair = n->data.mapping.pairs.start; pair < n->data.mapping.pairs.top;
         pair++) {
        int i = cfg_key_index(cfg_node(p, pair->key), names, NLIMITS);
        const struct limit_key *lk = &limit_keys[i];
        uint32_t *field = (uint32_t *)((char *)lim + lk->off);
        char what[64];
        snprintf(what, sizeof what, "limits.%s", lk->name);
        int rc = lk->duration ? cfg_want_duration(p, vals[i], what, field)
                              : cfg_want_uint(p, vals[i], what, lk->min, lk->max, field);
        if (rc < 0)
            return -1;
        if (field == &lim->resolve_interval_ms && *field < LIMIT_RESOLVE_INTERVAL_MIN_MS)
            return cfg_fail(p, vals[i], "limits.resolve_interval: at least %us",
                            LIMIT_RESOLVE_INTERVAL_MIN_MS / 1000);
    }
    const yaml_node_t *line_node = vals[2]; /* max_request_line, if written */
    if (!line_node && lim->max_request_line > lim->max_header_bytes)
        lim->max_request_line = lim->max_header_bytes; /* the default yields to a smaller head */
    if (line_node && lim->max_request_line > lim->max_header_bytes)
        return cfg_fail(p, line_node,
                        "limits.max_request_line: %u is more than limits.max_header_bytes (%u)",
                        lim->max_request_line, lim->max_header_bytes);
    return 0;
}

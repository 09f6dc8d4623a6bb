/* tspolicy.h - what the tailnet must hold before its node can host
 * portico's services: one service definition per service, and a policy
 * fragment (tag owners, auto-approval, grants). Printed by the future
 * `portico tailscale policy` for an administrator to apply by hand when
 * portico has no API credentials.
 *
 * Shapes, read in tailscale/tailscale at commit
 * de9ec7ee25627e0e518f53c710a3fc3d947c86c1 (VERSION.txt 1.103.0):
 *   - internal/client/tailscale/vip_service.go: the body of
 *     PUT /api/v2/tailnet/{tailnet}/vip-services/svc:NAME,
 *     {"name", "addrs", "comment", "annotations", "ports": ["tcp:443"], "tags"}
 *     (addrs left out: control allocates them; an update must resend them,
 *     so an API client GETs first)
 *   - tsnet/example/tsnet-services/README.md and
 *     cmd/k8s-operator/e2e/acl.hujson: "autoApprovers": {"services":
 *     {"tag:SERVICE-TAG": ["tag:HOST-TAG"]}} and grants with "dst":
 *     ["svc:NAME"]; service hosts must be tagged nodes (serve_v2.go).
 * Pure functions; no I/O. */
#ifndef PORTICO_TSPOLICY_H
#define PORTICO_TSPOLICY_H

#include <stddef.h>

#include "servecfg.h"

struct tspolicy_input {
    const struct servecfg_service *services; /* name and port of each */
    size_t n_services;
    const char *host_tag;    /* the tag of portico's node, e.g. "tag:portico" */
    const char *service_tag; /* the tag the definitions carry, e.g. "tag:portico-svc" */
    /* who may apply both tags (tagOwners); none: "autogroup:admin" */
    const char *const *owners;
    size_t n_owners;
    /* who may reach the services (grant sources); none: "autogroup:member" */
    const char *const *sources;
    size_t n_sources;
};

/* "tag:" and a name of letters, digits and '-' (the policy file's rule for
 * tag names). */
bool tspolicy_tag_valid(const char *t);

/* The body of PUT .../vip-services/svc:NAME for one service (compact JSON),
 * or NULL when out of memory. */
char *tspolicy_service_body(const struct servecfg_service *s, const char *service_tag);

/* The whole text: the definitions, one body a line, then the policy
 * fragment as indented JSON. Returns a malloc'ed string, or NULL with a
 * message in err (a tag or a service name that is not valid). */
char *tspolicy_print(const struct tspolicy_input *in, char *err, size_t errlen);

#endif

/* hairpin.h - the hosts-file half of tailscale.hairpin, on the main
 * thread's loop.
 *
 * A host that serves Tailscale Services cannot reach them through
 * tailscaled. portico serves every published name on its loopback hairpin
 * listeners as well (config_tailscale.c adds them), and this module keeps
 * the block in tailscale.hairpin.hosts_file (hostsfile.c) that sends each
 * NAME.<MagicDNS suffix> to them: written on start and after every
 * reload, once tailscaled's status has said the suffix (asked again with
 * back-off while tailscaled is away; nothing is written without it), and
 * removed when hairpin is turned off, the file moves, or portico stops. */
#ifndef PORTICO_HAIRPIN_H
#define PORTICO_HAIRPIN_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct loop;
struct hairpin;

/* The block's lines for c with suffix: "IP NAME.suffix" for each listen
 * address and each HTTP service, into a malloc'ed array of malloc'ed
 * strings (*n of them; free with hairpin_lines_free). -1 when out of
 * memory. */
int hairpin_lines(const struct config *c, const char *suffix, char ***out, size_t *n);
void hairpin_lines_free(char **v, size_t n);

/* NULL when out of memory. */
struct hairpin *hairpin_new(struct loop *l);
/* Keep the block as c says (c may be NULL: none); holds a reference to c
 * until the next call. */
void hairpin_set(struct hairpin *h, struct config *c);
/* At exit. remove: take the block out of the file (a clean stop); false
 * when the portico that replaces this one on an upgrade keeps it. */
void hairpin_free(struct hairpin *h, bool remove);

#endif

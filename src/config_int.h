/* config_int.h - what the files of the configuration parser share.
 *
 * Not a public header: only src/config*.c include it. config.h is the API
 * the rest of portico uses. */
#ifndef PORTICO_CONFIG_INT_H
#define PORTICO_CONFIG_INT_H

#include <netdb.h>
#include <stdarg.h>
#include <yaml.h>

#include "config.h"

#define ADDR_HELP     "(use host:port, [v6]:port or unix:/path)"
#define UPSTREAM_HELP "(use http://host:port, https://host:port or unix:/path)"
#define DURATION_HELP "(use 250ms, 5s, 2m or 1h)"
#define SHOW_MAX      80 /* bytes of user text quoted in a message */

struct parser {
    const char *name;
    char *err;
    size_t errlen;
    const char *text;
    size_t len;
    yaml_document_t doc;
    bool have_doc;
    struct config *c;
    struct route_table *upstream_keys; /* key -> struct config_upstream *; keys owned by c */
    size_t upstream_cap;               /* c->upstreams never moves: pointers into it are kept */
    char shown[4][SHOW_MAX + 8];
    unsigned nshown;
    int tls_line, tls_default_line; /* where "tls:" and its default_cert are */
    /* The service being parsed: its https:// upstreams are verified with these. */
    const char *svc_tls_ca;
    const yaml_node_t *svc_tls_ca_node;
    bool svc_tls_insecure;
    bool svc_has_https;
    /* The service or auth provider being parsed (see config_addr.owner). */
    const char *owner_kind, *owner;
};

/* An upstream URL, read. */
struct upstream_url {
    enum upstream_kind kind;
    struct config_addr addr;
    char key[NI_MAXHOST + NI_MAXSERV + 4200]; /* see config_upstream.key */
    char tls_name[sizeof((struct config_addr *)0)->text];
    const char *path; /* with_path: the path and query as written (points into s), or "/" */
    char
        authority[sizeof((struct config_addr *)0)->text]; /* host[:port] as written; "" for unix: */
};

/* ---- messages (config_keys.c) ---- */

/* Copy user text for a message: printable, bounded, one line, no quotes. */
const char *cfg_show_into(char *buf, size_t cap, const char *s);
/* The same into one of the parser's rotating buffers (four per message). */
const char *cfg_show(struct parser *p, const char *s);
__attribute__((format(printf, 3, 0))) int cfg_vfailat(struct parser *p, size_t line,
                                                      const char *fmt, va_list ap);
/* Write "FILE:LINE: message" (no line when 0) and return -1. */
__attribute__((format(printf, 3, 4))) int cfg_failat(struct parser *p, size_t line, const char *fmt,
                                                     ...);
/* The same at the line of node n (none when n is NULL). */
__attribute__((format(printf, 3, 4))) int cfg_fail(struct parser *p, const yaml_node_t *n,
                                                   const char *fmt, ...);
__attribute__((format(printf, 3, 4))) void cfg_warn(struct parser *p, const yaml_node_t *n,
                                                    const char *fmt, ...);
int cfg_fail_oom(struct parser *p);
int cfg_fail_yaml(struct parser *p, const yaml_parser_t *yp);

/* ---- nodes and typed values (config_keys.c) ---- */

yaml_node_t *cfg_node(struct parser *p, int i);
const char *cfg_scalar(const yaml_node_t *n);
bool cfg_is_plain(const yaml_node_t *n);
bool cfg_is_null(const yaml_node_t *n);
size_t cfg_seq_len(const yaml_node_t *n);
size_t cfg_map_len(const yaml_node_t *n);
int cfg_want_string(struct parser *p, const yaml_node_t *n, const char *what, const char **out);
int cfg_want_bool(struct parser *p, const yaml_node_t *n, const char *what, bool *out);
int cfg_want_uint(struct parser *p, const yaml_node_t *n, const char *what, uint32_t min,
                  uint32_t max, uint32_t *out);
int cfg_want_duration(struct parser *p, const yaml_node_t *n, const char *what, uint32_t *out);
int cfg_want_duration_or_off(struct parser *p, const yaml_node_t *n, const char *what,
                             uint32_t *out);
int cfg_want_sequence(struct parser *p, const yaml_node_t *n, const char *what);
/* A mapping with string keys, none repeated (compared without case when nocase). */
int cfg_want_mapping(struct parser *p, const yaml_node_t *n, const char *what, bool nocase);
int cfg_key_index(const yaml_node_t *k, const char *const *names, size_t n);
/* Sort a mapping's values into slots by key name; an unknown key is an error. */
int cfg_map_collect(struct parser *p, const yaml_node_t *map, const char *const *names, size_t n,
                    yaml_node_t **vals, const char *where);

/* ---- addresses (config_addr.c) ---- */

/* any_port: a listen address, where port 0 asks the kernel for a free one.
 * resolve: look a host name up now (a listen address) rather than keep it
 * for the resolver (an upstream). */
int cfg_parse_addr(const char *s, struct config_addr *out, bool any_port, bool resolve, char *err,
                   size_t errlen);
bool cfg_addr_clash(const struct config_addr *a, const struct config_addr *b);
int cfg_read_addr(struct parser *p, const yaml_node_t *n, const char *what, struct config_addr *out,
                  bool any_port);
int cfg_read_target(struct parser *p, const yaml_node_t *n, const char *what,
                    struct config_addr *out);
void cfg_set_owner(struct parser *p, const yaml_node_t *n, struct config_addr *a);

/* ---- upstreams (config_upstream.c) ---- */

struct ssl_ctx_st *cfg_client_ctx(struct parser *p);
int cfg_read_upstream_url(struct parser *p, const yaml_node_t *n, const char *s, const char *what,
                          bool with_path, struct upstream_url *o);
int cfg_parse_upstream(struct parser *p, const yaml_node_t *n, const char *what,
                       const struct config_upstream **out, char **authority);

/* ---- sections ---- */

bool cfg_name_valid(const char *s, size_t len);                 /* config_service.c */
int cfg_parse_services(struct parser *p, const yaml_node_t *n); /* config_service.c */
int cfg_parse_routes(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                     const char *what); /* config_routes.c, and the three below */
int cfg_parse_host_header(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                          const char *what);
int cfg_parse_headers(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                      const char *what);
int cfg_parse_tcp(struct parser *p, struct config_service *svc, const yaml_node_t *n,
                  const char *what);
int cfg_parse_auth(struct parser *p, const yaml_node_t *n);    /* config_auth.c */
int cfg_parse_listen(struct parser *p, const yaml_node_t *n);  /* config_listen.c */
int cfg_parse_metrics(struct parser *p, const yaml_node_t *n); /* config_listen.c */
int cfg_parse_limits(struct parser *p, const yaml_node_t *n);  /* config_limits.c */
int cfg_parse_tls(struct parser *p, const yaml_node_t *n);     /* config_tls.c */
int cfg_load_tls(struct parser *p);                            /* config_tls.c */

#endif

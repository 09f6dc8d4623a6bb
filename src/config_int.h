/* config_int.h - what the files of the configuration parser share.
 *
 * Not a public header: only src/config*.c include it. config.h is the API
 * the rest of portico uses. */
#ifndef PORTICO_CONFIG_INT_H
#define PORTICO_CONFIG_INT_H

#include <netdb.h>
#include <stdarg.h>
#include <yaml.h>

#include "arena.h"
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
    size_t tls_clients_cap;            /* room in c->tls_clients */
    char shown[4][SHOW_MAX + 8];
    unsigned nshown;
    size_t root_line;               /* where the top-level mapping starts */
    int listen_line;                /* where "listen:" is; 0 when absent */
    int tls_line, tls_default_line; /* where "tls:" and its default_cert are */
    int tls_tailscale_line;         /* where tls.tailscale is */
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

/* Memory the snapshot owns: from its arena, released with it. */
static inline void *cfg_calloc(struct parser *p, size_t n, size_t size)
{
    return arena_calloc(p->c->arena, n, size);
}

static inline char *cfg_strdup(struct parser *p, const char *s)
{
    return arena_strdup(p->c->arena, s);
}

static inline char *cfg_strndup(struct parser *p, const char *s, size_t n)
{
    return arena_strndup(p->c->arena, s, n);
}

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
/* The same at a line number (none when 0). */
__attribute__((format(printf, 3, 4))) void cfg_warn_at(struct parser *p, size_t line,
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

/* ---- key tables (config_keys.c) ---- */

/* How a key's value is read and where it goes. */
enum cfg_type {
    CFG_BOOL,         /* true or false, into a bool */
    CFG_UINT,         /* a whole number from min to max, into an unsigned field of any width */
    CFG_DURATION,     /* "250ms", "5s", "2m", "1h", more than 0: milliseconds into a uint32_t */
    CFG_DURATION_OFF, /* the same, or "off" for 0 (no limit) */
    CFG_STRING,       /* a string, copied into the arena: a char * */
    CFG_ENUM,         /* one of choices[].name: its value (not negative) into an integer field */
    CFG_STRINGS,      /* a list of strings: char ** at off, its length (size_t) at off_n */
    CFG_FUNC,         /* read by fn */
    CFG_LATER,        /* a known key the section reads itself, once others are known */
};

struct cfg_choice {
    const char *name;
    int value;
};

struct parser;

/* One key of a section. Numbers, bools and enums take def when the key is
 * absent; a string list takes def_list (NULL: empty). */
struct cfg_key {
    const char *name;
    enum cfg_type type;
    size_t off, size; /* the field in the section's struct: CFG_AT(struct, field) */
    uint64_t def;
    uint32_t min, max;                /* CFG_UINT; CFG_STRINGS: max items (0: any) */
    const struct cfg_choice *choices; /* CFG_ENUM: ended by {NULL, 0} */
    size_t off_n;                     /* CFG_STRINGS: the size_t count */
    const char *const *def_list;      /* CFG_STRINGS: default items, ended by NULL */
    bool bare;                        /* messages name the section ("listen"), not the key */
    /* CFG_STRINGS: check one item (a copy in the arena, may be normalised in
     * place) against the ones before it. */
    int (*item)(struct parser *p, const yaml_node_t *n, const char *what, char *v,
                char *const *prev, size_t nprev);
    /* CFG_FUNC: read n; field is target + off, target the section's struct. */
    int (*fn)(struct parser *p, const yaml_node_t *n, const char *what, void *field, void *target);
};

#define CFG_AT(type, field) .off = offsetof(type, field), .size = sizeof(((type *)0)->field)
#define CFG_NKEYS(keys)     (sizeof(keys) / sizeof((keys)[0]))
#define CFG_KEYS_MAX        32 /* keys in one table */

/* The keys a mapping has, by position in its table. */
struct cfg_seen {
    const struct cfg_key *keys;
    size_t nkeys;
    const yaml_node_t *map;
    const yaml_node_t *vals[CFG_KEYS_MAX];
};

/* Key node k is name, byte for byte (a key with a NUL byte in it is not). */
bool cfg_key_is(const yaml_node_t *k, const char *name);
/* Check that n is a mapping (messages name it what) whose keys are all in
 * keys; an unknown key is "unknown key \"K\" WHERE". */
int cfg_keys_collect(struct parser *p, const yaml_node_t *n, const struct cfg_key *keys,
                     size_t nkeys, const char *what, const char *where, struct cfg_seen *seen);
/* Set every key's default in target. */
int cfg_keys_defaults(struct parser *p, const struct cfg_key *keys, size_t nkeys, void *target);
/* Defaults, then every key present read into target in file order (so that
 * of two mistakes the first is reported), named "PREFIX.KEY" in messages. */
int cfg_keys_apply(struct parser *p, const struct cfg_seen *seen, void *target, const char *prefix);
/* Both: the usual way to read a section. */
int cfg_keys_read(struct parser *p, const yaml_node_t *n, const struct cfg_key *keys, size_t nkeys,
                  void *target, const char *prefix, const char *where, struct cfg_seen *seen);
/* The node of key name, NULL when absent (name must be in the table). */
const yaml_node_t *cfg_seen_node(const struct cfg_seen *seen, const char *name);

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
/* CFG_FUNC readers of a struct config_addr: one to listen on, one to connect to. */
int cfg_fn_listen_addr(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                       void *target);
int cfg_fn_target(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                  void *target);

/* ---- upstreams (config_upstream.c) ---- */

struct ssl_ctx_st *cfg_client_ctx(struct parser *p);
int cfg_read_upstream_url(struct parser *p, const yaml_node_t *n, const char *s, const char *what,
                          bool with_path, struct upstream_url *o);
int cfg_parse_upstream(struct parser *p, const yaml_node_t *n, const char *what,
                       const struct config_upstream **out, char **authority);

/* ---- sections ---- */

/* The name of a service or auth provider (mapping key k), checked and copied
 * into the snapshot; later messages name it as "kind NAME". NULL after an
 * error. (config_service.c) */
char *cfg_entry_name(struct parser *p, const yaml_node_t *k, const char *kind);
int cfg_parse_services(struct parser *p, const yaml_node_t *n); /* config_service.c */
/* Once every section is read: a warning for each allow list on a
 * configuration where no listener can know who a caller is. */
void cfg_warn_allow(struct parser *p);
/* config_routes.c: CFG_FUNC readers of a service's keys (target: the service). */
int cfg_read_routes(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                    void *target);
int cfg_read_host_header(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                         void *target);
int cfg_read_headers(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                     void *target);
int cfg_read_tcp(struct parser *p, const yaml_node_t *n, const char *what, void *field,
                 void *target);
int cfg_parse_auth(struct parser *p, const yaml_node_t *n);   /* config_auth.c */
int cfg_parse_listen(struct parser *p, const yaml_node_t *n); /* config_listen.c */
/* The group named name, for a Unix socket portico creates: its gid in *gid,
 * or -1 with "FILE:LINE: WHAT: no group named ..." (config_listen.c). */
int cfg_read_group(struct parser *p, const yaml_node_t *n, const char *what, const char *name,
                   long *gid);
int cfg_parse_metrics(struct parser *p, const yaml_node_t *n);   /* config_listen.c */
int cfg_parse_limits(struct parser *p, const yaml_node_t *n);    /* config_limits.c */
int cfg_parse_tls(struct parser *p, const yaml_node_t *n);       /* config_tls.c */
int cfg_load_tls(struct parser *p);                              /* config_tls.c */
int cfg_parse_tailscale(struct parser *p, const yaml_node_t *n); /* config_tailscale.c */
int cfg_parse_dns(struct parser *p, const yaml_node_t *n);       /* config_dns.c */
/* The socket, backend and state directory the tailscale: section defaults
 * to, where it did not set them (or is absent: tls.tailscale uses them). */
int cfg_tailscale_defaults(struct parser *p); /* config_tailscale.c */

#endif

/* tsimport_int.h - what the files of `portico import tsnsrv` share.
 *
 * Each reader (command lines in tsimport.c, the fork's YAML and NixOS
 * JSON in tsimport_read.c) turns its input into the same model: services,
 * each a list of settings named as tsnsrv's command-line flags are
 * (-prefix, -upstreamHeader "Name: value", ...), the destination URL under
 * the name "toURL". tsimport_emit.c maps that model to portico's keys, so
 * a flag is understood the same way whichever input it came from. */
#ifndef PORTICO_TSIMPORT_INT_H
#define PORTICO_TSIMPORT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "arena.h"
#include "tsimport.h"

struct tsi_setting {
    const char *key;     /* tsnsrv's flag name without '-' (or a key no flag has) */
    const char *value;   /* as written; booleans as "true"/"false" */
    size_t line;         /* in the input; 0 when unknown (JSON) */
    const char *written; /* the YAML or NixOS key it came from; NULL: the flag itself */
};

struct tsi_service {
    struct tsi_setting *set;
    size_t n, cap;
    size_t line; /* where the service starts; 0 when unknown */
};

struct tsi_input {
    struct arena *arena; /* everything below is allocated from it */
    const char *name;    /* the input's name in messages */
    enum tsimport_from from;
    struct tsi_service *svc;
    size_t n, cap;
    const char *prometheus_addr; /* the fork's process-wide setting, or NULL */
    size_t prometheus_line;
    char *err;
    size_t errlen;
};

/* Messages: "NAME:LINE: ..." (line 0: "NAME: ..."); both return -1. */
__attribute__((format(printf, 3, 4))) int tsi_fail(struct tsi_input *in, size_t line,
                                                   const char *fmt, ...);
int tsi_oom(struct tsi_input *in);

struct tsi_service *tsi_service_new(struct tsi_input *in, size_t line);
int tsi_add(struct tsi_input *in, struct tsi_service *s, const char *key, const char *value,
            size_t line, const char *written);

/* A flag's kind, from tsnsrv's (and the fork's) flag set; NULL when tsnsrv
 * has no such flag. */
enum tsi_kind { TSI_STRING, TSI_BOOL, TSI_DURATION, TSI_LIST };
const enum tsi_kind *tsi_flag_kind(const char *name);

/* Read the flags of one tsnsrv invocation (words after the program name)
 * into s: Go's flag package rules (-f, --f, -f=v, -f v; booleans only
 * -f or -f=v), then the one destination URL when want_url (NixOS
 * extraArgs are flags only). s NULL: the fork's -service lines, whose
 * services the flags create. */
int tsi_read_flags(struct tsi_input *in, struct tsi_service *s, char **words, size_t nwords,
                   size_t line, bool want_url);
/* Go's strconv.ParseBool; -1 if s is none of its spellings. */
int tsi_parse_bool(const char *s);
/* A Go duration ("1m30s", "500ms", "0") in milliseconds, rounded up; -1
 * if malformed or over a day. */
long tsi_parse_duration(const char *s);

/* A destination or auth URL as Go's url.Parse reads the parts tsnsrv uses. */
struct tsi_url {
    bool https;
    char host[256]; /* as written, v6 with its brackets */
    char port[8];
    char authority[300]; /* host[:port] as written */
    const char *path;    /* from the first '/', without query; "" if none */
    char pathbuf[1024];
    bool userinfo, query;
};
/* 0, or -1 if s is not http:// or https:// with a valid host and port. */
int tsi_url_parse(const char *s, struct tsi_url *u);

int tsi_read_yaml(struct tsi_input *in, const char *text, size_t len);
int tsi_read_nixjson(struct tsi_input *in, const char *text, size_t len);

/* The portico configuration for in (tsimport_emit.c). */
int tsi_emit(struct tsi_input *in, struct tsimport_result *out);

#endif

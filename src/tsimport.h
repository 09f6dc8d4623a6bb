/* tsimport.h - `portico import tsnsrv`: what a tsnsrv user has (command
 * lines, the forward-auth fork's multi-service YAML, or `nix eval --json`
 * of services.tsnsrv.services) turned into a portico configuration.
 *
 * Pure: text in, text out, no I/O, so the command, the unit tests and the
 * fuzz target run the same code. */
#ifndef PORTICO_TSIMPORT_H
#define PORTICO_TSIMPORT_H

#include <stddef.h>

enum tsimport_from {
    TSIMPORT_AUTO,    /* decided from the text (tsimport_detect) */
    TSIMPORT_CMDLINE, /* one tsnsrv command line per service */
    TSIMPORT_YAML,    /* the fork's `tsnsrv -config` file */
    TSIMPORT_NIXJSON, /* nix eval --json .services.tsnsrv.services */
};

struct tsimport_result {
    char *yaml;    /* the portico configuration; owned: free() */
    char *summary; /* one line per setting left behind, for stderr; owned: free() */
    size_t nservices;
    size_t ndropped;  /* settings whose behaviour portico does not reproduce */
    size_t nunneeded; /* settings portico has no use for (its own tailnet node's) */
};

/* Convert text (len bytes, from the file called name in messages). On
 * success returns 0 and fills out. On bad input returns -1 with
 * "NAME:LINE: message" (or "NAME: message" when the input has no lines to
 * point at, as JSON values do not) in err, and out untouched. */
int tsimport_convert(const char *text, size_t len, enum tsimport_from from, const char *name,
                     struct tsimport_result *out, char *err, size_t errlen);
void tsimport_result_free(struct tsimport_result *r);

/* Which of the three inputs text looks like (never TSIMPORT_AUTO). */
enum tsimport_from tsimport_detect(const char *text, size_t len);

/* Split one shell command line into words as sh would (quotes,
 * backslashes; no expansion: $VAR stays as written). Returns the number
 * of words (at most max; the words point into buf, of bufcap bytes), or -1
 * with a message in err (an unterminated quote, too many words, too long). */
int tsimport_split_words(const char *line, size_t len, char *buf, size_t bufcap, char **words,
                         size_t max, char *err, size_t errlen);

#endif

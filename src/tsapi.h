/* tsapi.h - the Tailscale control API's service definitions, as portico
 * reads and writes them: the OAuth token request and answer, the request
 * heads, and what makes a definition (a VIPService) match portico's
 * configuration. The blocking HTTPS client that sends them is
 * tsapi_client.h.
 *
 * Shapes, read in tailscale/tailscale at commit
 * de9ec7ee25627e0e518f53c710a3fc3d947c86c1 (VERSION.txt 1.103.0):
 *   - internal/client/tailscale/vip_service.go: GET and PUT
 *     /api/v2/tailnet/{tailnet}/vip-services/svc:NAME (200 on success),
 *     VIPService {"name", "addrs", "comment", "annotations", "ports",
 *     "tags"}, all omitempty; "an update must resend auto-allocated addrs"
 *     (CreateOrUpdateVIPService), so an update resends what GET returned
 *   - client/tailscale/tailscale.go: BuildURL (url.PathEscape of each
 *     element: "svc:NAME" goes as is), HandleErrorResponse ({"message"})
 *   - feature/oauthkey/oauthkey.go, cmd/get-authkey/main.go:
 *     golang.org/x/oauth2/clientcredentials against
 *     {baseURL}/api/v2/oauth/token, i.e. RFC 6749 section 4.4: a form POST
 *     of grant_type=client_credentials with the client's id and secret,
 *     answered {"access_token", "token_type": "Bearer", "expires_in"};
 *     the token then goes as "Authorization: Bearer TOKEN"
 *   - cmd/k8s-operator/e2e/setup.go: an OAuth client that manages Services
 *     has the "services" scope
 * Pure functions over buffers (and tsapi_read_secret over one file). */
#ifndef PORTICO_TSAPI_H
#define PORTICO_TSAPI_H

#include <stdbool.h>
#include <stddef.h>

#define TSAPI_DEFAULT_URL "https://api.tailscale.com"
/* The comment a definition portico creates carries. */
#define TSAPI_COMMENT               "managed by portico (portico tailscale apply)"
#define TSAPI_SECRET_MAX            1024 /* bytes of an OAuth client secret */
#define TSAPI_TOKEN_MAX             4096 /* bytes of an access token */
#define TSAPI_CLIENT_ID_MAX         256
#define TSAPI_TAILNET_MAX           253
#define TSAPI_HEAD_MAX              (TSAPI_TOKEN_MAX + 1024)
#define TSAPI_ERROR_SHOWN           300  /* bytes of an error answer quoted in a message */
#define TSAPI_TOKEN_EXPIRES_DEFAULT 3600 /* expires_in when the answer has none */

/* The secret in the file at path: its first line, without the line end
 * and surrounding blanks, NUL-terminated in out. -1 with a sentence in err
 * that names the file and never quotes it: unreadable, empty, longer than
 * TSAPI_SECRET_MAX, or holding control characters or blanks inside. */
int tsapi_read_secret(const char *path, char *out, size_t cap, char *err, size_t errlen);

/* "-" or a tailnet name: letters, digits and ". _ @ + -", at most
 * TSAPI_TAILNET_MAX bytes (it goes into the path as is). */
bool tsapi_tailnet_valid(const char *t);
/* An OAuth client ID: printable ASCII without blanks, at most
 * TSAPI_CLIENT_ID_MAX bytes. */
bool tsapi_client_id_valid(const char *id);

/* "https://HOST[:PORT][/]": HOST (a DNS name, an IPv4 address or a
 * bracketed IPv6 one, written without the brackets) into host, the port
 * (443 if none). -1 with a sentence in err. */
int tsapi_parse_url(const char *url, char *host, size_t hostcap, unsigned *port, char *err,
                    size_t errlen);

/* One request to the control API. */
struct tsapi_request {
    const char *method;       /* "GET", "PUT", "POST" */
    const char *path;         /* "/api/v2/..." */
    const char *host;         /* the Host header: HOST or HOST:PORT */
    const char *bearer;       /* the access token, or NULL (the token request) */
    const char *content_type; /* with a body; NULL: none */
    size_t body_len;
};

/* The request head, written to out: its length, or -1 with a sentence in
 * err (a byte that cannot go in a head, or too long for cap). The message
 * never quotes the token. */
long tsapi_build_head(const struct tsapi_request *r, char *out, size_t cap, char *err,
                      size_t errlen);

/* The path of one definition: "/api/v2/tailnet/TAILNET/vip-services/svc:LABEL"
 * (-1 if cap is short). */
int tsapi_service_path(const char *tailnet, const char *label, char *out, size_t cap);

/* The token request's form body (application/x-www-form-urlencoded):
 * grant_type=client_credentials, client_id and client_secret. malloc'ed;
 * NULL when out of memory. The caller wipes it after use. */
char *tsapi_token_form(const char *client_id, const char *secret);

/* The token endpoint's answer: the access token into tok (cap bytes) and
 * its lifetime in seconds (TSAPI_TOKEN_EXPIRES_DEFAULT when absent). -1
 * with a sentence in err naming the field (never quoting the token). */
int tsapi_parse_token(const char *buf, size_t len, char *tok, size_t cap, long *expires_in,
                      char *err, size_t errlen);

/* The message of an error answer: "message" (the API's errors), else
 * "error" and "error_description" (OAuth's, RFC 6749 section 5.2), else
 * the text; one line, control characters shown as '?', at most
 * TSAPI_ERROR_SHOWN bytes; "" when there is none. */
void tsapi_error_text(const char *body, size_t len, char *out, size_t cap);

/* What one definition should hold: its ports ("tcp:443") and tags. */
struct tsapi_want {
    const char *label; /* "grafana": the definition svc:grafana */
    const char *const *ports;
    size_t nports;
    const char *const *tags;
    size_t ntags;
};

/* The PUT body that creates a definition: name, comment (TSAPI_COMMENT),
 * ports, tags; no addrs (control allocates them). malloc'ed, or NULL. */
char *tsapi_new_body(const struct tsapi_want *w);

/* Compare the definition control holds (body, the answer to GET) with w.
 * 0: ports and tags are the same sets, nothing to write. 1: they differ;
 * *put is the PUT body (malloc'ed): the definition as read, every field
 * kept (addrs resent, as an update must), with ports and tags replaced;
 * what says what changes ("tags [tag:a] -> [tag:b]"). -1: the answer is
 * not a definition of svc:LABEL (a sentence in err naming the field). */
int tsapi_compare(const char *body, size_t len, const struct tsapi_want *w, char **put, char *what,
                  size_t whatcap, char *err, size_t errlen);

#endif

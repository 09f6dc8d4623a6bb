/* main.c - the portico command: reads the command line and runs one
 * command (run, check, tailscale, import, version, help).
 *
 * This is the only file that decides the process's exit status; every
 * command returns it. A new command is a function and one row of
 * `commands` below, plus its line in usage(). */
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/opensslv.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml.h>

#include "config.h"
#include "http1.h"
#include "limits.h"
#include "log.h"
#include "resolve.h"
#include "run.h"
#include "sockowner.h"
#include "tscli.h"
#include "tsimport.h"

#ifndef PORTICO_YAML_BUILT
#define PORTICO_YAML_BUILT "unknown" /* set by the Makefile from pkg-config */
#endif

#define DEFAULT_CONFIG "/etc/portico/portico.yaml"

static void usage(FILE *f)
{
    fprintf(f, "usage: portico run [-c FILE]     serve until SIGTERM/SIGINT; SIGHUP reloads;\n"
               "                                 SIGUSR2 restarts in place on the same sockets\n"
               "       portico check -c FILE     validate a configuration\n"
               "       portico tailscale plan|apply|status|policy [-c FILE]\n"
               "                                 publish the HTTP services as Tailscale Services\n"
               "                                 on the local tailscaled (plan: show what would\n"
               "                                 change; policy: what the tailnet must define)\n"
               "       portico import tsnsrv [--from cmdline|yaml|nix-json] [FILE|-]\n"
               "                                 print a portico configuration for what tsnsrv\n"
               "                                 served (command lines, the fork's YAML, or nix\n"
               "                                 eval --json of services.tsnsrv.services)\n"
               "       portico version           version and libraries\n"
               "       portico help              this list (also --help, -h)\n"
               "default FILE: " DEFAULT_CONFIG "; manual: man 8 portico, man 5 portico.yaml\n");
}

/* "-c FILE" after the command; returns the file or def, NULL (after a
 * usage message) on bad usage. */
static const char *config_arg(int argc, char **argv, const char *def)
{
    const char *path = def;
    for (int i = 2; i < argc; i++) {
        bool opt = strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0;
        if (opt && i + 1 < argc && argv[i + 1][0] != '\0') {
            path = argv[++i];
            continue;
        }
        if (opt)
            fprintf(stderr, "portico %s: %s needs a file name: portico %s %s FILE\n", argv[1],
                    argv[i], argv[1], argv[i]);
        else
            fprintf(stderr, "portico %s: unexpected argument \"%s\"\n", argv[1], argv[i]);
        usage(stderr);
        return NULL;
    }
    return path;
}

/* ---- the commands: each returns the exit status ----------------------------- */

/* The libraries portico runs with, and (when it differs) the version it
 * was built against: a distribution upgrade changes the first. */
static int cmd_version(int argc, char **argv)
{
    char hp_run[32], hp_built[32];
    http1_parser_version(hp_run, sizeof hp_run, hp_built, sizeof hp_built);
    printf("portico %s\n", PORTICO_VERSION);
    printf("%s (built with %s)\n", OpenSSL_version(OPENSSL_VERSION), OPENSSL_VERSION_TEXT);
    printf("libyaml %s (built with %s)\n", yaml_get_version_string(), PORTICO_YAML_BUILT);
    printf("http-parser %s (built with %s)\n", hp_run, hp_built);
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    usage(stdout);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *path = config_arg(argc, argv, DEFAULT_CONFIG);
    return path ? run_serve(path, argv) : 2;
}

/* check: a name that does not resolve now is a warning, not an error; it
 * may resolve by the time portico runs, which looks it up again anyway. */
static void check_name(struct config_addr *a, void *arg)
{
    const char *path = arg;
    struct sockaddr_storage sa;
    socklen_t salen;
    const char *why = resolve_lookup(a->host, a->port, &sa, &salen);
    if (!why)
        return;
    fprintf(stderr,
            "%s:%d: warning: %s %s: upstream host \"%s\" does not resolve now (%s); portico "
            "starts anyway, answers 502 for it and retries\n",
            path, a->line, a->owner_kind, a->owner, a->host, why);
}

/* check: a hairpin address another program listens on would stop portico
 * from starting; say so now, at its line. The portico already serving
 * this file (check runs before every reload under systemd) holds it too,
 * and that is no clash. */
static int check_hairpin_addrs(const struct config *c, const char *path)
{
    const struct config_hairpin *h = &c->tailscale.hairpin;
    int bad = 0;
    for (size_t i = 0; h->enabled && i < h->nlisten; i++) {
        const struct config_addr *a = &h->listen[i];
        int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        bool in_use =
            bind(fd, (const struct sockaddr *)&a->sa, a->salen) < 0 && errno == EADDRINUSE;
        close(fd);
        if (in_use && !sockowner_is_portico(a)) {
            fprintf(stderr,
                    "%s:%d: tailscale.hairpin.listen: %s is already in use by another program; "
                    "choose another address or free it\n",
                    path, a->line, a->text);
            bad = 1;
        }
    }
    return bad;
}

static int cmd_check(int argc, char **argv)
{
    if (argc == 2) {
        fprintf(stderr, "portico check: which file? portico check -c FILE\n");
        usage(stderr);
        return 2;
    }
    const char *path = config_arg(argc, argv, NULL);
    if (!path)
        return 2;
    char err[1024];
    struct config *c = config_load(path, err, sizeof err);
    if (!c) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    if (c->warnings)
        fputs(c->warnings, stderr);
    config_each_named(c, check_name, (void *)path);
    if (check_hairpin_addrs(c, path)) {
        config_unref(c);
        return 1;
    }
    size_t nl = c->nlistens + c->ntcp;
    printf("ok: %zu %s, %zu %s\n", c->nservices, log_plural(c->nservices, "service", "services"),
           nl, log_plural(nl, "listener", "listeners"));
    config_unref(c);
    return 0;
}

static int cmd_tailscale(int argc, char **argv)
{
    if (argc < 3 || !tscli_known(argv[2])) {
        if (argc >= 3)
            fprintf(stderr, "portico tailscale: unknown command \"%s\"\n", argv[2]);
        else
            fprintf(stderr, "portico tailscale: which command? plan, apply, status or policy\n");
        usage(stderr);
        return 2;
    }
    const char *path = config_arg(argc - 1, argv + 1, DEFAULT_CONFIG);
    return path ? tscli_run(argv[2], path) : 2;
}

/* The whole input of import, at most LIMIT_IMPORT_BYTES (+1 to see more). */
static char *read_input(const char *path, size_t *len, size_t max)
{
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *buf = malloc(max + 1);
    size_t n = 0;
    while (buf && n <= max) {
        ssize_t r = read(fd, buf + n, max + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            free(buf);
            buf = NULL;
        }
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    int saved = errno;
    if (fd != 0)
        close(fd);
    errno = saved;
    *len = n;
    return buf;
}

/* import tsnsrv: the configuration on stdout, what was left behind on
 * stderr. Exit 0: everything carried over; 3: written, but some settings
 * were not (each is a "# not carried over" comment); 1: bad input, nothing
 * written; 2: bad usage. */
static int cmd_import(int argc, char **argv)
{
    static const struct {
        const char *name;
        enum tsimport_from from;
    } froms[] = {
        {"cmdline", TSIMPORT_CMDLINE},
        {"yaml", TSIMPORT_YAML},
        {"nix-json", TSIMPORT_NIXJSON},
        {"auto", TSIMPORT_AUTO},
    };
    enum tsimport_from from = TSIMPORT_AUTO;
    const char *path = NULL;
    if (argc < 3 || strcmp(argv[2], "tsnsrv") != 0) {
        fprintf(stderr, "portico import: from what? portico import tsnsrv [FILE|-]\n");
        usage(stderr);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
            size_t k = 0, nf = sizeof froms / sizeof froms[0];
            while (k < nf && strcmp(froms[k].name, argv[i + 1]) != 0)
                k++;
            if (k == nf) {
                fprintf(stderr, "portico import tsnsrv: --from %s: use cmdline, yaml or nix-json\n",
                        argv[i + 1]);
                return 2;
            }
            from = froms[k].from;
            i++;
        } else if (!path && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) {
            path = argv[i];
        } else {
            fprintf(stderr, "portico import tsnsrv: unexpected argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path)
        path = "-";
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    size_t len;
    char *text = read_input(path, &len, LIMIT_IMPORT_BYTES);
    if (!text) {
        fprintf(stderr, "portico import tsnsrv: cannot read %s: %s\n", name, strerror(errno));
        return 1;
    }
    struct tsimport_result res;
    char err[1024];
    int r = tsimport_convert(text, len, from, name, &res, err, sizeof err);
    free(text);
    if (r < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    fputs(res.yaml, stdout);
    fputs(res.summary, stderr);
    fprintf(stderr,
            "portico import tsnsrv: %zu %s; %zu %s not carried over, %zu not needed (see the "
            "# comments)\n",
            res.nservices, log_plural(res.nservices, "service", "services"), res.ndropped,
            log_plural(res.ndropped, "setting", "settings"), res.nunneeded);
    int status = res.ndropped ? 3 : 0;
    tsimport_result_free(&res);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "portico import tsnsrv: cannot write: %s\n", strerror(errno));
        return 1;
    }
    return status;
}

/* ---- dispatch ------------------------------------------------------------------ */

struct command {
    const char *names[4]; /* the name, then aliases; NULL-terminated */
    int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {{"run", NULL}, cmd_run},
    {{"check", NULL}, cmd_check},
    {{"tailscale", NULL}, cmd_tailscale},
    {{"import", NULL}, cmd_import},
    {{"version", "--version", NULL}, cmd_version},
    {{"help", "--help", "-h", NULL}, cmd_help},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        for (const char *const *name = commands[i].names; *name; name++)
            if (strcmp(argv[1], *name) == 0)
                return commands[i].run(argc, argv);
    fprintf(stderr, "portico: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
